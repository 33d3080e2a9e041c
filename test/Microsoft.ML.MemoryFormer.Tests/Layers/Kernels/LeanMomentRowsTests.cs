using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// <see cref="KernelSettings.LeanMomentRows"/>: the bf16-moment AdamW row kernel with its coefficients in locals and one word
/// permute per rounding gives the same bytes as before, in the row update alone, in the row pass with the fused update (table,
/// moments, ∂L/∂w and the gradient's norm) and over training steps.
/// </summary>
public unsafe class LeanMomentRowsTests
{
    private static readonly AdamWKernel.Coefficients Step3 = new(lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 3, gradScale: 0.37);

    [Theory]
    [InlineData(77, 0L)]                                                 // 64 by the 512-bit loop, then the 256-bit and scalar ones
    [InlineData(256, 4096L)]                                             // whole 512-bit steps only: the lean path returns early
    [InlineData(93, 1000L)]
    public void The_row_update_gives_the_same_bytes_either_way(int n, long index)
    {
        var rng = new Random(n);
        float[] p = Floats(rng, n, 0.1f), g = Floats(rng, n, 1f);
        ushort[] m = Floats(rng, n, 0.01f).Select(ToBf16).ToArray(), v = Floats(rng, n, 1e-4f, positive: true).Select(ToBf16).ToArray();
        var lean = Update(true, p, g, m, v, n, index);
        var before = Update(false, p, g, m, v, n, index);
        Assert.Equal(before.P, lean.P);
        Assert.Equal(before.M, lean.M);
        Assert.Equal(before.V, lean.V);
        Assert.NotEqual(p, lean.P);                                           // the row moved
        Assert.NotEqual(m, lean.M);
    }

    private static (float[] P, ushort[] M, ushort[] V) Update(bool lean, float[] p0, float[] g, ushort[] m0, ushort[] v0, int n, long index)
    {
        float[] p = (float[])p0.Clone();
        ushort[] m = (ushort[])m0.Clone(), v = (ushort[])v0.Clone();
        KernelSettings.Current.With(k => k.LeanMomentRows = lean, () =>
        {
            fixed (float* pp = p, gp = g)
            fixed (ushort* mp = m, vp = v)
                Bf16Moments.UpdateRow(pp, gp, mp, vp, n, Step3, index, Bf16Moments.Salt(3, 1));
        });
        return (p, m, v);
    }

    [Theory]
    [InlineData(256, 6)]
    [InlineData(320, 5)]                                                 // 256 columns of 512-bit tiles, the rest 32 at a time
    [InlineData(48, 3)]
    public void The_fused_row_pass_gives_the_same_bytes_either_way(int h, int bits)
    {
        const int n = 200, k = 4;
        var rng = new Random(h);
        int bucket = 1 << bits, rowCount = k * bucket;
        var rows = Enumerable.Range(0, n * k).Select(i => ((i % k) * bucket) + rng.Next(bucket)).ToArray();
        var weights = Floats(rng, n * k, 1f);
        var table = Floats(rng, rowCount * h, 0.04f);
        var gradOut = Floats(rng, n * h, 1f);
        var m = Floats(rng, rowCount * h, 0.01f).Select(ToBf16).ToArray();
        var v = Floats(rng, rowCount * h, 1e-4f, positive: true).Select(ToBf16).ToArray();
        var lean = Pass(true, rows, n, k, rowCount, h, weights, table, gradOut, m, v);
        var before = Pass(false, rows, n, k, rowCount, h, weights, table, gradOut, m, v);
        Assert.Equal(before.Norm, lean.Norm);
        Assert.True(before.Table.AsSpan().SequenceEqual(lean.Table), "table");
        Assert.True(before.M.AsSpan().SequenceEqual(lean.M), "first moment");
        Assert.True(before.V.AsSpan().SequenceEqual(lean.V), "second moment");
        Assert.True(before.Gw.AsSpan().SequenceEqual(lean.Gw), "weight gradient");
        Assert.NotEqual(table, lean.Table);
        Assert.Contains(lean.Gw, x => x != 0f);
    }

    private static (double Norm, float[] Table, ushort[] M, ushort[] V, float[] Gw) Pass(bool lean, int[] rows, int n, int k, int rowCount, int h,
        float[] weights, float[] table0, float[] gradOut, ushort[] m0, ushort[] v0)
    {
        float[] table = (float[])table0.Clone(), gw = new float[n * k];
        ushort[] m = (ushort[])m0.Clone(), v = (ushort[])v0.Clone();
        double norm = 0;
        fixed (float* w = weights, t = table, dy = gradOut, gwp = gw)
        fixed (ushort* mp = m, vp = v)
        {
            using var hits = RowHits.Build(rows, rows.Length, k, w, rowCount, chunked: true);
            var pass = new TableGradientPass.RowPass(hits, (nint)t, (nint)dy, h, (nint)gwp);
            var step = new BlockedTableGradient.FusedStep((nint)mp, (nint)vp, Step3, Bf16: true, Salt: Bf16Moments.Salt(3, 0));
            KernelSettings.Current.With(s => s.LeanMomentRows = lean, () => norm = TableGradientPass.UpdateAll(pass, rowCount, step));
        }
        return (norm, table, m, v, gw);
    }

    [Fact]
    public void Training_steps_give_the_same_bytes_either_way()
    {
        var before = Train(lean: false);
        var lean = Train(lean: true);
        Assert.Equal(before.Losses, lean.Losses);
        Assert.Equal(before.Parameters.Length, lean.Parameters.Length);
        for (int i = 0; i < before.Parameters.Length; i++)
            Assert.True(before.Parameters[i].AsSpan().SequenceEqual(lean.Parameters[i]), $"parameter {i} differs");
    }

    /// <summary>Three steps of a d = 256 model with bf16 table moments and PreviousStep clipping (the update fused into the row pass).</summary>
    private static (byte[][] Parameters, IReadOnlyList<double> Losses) Train(bool lean)
    {
        byte[][] parameters = [];
        IReadOnlyList<double> losses = [];
        KernelSettings.Current.With(k => k.LeanMomentRows = lean, () =>
        {
            random.manual_seed(4);
            var config = MemoryFormerConfig.Nano with { Width = 256, Heads = 2, BitsPerChunk = 4, Layers = 1, ContextLength = 16 };
            using var model = new LanguageModel(config);
            var windows = randint(0, 64, [8, 17], dtype: ScalarType.Int64, generator: new Generator(3));
            var task = new LanguageModelTask(model, windows, windows, batchSize: 8, seed: 4, CPU);
            var options = new TrainingOptions
            {
                MaxSteps = 3, WarmupSteps = 1, ReportEvery = 1, TableGradientClipping = TableGradientClipping.PreviousStep,
                TableMomentPrecision = MomentPrecision.BFloat16,
            };
            losses = TrainingLoop.Run(model, task, options).LossHistory;
            parameters = model.parameters().Select(p => p.bytes.ToArray()).ToArray();
        });
        return (parameters, losses);
    }

    private static float[] Floats(Random rng, int n, float scale, bool positive = false) =>
        Enumerable.Range(0, n).Select(_ => (float)(positive ? rng.NextDouble() : rng.NextDouble() - 0.5) * scale).ToArray();

    private static ushort ToBf16(float x) => (ushort)(BitConverter.SingleToUInt32Bits(x) >> 16);
}
