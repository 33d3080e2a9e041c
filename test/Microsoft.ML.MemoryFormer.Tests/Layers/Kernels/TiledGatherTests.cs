using System.Runtime.InteropServices;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// The gather's tiled forward (<see cref="TiledGather"/>, <see cref="KernelSettings.TiledForward"/>) against the token-major
/// kernel it replaces for large batches: the same bytes where both use fused multiply-adds (every column when h is a
/// multiple of 8), within rounding otherwise, for every cut, any thread count, and a table changed between two calls.
/// </summary>
public class TiledGatherTests
{
    /// <summary>Random global rows (chunk k reads rows [k·2^τ, (k+1)·2^τ)), weights, a table and a bias.</summary>
    private static (Tensor Rows, Tensor Weights, Tensor Table, Tensor Bias) Inputs(int n, int k, int bits, int h, long seed)
    {
        var gen = new Generator((ulong)seed);
        int buckets = 1 << bits;
        var codes = randint(0, buckets, [n, k], dtype: ScalarType.Int64, generator: gen);
        var rows = codes + (arange(k, dtype: ScalarType.Int64) * buckets).unsqueeze(0);
        return (rows, rand([n, k], generator: gen), randn([k * buckets, h], generator: gen) * 0.02f, randn([h], generator: gen));
    }

    /// <summary>The fused gather's outputs with the tiled forward on or off.</summary>
    private static Tensor[] Forward(Tensor rows, Tensor weights, Tensor[] tables, Tensor[]? biases, bool tiled)
    {
        Tensor[] outputs = [];
        KernelSettings.Current.With(s =>
        {
            s.TiledForward = tiled;
            s.TiledForwardMinTableBytes = 0;                                    // the tiny test tables take the tiled path too
        }, () => outputs = FusedMemoryGather.ApplyMany(rows, weights, tables, biases: biases));
        return outputs;
    }

    /// <summary>Equal bytes in the columns both kernels compute with fused multiply-adds (the token-major kernel adds the
    /// last h mod 8 columns without fusing), and within rounding everywhere.</summary>
    private static void AssertSame(Tensor expected, Tensor actual)
    {
        long h = expected.shape[1], fused = h - (h % 8);
        Assert.True(allclose(actual, expected, 1e-5, 1e-6), $"max |diff| = {(expected - actual).abs().max().item<float>()}");
        if (fused > 0)
        {
            var e = expected[.., ..(int)fused].contiguous();
            var a = actual[.., ..(int)fused].contiguous();
            Assert.True(e.bytes.ToArray().AsSpan().SequenceEqual(a.bytes.ToArray()), $"max |diff| = {(e - a).abs().max().item<float>()}");
        }
    }

    [SkippableTheory]
    [InlineData(1, 1, 2, 16)]       // N = 1, K = 1: one token, one chunk, one tile
    [InlineData(1, 3, 1, 40)]       // N = 1; h = 40: two full tiles and an 8-column last tile
    [InlineData(37, 1, 4, 17)]      // K = 1, a 1-column last tile, an odd token count for the 8/4/1-token loops
    [InlineData(13, 5, 3, 67)]      // K odd, h = 4 tiles + 3 columns
    [InlineData(130, 16, 6, 200)]   // several groups with a small scratch
    [InlineData(300, 8, 8, 64)]     // τ = 8
    [InlineData(40, 3, 4, 300)]     // the token-major kernel's 256-column AVX-512 tile, then 8-wide vectors and a scalar tail
    public unsafe void Every_cut_equals_the_token_major_kernel(int n, int k, int bits, int h)
    {
        Skip.IfNot(TiledGather.IsAccelerated, "The tiled kernel needs AVX-512.");
        using var scope = NewDisposeScope();
        var (rows, weights, table, bias) = Inputs(n, k, bits, h, seed: (n * 31) + h);
        var expected = Forward(rows, weights, [table], [bias], tiled: false)[0];
        var rows32 = rows.to(ScalarType.Int32).data<int>().ToArray();
        long rowCount = table.shape[0];
        TiledGather.Plan[] plans = [TiledGather.Plan.Default, new(1, 8, true, true), new(2, 4, true), new(3, 1, false), new(0, 8, false),
            TiledGather.Plan.Strided with { PairTiles = true }, new(2, 8, false, PairTiles: true), new(3, 4, false, PairTiles: true),
            TiledGather.Plan.Default with { PairTiles = true }, new(2, 8, true, true, PairTiles: true)];
        foreach (var plan in plans)
        {
            foreach (bool chunked in new[] { true, false })
            {
                var y = full([n, h], float.NaN);                               // every element must be written
                TiledGather.Forward(rows32, chunked, n, k, rowCount, (nint)TensorMemory.Floats(weights), [(nint)TensorMemory.Floats(table)], [h],
                    [(nint)TensorMemory.Floats(bias)], [(nint)TensorMemory.Floats(y)], plan);
                AssertSame(expected, y);
            }
        }
    }

