using System.Runtime.InteropServices;
using Google.Protobuf;
using Microsoft.ML.MemoryFormer.Onnx.Protobuf;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Onnx;

/// <summary>
/// Appends nodes, weights and constants to an ONNX <see cref="GraphProto"/> (standard domain, opset
/// <see cref="Opset"/>) and hands out unique value names. Every helper returns the name of the value it produced.
/// </summary>
internal sealed partial class OnnxGraphBuilder
{
    /// <summary>The ONNX operator set the graphs use (Reduce* take their axes as an input from 18 on).</summary>
    public const int Opset = 18;

    private readonly Dictionary<string, string> constants = [];
    private readonly HashSet<string> names = [];
    private int counter;

    public GraphProto Graph { get; } = new();

    /// <summary>Adds a node with one output; <paramref name="hint"/> names that output.</summary>
    public string Node(string op, string hint, string[] inputs, params AttributeProto[] attributes)
    {
        var output = Unique(hint);
        var node = new NodeProto { OpType = op, Name = output + "/" + op };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        node.Attribute.AddRange(attributes);
        Graph.Node.Add(node);
        return output;
    }

    /// <summary>A float32 weight copied from <paramref name="tensor"/> (any device, any float dtype).</summary>
    public string Weight(string name, Tensor tensor)
    {
        using var scope = NewDisposeScope();
        var cpu = tensor.detach().to(ScalarType.Float32, CPU).contiguous();
        var values = cpu.data<float>().ToArray();
        return AddInitializer(Unique(name), TensorProto.Types.DataType.Float, cpu.shape, MemoryMarshal.AsBytes(values.AsSpan()));
    }

    /// <summary>A float32 weight from managed values of the given shape.</summary>
    public string Weight(string name, float[] values, long[] shape) =>
        AddInitializer(Unique(name), TensorProto.Types.DataType.Float, shape, MemoryMarshal.AsBytes(values.AsSpan()));

    /// <summary>An int64 constant (1-D unless <paramref name="scalar"/>), shared by every use of the same values.</summary>
    public string Ints(long[] values, bool scalar = false)
    {
        var key = (scalar ? "s:" : "i:") + string.Join(",", values);
        if (constants.TryGetValue(key, out var existing)) return existing;
        if (scalar && values.Length != 1) throw new ArgumentException("A scalar holds one value.", nameof(values));
        var name = AddInitializer(Unique("const_i64"), TensorProto.Types.DataType.Int64, scalar ? [] : [values.Length],
            MemoryMarshal.AsBytes(values.AsSpan()));
        constants[key] = name;
        return name;
    }

    /// <summary>A float32 scalar constant, shared by every use of the same value.</summary>
    public string Float(float value)
    {
        var key = "f:" + BitConverter.SingleToInt32Bits(value);
        if (constants.TryGetValue(key, out var existing)) return existing;
        float[] one = [value];
        var name = AddInitializer(Unique("const_f32"), TensorProto.Types.DataType.Float, [], MemoryMarshal.AsBytes(one.AsSpan()));
        constants[key] = name;
        return name;
    }

    /// <summary>Declares a graph input; a dimension is a fixed size (long) or a symbolic name (string).</summary>
    public string Input(string name, TensorProto.Types.DataType type, object[] dims, string doc)
    {
        names.Add(name);
        Graph.Input.Add(Value(name, type, dims, doc));
        return name;
    }

    /// <summary>Declares <paramref name="value"/> as the graph output <paramref name="name"/> (through an Identity).</summary>
    public void Output(string value, string name, TensorProto.Types.DataType type, object[] dims, string doc)
    {
        if (!names.Add(name)) throw new InvalidOperationException($"The output name '{name}' is already used in the graph.");
        var node = new NodeProto { OpType = "Identity", Name = name + "/Identity" };
        node.Input.Add(value);
        node.Output.Add(name);
        Graph.Node.Add(node);
        Graph.Output.Add(Value(name, type, dims, doc));
    }

    public static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto FloatAttribute(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto IntList(string name, params long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    private string AddInitializer(string name, TensorProto.Types.DataType type, long[] shape, ReadOnlySpan<byte> bytes)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(bytes) };
        tensor.Dims.AddRange(shape);
        Graph.Initializer.Add(tensor);
        return name;
    }

    private static ValueInfoProto Value(string name, TensorProto.Types.DataType type, object[] dims, string doc)
    {
        var shape = new TensorShapeProto();
        foreach (var dim in dims)
        {
            shape.Dim.Add(dim switch
            {
                long size => new TensorShapeProto.Types.Dimension { DimValue = size },
                int size => new TensorShapeProto.Types.Dimension { DimValue = size },
                string symbol => new TensorShapeProto.Types.Dimension { DimParam = symbol },
                _ => throw new ArgumentException($"A dimension is a size or a name, not '{dim}'.", nameof(dims)),
            });
        }
        return new ValueInfoProto
        {
            Name = name,
            DocString = doc,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    private string Unique(string hint)
    {
        var name = hint;
        while (!names.Add(name)) name = $"{hint}_{++counter}";
        return name;
    }
}
