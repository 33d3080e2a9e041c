using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// <see cref="KernelSettings.SpreadRowRanges"/>: the row pass's workers take blocks of rows half the table apart instead of
/// neighbouring ones. Every row is still done by one worker with the same operations, so the same bytes: the table gradient or
/// the fused update's table and moments, ∂L/∂w and the squared norm, and training steps. Run on two threads (where the order differs).
/// </summary>
public unsafe class SpreadRowRangesTests
{
    private static readonly AdamWKernel.Coefficients Step3 = new(lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 3, gradScale: 0.37);

    [Theory]
    [InlineData(256, 6, true)]
    [InlineData(256, 6, false)]
    [InlineData(320, 5, true)]                                           // 256 columns of 512-bit tiles, the rest 32 at a time
    [InlineData(48, 7, false)]
    public void The_row_pass_gives_the_same_bytes_either_way(int h, int bits, bool update)
    {
        const int n = 200, k = 4;
        var rng = new Random(h + bits);
        int bucket = 1 << bits, rowCount = k * bucket;
        var data = new Data(
            Enumerable.Range(0, n * k).Select(i => ((i % k) * bucket) + rng.Next(bucket)).ToArray(), n, k, rowCount, h,
            Floats(rng, n * k, 1f), Floats(rng, rowCount * h, 0.04f), Floats(rng, n * h, 1f),
            Floats(rng, rowCount * h, 0.01f).Select(ToBf16).ToArray(), Floats(rng, rowCount * h, 1e-4f, positive: true).Select(ToBf16).ToArray());
        var spread = OnTwoThreads(() => Pass(true, data, update));
        var plain = OnTwoThreads(() => Pass(false, data, update));
        Assert.Equal(plain.Norm, spread.Norm);
        Assert.True(plain.Table.AsSpan().SequenceEqual(spread.Table), "table or its gradient");
        Assert.True(plain.M.AsSpan().SequenceEqual(spread.M), "first moment");
        Assert.True(plain.V.AsSpan().SequenceEqual(spread.V), "second moment");
        Assert.True(plain.Gw.AsSpan().SequenceEqual(spread.Gw), "weight gradient");
        Assert.Contains(spread.Gw, x => x != 0f);
        Assert.Contains(spread.Table, x => x != 0f);
    }

    private sealed record Data(int[] Rows, int N, int K, int RowCount, int H, float[] Weights, float[] Table, float[] GradOut, ushort[] M, ushort[] V);

    /// <summary>The fused update (table and moments updated) or the gradient written (returned in place of the table).</summary>
    private static (double Norm, float[] Table, ushort[] M, ushort[] V, float[] Gw) Pass(bool spread, Data d, bool update)
    {
        float[] table = (float[])d.Table.Clone(), gw = new float[d.N * d.K];
        ushort[] m = (ushort[])d.M.Clone(), v = (ushort[])d.V.Clone();
        using var gradient = zeros(d.RowCount, d.H);
        double norm = 0;
        fixed (float* w = d.Weights, t = table, dy = d.GradOut, gwp = gw)
        fixed (ushort* mp = m, vp = v)
        {
            using var hits = RowHits.Build(d.Rows, d.Rows.Length, d.K, w, d.RowCount, chunked: true);
            var pass = new TableGradientPass.RowPass(hits, (nint)t, (nint)dy, d.H, (nint)gwp);
            var step = new BlockedTableGradient.FusedStep((nint)mp, (nint)vp, Step3, Bf16: true, Salt: Bf16Moments.Salt(3, 0));
            KernelSettings.Current.With(s => s.SpreadRowRanges = spread, () => norm = update
                ? TableGradientPass.UpdateAll(pass, d.RowCount, step)
                : TableGradientPass.WriteAll(pass, d.RowCount, gradient, accumulate: false));
        }
        return (norm, update ? table : gradient.data<float>().ToArray(), m, v, gw);
    }

    [Fact]
    public void Training_steps_give_the_same_bytes_either_way()
    {
        var plain = OnTwoThreads(() => Train(spread: false));
        var spread = OnTwoThreads(() => Train(spread: true));
        Assert.Equal(plain.Losses, spread.Losses);
        Assert.Equal(plain.Parameters.Length, spread.Parameters.Length);
        for (int i = 0; i < plain.Parameters.Length; i++)
            Assert.True(plain.Parameters[i].AsSpan().SequenceEqual(spread.Parameters[i]), $"parameter {i} differs");
    }

    /// <summary>Three steps of a d = 256 model with PreviousStep clipping (the update fused into the row pass) and bf16 table moments.</summary>
    private static (byte[][] Parameters, IReadOnlyList<double> Losses) Train(bool spread)
    {
        byte[][] parameters = [];
        IReadOnlyList<double> losses = [];
        KernelSettings.Current.With(k => k.SpreadRowRanges = spread, () =>
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

    private static T OnTwoThreads<T>(Func<T> body)
    {
        int threads = get_num_threads();
        try
        {
            set_num_threads(2);
            return body();
        }
        finally
        {
            set_num_threads(threads);
        }
    }

    private static float[] Floats(Random rng, int n, float scale, bool positive = false) =>
        Enumerable.Range(0, n).Select(_ => (float)(positive ? rng.NextDouble() : rng.NextDouble() - 0.5) * scale).ToArray();

    private static ushort ToBf16(float x) => (ushort)(BitConverter.SingleToUInt32Bits(x) >> 16);
}