    [SkippableFact]
    public unsafe void The_chunk_groups_sized_for_any_L2_give_the_same_bytes()
    {
        Skip.IfNot(TiledGather.IsAccelerated, "The tiled kernel needs AVX-512.");
        using var scope = NewDisposeScope();
        const int n = 203, k = 16, bits = 6, h = 48;                             // a chunk's tile: 64 rows × 16 columns = 4 KB
        var (rows, weights, table, bias) = Inputs(n, k, bits, h, seed: 5);
        var rows32 = rows.to(ScalarType.Int32).data<int>().ToArray();
        byte[] Run(int groupBytes)
        {
            var y = full([n, h], float.NaN);
            KernelSettings.Current.With(s => s.TiledGroupBytes = groupBytes, () =>
                TiledGather.Forward(rows32, true, n, k, table.shape[0], (nint)TensorMemory.Floats(weights), [(nint)TensorMemory.Floats(table)], [h],
                    [(nint)TensorMemory.Floats(bias)], [(nint)TensorMemory.Floats(y)], TiledGather.Plan.Default));
            return y.bytes.ToArray();
        }
        var one = Run(1 << 20);                                                   // one group (a 2 MB L2's half)
        Assert.True(one.AsSpan().SequenceEqual(Run(512 << 10)));                  // Zen 4's half of 1 MB: still one group here
        Assert.True(one.AsSpan().SequenceEqual(Run(12 << 10)));                   // three chunks a group: six groups
        Assert.True(one.AsSpan().SequenceEqual(Run(4 << 10)));                    // one chunk a group
        AssertSame(Forward(rows, weights, [table], [bias], tiled: false)[0], from_array(MemoryMarshal.Cast<byte, float>(one).ToArray()).view(n, h));
    }

    [SkippableFact]
    public void Large_batches_take_the_tiled_path_and_small_ones_do_not()
    {
        Skip.IfNot(TiledGather.IsAccelerated, "The tiled kernel needs AVX-512.");
        Assert.True(TiledGather.Pays(n: 2048, k: 64, rowLimit: 64 * 256, h: 512));   // training at d = 512: 8 hits per row
        Assert.False(TiledGather.Pays(n: 1, k: 64, rowLimit: 64 * 256, h: 512));     // decode and small batches
        Assert.False(TiledGather.Pays(n: 4096, k: 64, rowLimit: 64 * 256, h: 8));    // narrower than one tile
    }

    [Fact]
    public void Several_tables_with_biases_and_their_gradients_match_the_token_major_kernel()
    {
        using var scope = NewDisposeScope();
        var (rows, weights, tableQ, biasQ) = Inputs(160, 6, 3, 48, seed: 5);
        var tableK = randn(tableQ.shape[0], 37) * 0.02f;
        var tableV = randn(tableQ.shape[0] + 8, 64) * 0.02f;              // a larger table: rows stay below the smallest one
        var biases = new[] { biasQ, randn(37), randn(64) };
        Assert.True(TiledGather.Pays(160, 6, tableQ.shape[0], 37));

        (Tensor[] Outputs, Tensor W, Tensor[] Tables) Run(bool tiled)
        {
            var w = weights.detach().clone().requires_grad_(true);
            var tables = new[] { tableQ, tableK, tableV }.Select(t => t.detach().clone().requires_grad_(true)).ToArray();
            var outputs = Forward(rows, w, tables, biases, tiled);
            outputs.Select((o, i) => (o * (i + 1)).sum()).Aggregate((a, b) => a + b).backward();
            return (outputs, w.grad!, tables.Select(t => t.grad!).ToArray());
        }
        var off = Run(false);
        var on = Run(true);
        for (int t = 0; t < 3; t++)
        {
            AssertSame(off.Outputs[t], on.Outputs[t]);
            Assert.True(on.Tables[t].bytes.ToArray().AsSpan().SequenceEqual(off.Tables[t].bytes.ToArray()));   // backward unchanged
        }
        Assert.True(allclose(on.W, off.W, 1e-5, 1e-6));
    }

