using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>Small synthetic tables and a tiny architecture for the tabular tests.</summary>
internal static class TabularRows
{
    public sealed class Regression
    {
        [VectorType(4)] public float[] Features { get; set; } = [];
        public float Label { get; set; }
    }

    public sealed class Binary
    {
        [VectorType(4)] public float[] Features { get; set; } = [];
        public bool Label { get; set; }
    }

    public sealed class Multiclass
    {
        [VectorType(4)] public float[] Features { get; set; } = [];
        public string Label { get; set; } = "";
    }

    /// <summary>Four named columns: Label = 10 + 3·Strong − Weak; IsHigh = Strong + 0.3·Weak &gt; 0; Noise and Unused play no part.</summary>
    public sealed class Named
    {
        public static string[] FeatureNames { get; } = ["Strong", "Weak", "Noise", "Unused"];

        public float Strong { get; set; }
        public float Weak { get; set; }
        public float Noise { get; set; }
        public float Unused { get; set; }
        public float Label { get; set; }
        public bool IsHigh { get; set; }
    }

    /// <summary>d = 16, 1 block, τ = 4: trains in a second or two. One model (these small tables would otherwise get the
    /// small-table ensemble); the ensemble tests set <see cref="MemoryFormerTabularOptions.EnsembleSize"/> themselves.</summary>
    public static MemoryFormerTabularOptions TinyOptions(int epochs = 25) => new()
    {
        Architecture = TabularPresets.Small with { Width = 16, Layers = 1, Heads = 2, Dropout = 0 },
        BatchSize = 32, Epochs = epochs, LearningRate = 5e-3, EarlyStoppingPatience = 0, Seed = 7, EnsembleSize = 1,
    };

    public static float[][] Points(int count, int seed, double missing = 0)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, 4)
            .Select(_ => random.NextDouble() < missing ? float.NaN : (float)(random.NextDouble() * 4 - 2)).ToArray()).ToArray();
    }

    public static IEnumerable<Named> NamedRows(int count, int seed) => Points(count, seed).Select(x => new Named
    {
        Strong = x[0], Weak = x[1], Noise = x[2], Unused = x[3], Label = 10 + 3 * x[0] - x[1], IsHigh = x[0] + 0.3f * x[1] > 0,
    });

    public static IEnumerable<Regression> RegressionRows(int count, int seed) =>
        Points(count, seed).Select(x => new Regression { Features = x, Label = 10 + 3 * x[0] - 2 * x[1] });

    /// <summary>Label = x0 + x1 > 0; a NaN in slot 2 means "true" whatever the rest says (only the missing embedding can tell).</summary>
    public static IEnumerable<Binary> BinaryRows(int count, int seed) =>
        Points(count, seed, missing: 0.1).Select(x =>
        {
            x[0] = float.IsNaN(x[0]) ? 0 : x[0];
            x[1] = float.IsNaN(x[1]) ? 0 : x[1];
            return new Binary { Features = x, Label = float.IsNaN(x[2]) || x[0] + x[1] > 0 };
        });

    public static IEnumerable<Multiclass> MulticlassRows(int count, int seed) =>
        Points(count, seed).Select(x => new Multiclass
        {
            Features = x, Label = x[0] > 0.7 ? "high" : x[0] < -0.7 ? "low" : "mid",
        });
}
