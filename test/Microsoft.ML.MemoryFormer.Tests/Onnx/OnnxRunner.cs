using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Microsoft.ML.MemoryFormer.Tests.Onnx;

/// <summary>Runs an exported model with ONNX Runtime (CPU) and compares outputs with torch's.</summary>
internal static class OnnxRunner
{
    /// <summary>The tolerance of every equivalence test: |onnx − torch| ≤ 1e-4 · max(1, max |torch|).</summary>
    public const double RelativeTolerance = 1e-4;

    public static NamedOnnxValue Longs(string name, long[] values, params int[] dims) =>
        NamedOnnxValue.CreateFromTensor(name, new DenseTensor<long>(values, dims));

    public static NamedOnnxValue Floats(string name, float[] values, params int[] dims) =>
        NamedOnnxValue.CreateFromTensor(name, new DenseTensor<float>(values, dims));

    /// <summary>Runs <paramref name="model"/> once; returns each named output as a flat array with its shape.</summary>
    public static Dictionary<string, (float[] Values, int[] Shape)> Run(byte[] model, params NamedOnnxValue[] inputs)
    {
        using var session = new InferenceSession(model);
        using var results = session.Run(inputs);
        return results.ToDictionary(r => r.Name, r =>
        {
            var tensor = r.AsTensor<float>();
            return (tensor.ToArray(), tensor.Dimensions.ToArray());
        });
    }

    /// <summary>Asserts the tolerance above, naming the first element that breaks it.</summary>
    public static void AssertClose(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = Math.Max(1, expected.Max(v => Math.Abs((double)v)));
        for (int i = 0; i < expected.Length; i++)
        {
            double diff = Math.Abs(expected[i] - (double)actual[i]);
            Assert.True(diff <= RelativeTolerance * scale,
                $"{what}[{i}]: torch {expected[i]}, ONNX Runtime {actual[i]} (|diff| {diff:g3} > {RelativeTolerance} × {scale:g3}).");
        }
    }
}