    [SkippableFact]
    public void A_training_forward_copying_tiles_straight_from_the_table_alone_or_in_pairs_gives_the_same_bytes_as_the_tile_major_copy()
    {
        Skip.IfNot(TiledGather.IsAccelerated, "The tiled kernel needs AVX-512.");
        using var scope = NewDisposeScope();
        var (rows, weights, table, bias) = Inputs(203, 16, 5, 80, seed: 9);   // five tiles, several groups with a small scratch
        Assert.True(TiledGather.Pays(203, 16, table.shape[0], 80));
        (byte[] Output, byte[] Table, byte[] Weights) Run(bool strided, bool pairs = false)
        {
            var w = weights.detach().clone().requires_grad_(true);
            var t = table.detach().clone().requires_grad_(true);            // a backward can follow: the plan the switch picks
            Tensor y = null!;
            KernelSettings.Current.With(s =>
            {
                s.TiledForward = true;
                s.TiledForwardMinTableBytes = 0;
                s.TiledGroupBytes = 12 << 10;
                s.TiledStridedCopy = strided;
                s.TiledPairTiles = pairs;
            }, () => y = FusedMemoryGather.ApplyMany(rows, w, [t], biases: [bias])[0]);
            (y * y).sum().backward();
            return (y.detach().bytes.ToArray(), t.grad!.bytes.ToArray(), w.grad!.bytes.ToArray());
        }
        var copied = Run(strided: false);
        var straight = Run(strided: true);
        var paired = Run(strided: true, pairs: true);
        Assert.True(straight.Output.AsSpan().SequenceEqual(copied.Output));
        Assert.True(paired.Output.AsSpan().SequenceEqual(copied.Output));
        Assert.True(paired.Table.AsSpan().SequenceEqual(copied.Table));
        Assert.True(straight.Table.AsSpan().SequenceEqual(copied.Table));
        Assert.True(straight.Weights.AsSpan().SequenceEqual(copied.Weights));
        AssertSame(Forward(rows, weights, [table], [bias], tiled: false)[0],
            from_array(MemoryMarshal.Cast<byte, float>(straight.Output).ToArray()).view(203, 80));
    }

    [Fact]
    public void A_retained_graph_runs_its_backward_twice_after_a_tiled_forward()
    {
        using var scope = NewDisposeScope();
        var (rows, weights, table, _) = Inputs(120, 4, 3, 32, seed: 7);
        var w = weights.detach().clone().requires_grad_(true);
        var t = table.detach().clone().requires_grad_(true);
        var y = Forward(rows, w, [t], null, tiled: true)[0];
        var loss = (y * y).sum();
        loss.backward(retain_graph: true);
        var first = t.grad!.clone();
        loss.backward();
        Assert.True(allclose(t.grad!, first * 2, 1e-5, 1e-7));
        AssertSame(Forward(rows, weights, [table], null, tiled: false)[0], y.detach());
    }

    [Fact]
    public void A_frozen_table_and_a_table_changed_between_two_forwards_are_read_fresh()
    {
        using var scope = NewDisposeScope();
        var (rows, weights, table, bias) = Inputs(100, 4, 3, 40, seed: 8);
        var frozen = table.detach().clone();                                 // no gradient: no backward will follow
        var before = Forward(rows, weights, [frozen], [bias], tiled: true)[0];
        AssertSame(Forward(rows, weights, [frozen], [bias], tiled: false)[0], before);

        frozen.mul_(-3f).add_(ones_like(frozen));                           // the copy of the last call must not be reused
        var after = Forward(rows, weights, [frozen], [bias], tiled: true)[0];
        AssertSame(Forward(rows, weights, [frozen], [bias], tiled: false)[0], after);
        Assert.False(allclose(before, after));
    }

    [Fact]
    public void One_and_two_threads_give_the_same_bytes()
    {
        using var scope = NewDisposeScope();
        var (rows, weights, table, bias) = Inputs(500, 8, 5, 100, seed: 4);
        int previous = get_num_threads();
        try
        {
            set_num_threads(1);
            var one = Forward(rows, weights, [table], [bias], tiled: true)[0];
            set_num_threads(2);
            var two = Forward(rows, weights, [table], [bias], tiled: true)[0];
            Assert.True(one.bytes.ToArray().AsSpan().SequenceEqual(two.bytes.ToArray()));
        }
        finally { set_num_threads(previous); }
    }
}
