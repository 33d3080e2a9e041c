using Microsoft.ML.MemoryFormer.Onnx.Protobuf;

namespace Microsoft.ML.MemoryFormer.Onnx;

/// <summary>Short forms of the standard operators the exporter uses (opset 18 signatures).</summary>
internal sealed partial class OnnxGraphBuilder
{
    public string Add(string a, string b, string hint = "add") => Node("Add", hint, [a, b]);

    public string Sub(string a, string b, string hint = "sub") => Node("Sub", hint, [a, b]);

    public string Mul(string a, string b, string hint = "mul") => Node("Mul", hint, [a, b]);

    public string Div(string a, string b, string hint = "div") => Node("Div", hint, [a, b]);

    public string MatMul(string a, string b, string hint = "matmul") => Node("MatMul", hint, [a, b]);

    public string Unary(string op, string x, string? hint = null) => Node(op, hint ?? op.ToLowerInvariant(), [x]);

    public string Reshape(string x, string shape, string hint = "reshape") => Node("Reshape", hint, [x, shape]);

    public string Reshape(string x, long[] shape, string hint = "reshape") => Reshape(x, Ints(shape), hint);

    public string Transpose(string x, long[] perm, string hint = "transpose") =>
        Node("Transpose", hint, [x], IntList("perm", perm));

    public string Unsqueeze(string x, long[] axes, string hint = "unsqueeze") => Node("Unsqueeze", hint, [x, Ints(axes)]);

    public string Squeeze(string x, long[] axes, string hint = "squeeze") => Node("Squeeze", hint, [x, Ints(axes)]);

    public string Concat(string[] parts, long axis, string hint = "concat") => Node("Concat", hint, parts, Int("axis", axis));

    /// <summary>x[starts:ends] along <paramref name="axes"/>; <paramref name="ends"/> is a value name (dynamic ends).</summary>
    public string Slice(string x, string starts, string ends, long[] axes, string hint = "slice") =>
        Node("Slice", hint, [x, starts, ends, Ints(axes)]);

    public string Slice(string x, long[] starts, long[] ends, long[] axes, string hint = "slice") =>
        Slice(x, Ints(starts), Ints(ends), axes, hint);

    public string ReduceSum(string x, long[] axes, bool keepDims, string hint = "sum") =>
        Node("ReduceSum", hint, [x, Ints(axes)], Int("keepdims", keepDims ? 1 : 0));

    public string ReduceL2(string x, long[] axes, bool keepDims, string hint = "l2") =>
        Node("ReduceL2", hint, [x, Ints(axes)], Int("keepdims", keepDims ? 1 : 0));

    public string Cast(string x, TensorProto.Types.DataType to, string hint = "cast") =>
        Node("Cast", hint, [x], Int("to", (long)to));

    public string Gather(string data, string indices, long axis, string hint = "gather") =>
        Node("Gather", hint, [data, indices], Int("axis", axis));

    public string Where(string condition, string whenTrue, string whenFalse, string hint = "where") =>
        Node("Where", hint, [condition, whenTrue, whenFalse]);

    public string Softmax(string x, long axis, string hint = "softmax") => Node("Softmax", hint, [x], Int("axis", axis));

    public string Shape(string x, string hint = "shape") => Node("Shape", hint, [x]);

    /// <summary>Dimension <paramref name="axis"/> of x as a 1-D int64 [1].</summary>
    public string Dim(string x, long axis, string hint = "dim") =>
        Node("Shape", hint, [x], Int("start", axis), Int("end", axis + 1));

    /// <summary>x · Wᵀ (+ b) for a torch Linear weight W [out, in] and optional bias.</summary>
    public string Linear(string x, TorchSharp.torch.Tensor weight, TorchSharp.torch.Tensor? bias, string name)
    {
        var y = MatMul(x, Weight(name + ".weight_t", weight.t()), name);
        return bias is null ? y : Add(y, Weight(name + ".bias", bias), name + "_b");
    }
}
