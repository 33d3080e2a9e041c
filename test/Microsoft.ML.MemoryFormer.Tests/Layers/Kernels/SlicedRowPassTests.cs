using System.Runtime.Intrinsics;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// The row pass over 32-column slices (<see cref="SlicedRowPass"/>, <see cref="KernelSettings.SlicedRowPass"/>) against the
/// whole-row pass it replaces: the same table gradient to the bit, the same weight gradient and norm within rounding, the
/// same bytes on one and two threads.
/// </summary>
public class SlicedRowPassTests
{
    /// <summary>Random global rows (chunk k reads rows [k·2^τ, (k+1)·2^τ)), weights, a table and an upstream gradient.</summary>
    private static (Tensor Rows, Tensor Weights, Tensor Table, Tensor Upstream) Inputs(int n, int k, int bits, int h, long seed)
    {
        var gen = new Generator((ulong)seed);
        int buckets = 1 << bits;
        var codes = randint(0, buckets, [n, k], dtype: ScalarType.Int64, generator: gen);
        var rows = codes + (arange(k, dtype: ScalarType.Int64) * buckets).unsqueeze(0);
        return (rows, rand([n, k], generator: gen), randn([k * buckets, h], generator: gen) * 0.02f, randn([n, h], generator: gen));
    }

    /// <summary>The weight and table gradients of one fused gather with the sliced pass on or off, and the recorded norm.</summary>
    private static (Tensor Weights, Tensor Table, double Squares) Gradients(Tensor rows, Tensor weights, Tensor table, Tensor upstream, bool sliced)
    {
        var w = weights.detach().clone().requires_grad_(true);
        var t = table.detach().clone().requires_grad_(true);
        using var sink = new TableGradient { Attached = true };
        sink.Rent(t).fill_(float.NaN);                                      // every element must be written
        KernelSettings.Current.With(s => (s.SlicedRowPass, s.WriteTouchedRowsOnly) = (sliced, false),
            () => (FusedMemoryGather.ApplyMany(rows, w, [t], [sink])[0] * upstream).sum().backward());
        Assert.True(sink.TryTakeSquaredNorm(t, out double squares));
        return (w.grad!, t.grad!.clone(), squares);
    }

    private static void AssertBitEqual(Tensor expected, Tensor actual) =>
        Assert.True(expected.bytes.ToArray().AsSpan().SequenceEqual(actual.bytes.ToArray()),
            $"max |diff| = {(expected - actual).abs().max().item<float>()}");

    [SkippableTheory]
    [InlineData(1, 4, 3, 32)]       // N = 1: most rows without hits, one slice
    [InlineData(13, 5, 4, 64)]      // hit counts below and above the four-hit step
    [InlineData(300, 16, 8, 128)]   // τ = 8
    [InlineData(257, 6, 5, 96)]     // three slices
    [InlineData(600, 8, 6, 512)]    // sixteen slices, many hits per row
    public void Sliced_pass_equals_the_whole_row_pass(int n, int k, int bits, int h)
    {
        Skip.IfNot(SlicedRowPass.Applies(h), "The sliced pass needs AVX-512.");
        using var scope = NewDisposeScope();
        var (rows, weights, table, upstream) = Inputs(n, k, bits, h, seed: (n * 31) + h);

        var whole = Gradients(rows, weights, table, upstream, sliced: false);
        var sliced = Gradients(rows, weights, table, upstream, sliced: true);

        // Each column is the same chain of fused multiply-adds over the row's hits in ascending token order.
        AssertBitEqual(whole.Table, sliced.Table);
        // Inner products and the norm are summed per 32-column slice instead of per 128-column tile: rounding only.
        Assert.True(allclose(sliced.Weights, whole.Weights, 1e-5, 1e-6), $"max |diff| = {(sliced.Weights - whole.Weights).abs().max().item<float>()}");
        Assert.Equal(whole.Squares, sliced.Squares, whole.Squares * 1e-5);
        double expected = whole.Table.to(ScalarType.Float64).pow(2).sum().item<double>();
        Assert.Equal(expected, sliced.Squares, expected * 1e-5);
    }

    [SkippableFact]
    public void One_and_two_threads_give_the_same_bytes()
    {
        Skip.IfNot(SlicedRowPass.Applies(64), "The sliced pass needs AVX-512.");
        using var scope = NewDisposeScope();
        var (rows, weights, table, upstream) = Inputs(700, 8, 9, 64, seed: 5);  // 4,096 rows: one block per thread
        int previous = get_num_threads();
        try
        {
            set_num_threads(1);
            var one = Gradients(rows, weights, table, upstream, sliced: true);
            set_num_threads(2);
            var two = Gradients(rows, weights, table, upstream, sliced: true);
            AssertBitEqual(one.Table, two.Table);
            AssertBitEqual(one.Weights, two.Weights);
            Assert.Equal(one.Squares, two.Squares);
        }
        finally { set_num_threads(previous); }
    }

    [SkippableFact]
    public void Four_sums_are_each_vectors_lane_sum()
    {
        Skip.IfNot(SlicedRowPass.Applies(32), "The sliced pass needs AVX-512.");
        var rng = new Random(3);
        var lanes = new float[64];
        for (int trial = 0; trial < 2000; trial++)
        {
            for (int i = 0; i < lanes.Length; i++)
                lanes[i] = (float)(rng.NextDouble() - 0.5);
            var sums = SlicedRowPass.Sum4(Vector512.Create(lanes.AsSpan(0, 16)), Vector512.Create(lanes.AsSpan(16, 16)),
                Vector512.Create(lanes.AsSpan(32, 16)), Vector512.Create(lanes.AsSpan(48, 16)));
            for (int v = 0; v < 4; v++)
            {
                double exact = 0;
                for (int i = 0; i < 16; i++)
                    exact += lanes[(v * 16) + i];
                Assert.Equal(exact, sums[v], 1e-5);
            }
        }
    }
}
