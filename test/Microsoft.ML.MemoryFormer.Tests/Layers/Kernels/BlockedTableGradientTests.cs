using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// The gather's blocked table-gradient backward (<see cref="BlockedTableGradient"/>, <see cref="KernelSettings.BlockedTableGradient"/>)
/// against the row pass it replaces: the same table gradient to the bit, the same weight gradient within rounding, any
/// thread count.
/// </summary>
/// <remarks>Bit equality of the table gradient holds where both kernels use the same arithmetic per column: fused
/// multiply-adds over whole vectors, plain multiply-adds over a scalar tail, and the row pass's weight-gradient kernel
/// (it runs when the weights need a gradient), so every comparison here gives the weights a gradient.</remarks>
public class BlockedTableGradientTests
{
    /// <summary>Random global rows (chunk k reads rows [k·2^τ, (k+1)·2^τ)), weights, a table and an upstream gradient.</summary>
    private static (Tensor Rows, Tensor Weights, Tensor Table, Tensor Upstream) Inputs(int n, int k, int bits, int h, long seed)
    {
        var gen = new Generator((ulong)seed);
        int buckets = 1 << bits;
        var codes = randint(0, buckets, [n, k], dtype: ScalarType.Int64, generator: gen);
        var rows = codes + (arange(k, dtype: ScalarType.Int64) * buckets).unsqueeze(0);
        var weights = rand([n, k], generator: gen);
        var table = randn([k * buckets, h], generator: gen) * 0.02f;
        return (rows, weights, table, randn([n, h], generator: gen));
    }

    /// <summary>The weight and table gradients of one fused gather with the blocked backward switched on or off (the row pass on
    /// fp32 ∂L/∂y, which the blocked kernel matches bit for bit; the bf16 row pass has its own tests, Bf16GradientRowsTests).</summary>
    private static (Tensor Weights, Tensor Table) Gradients(Tensor rows, Tensor weights, Tensor table, Tensor upstream, bool blocked)
    {
        var w = weights.detach().clone().requires_grad_(true);
        var t = table.detach().clone().requires_grad_(true);
        KernelSettings.Current.With(s => (s.BlockedTableGradient, s.Bf16GradientRows) = (blocked, false),
            () => (FusedMemoryGather.Apply(rows, w, t) * upstream).sum().backward());
        return (w.grad!, t.grad!);
    }

    private static void AssertBitEqual(Tensor expected, Tensor actual) =>
        Assert.True(expected.bytes.ToArray().AsSpan().SequenceEqual(actual.bytes.ToArray()),
            $"max |diff| = {(expected - actual).abs().max().item<float>()}");

    [Theory]
    [InlineData(1, 4, 3, 8)]        // N = 1, a width below one vector
    [InlineData(13, 5, 4, 67)]      // K odd (the last group has one chunk), h = a 64-wide tile + a 3-column scalar tile
    [InlineData(130, 16, 8, 200)]   // τ = 8, h not a multiple of the 64-column tile
    [InlineData(70, 8, 6, 300)]     // a 44-column last tile: two vectors, then scalar columns
    [InlineData(257, 6, 5, 64)]
    [InlineData(40, 3, 10, 32)]     // τ = 10, fewer tokens than rows per chunk
    public void Blocked_backward_equals_the_row_pass(int n, int k, int bits, int h)
    {
        using var scope = NewDisposeScope();
        var (rows, weights, table, upstream) = Inputs(n, k, bits, h, seed: (n * 31) + h);

        var rowPass = Gradients(rows, weights, table, upstream, blocked: false);
        var blocked = Gradients(rows, weights, table, upstream, blocked: true);

        // Each row's hits are summed in ascending token order with the same multiply-adds per column in both kernels.
        AssertBitEqual(rowPass.Table, blocked.Table);
        // Inner products are summed over other column tiles (64 here, 128 or 32 there): rounding only.
        Assert.True(allclose(blocked.Weights, rowPass.Weights, 1e-5, 1e-6), $"max |diff| = {(blocked.Weights - rowPass.Weights).abs().max().item<float>()}");
    }

    [SkippableTheory]
    [InlineData(64, 1)]
    [InlineData(16, 3)]     // K = 7 is not a multiple of 3
    [InlineData(48, 2)]     // h = 100: tiles of 48, 48, 4 columns
    [InlineData(128, 7)]    // one group, one tile wider than h
    public unsafe void Any_block_shape_gives_the_row_pass_gradient(int tileWidth, int groupChunks)
    {
        Skip.IfNot(BlockedTableGradient.IsAccelerated, "The blocked kernel needs AVX-512.");
        using var scope = NewDisposeScope();
        const int n = 90, k = 7, bits = 5, h = 100;
        var (rows, weights, table, upstream) = Inputs(n, k, bits, h, seed: tileWidth + groupChunks);
        var rowPass = Gradients(rows, weights, table, upstream, blocked: false);
        var rows32 = rows.to(ScalarType.Int32).data<int>().ToArray();
        var grad = full([k << bits, h], float.NaN);                         // every element must be written
        var gw = zeros(n, k);

        double squares = BlockedTableGradient.Write(rows32, n, k, 1 << bits, TensorMemory.Floats(weights), TensorMemory.Floats(table),
            TensorMemory.Floats(upstream), h, TensorMemory.Floats(grad), TensorMemory.Floats(gw), new BlockedTableGradient.Plan(tileWidth, groupChunks));

        AssertBitEqual(rowPass.Table, grad);
        Assert.True(allclose(gw, rowPass.Weights, 1e-5, 1e-6));
        double expected = rowPass.Table.to(ScalarType.Float64).pow(2).sum().item<double>();
        Assert.Equal(expected, squares, expected * 1e-5);
    }

    [Fact]
    public void One_and_two_threads_give_the_same_bytes()
    {
        using var scope = NewDisposeScope();
        var (rows, weights, table, upstream) = Inputs(600, 8, 8, 96, seed: 4);
        int previous = get_num_threads();
        try
        {
            set_num_threads(1);
            var one = Gradients(rows, weights, table, upstream, blocked: true);
            set_num_threads(2);
            var two = Gradients(rows, weights, table, upstream, blocked: true);
            AssertBitEqual(one.Table, two.Table);
            AssertBitEqual(one.Weights, two.Weights);
        }
        finally { set_num_threads(previous); }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_reused_buffer_gets_every_row_and_the_measured_norm_on_either_path(bool blocked)
    {
        using var scope = NewDisposeScope();
        var (rows, weights, table, upstream) = Inputs(200, 4, 6, 96, seed: 9);
        var reference = Gradients(rows, weights, table, upstream, blocked: false).Table;
        var t = table.detach().clone().requires_grad_(true);
        using var sink = new TableGradient { Attached = true };
        sink.Rent(t).fill_(float.NaN);                                      // stale contents must all be overwritten
        KernelSettings.Current.With(s => (s.BlockedTableGradient, s.Bf16GradientRows) = (blocked, false),
            () => (FusedMemoryGather.ApplyMany(rows, weights.detach().clone().requires_grad_(true), [t], [sink])[0] * upstream).sum().backward());

        AssertBitEqual(reference, t.grad!);
        Assert.Null(sink.NonZeroRows);                                      // every row written: no sparse bookkeeping
        Assert.True(sink.TryTakeSquaredNorm(t, out double squares));
        double expected = reference.to(ScalarType.Float64).pow(2).sum().item<double>();
        Assert.Equal(expected, squares, expected * 1e-5);
    }

    [Fact]
    public void Several_tables_sharing_the_rows_match_the_row_pass()
    {
        using var scope = NewDisposeScope();
        var (rows, weights, tableQ, upstreamQ) = Inputs(150, 6, 5, 64, seed: 12);
        var tableK = randn(tableQ.shape[0], 130) * 0.02f;
        var upstreamK = randn(150, 130);
        (Tensor W, Tensor Q, Tensor K) Run(bool blocked)
        {
            var w = weights.detach().clone().requires_grad_(true);
            var q = tableQ.detach().clone().requires_grad_(true);
            var kk = tableK.detach().clone().requires_grad_(true);
            KernelSettings.Current.With(s => (s.BlockedTableGradient, s.Bf16GradientRows) = (blocked, false), () =>
            {
                var outs = FusedMemoryGather.ApplyMany(rows, w, [q, kk]);
                ((outs[0] * upstreamQ).sum() + (outs[1] * upstreamK).sum()).backward();
            });
            return (w.grad!, q.grad!, kk.grad!);
        }
        var off = Run(false);
        var on = Run(true);
        AssertBitEqual(off.Q, on.Q);
        AssertBitEqual(off.K, on.K);
        Assert.True(allclose(on.W, off.W, 1e-5, 1e-6));
    }
}
