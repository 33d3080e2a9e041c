using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// The shared Q/K/V call's gate for the tiled forward (<see cref="KernelSettings.TiledSharedForward"/>): which calls it sends
/// to <see cref="TiledGather"/>, and that those calls give the same bytes as before, forward and backward.
/// </summary>
public class TiledSharedForwardTests
{
    private const long MB = 1L << 20;

    /// <summary>Whether the call takes the tiled forward, with the aligned gate sized for an L2 and L3 (Zen 4's by default).</summary>
    private static bool Takes(int n, int k, long rowLimit, int[] widths, long[] bytes, bool shared, long l2 = 1 * MB, long l3 = 32 * MB)
    {
        bool result = false;
        KernelSettings.Current.With(s =>
        {
            s.TiledSharedForward = shared;
            s.TiledForwardAlignedMinTableBytes = KernelSettings.AlignedTiledForwardGate(l2, l3);
        }, () => result = FusedMemoryGather.TakesTiledForward(n, k, rowLimit, widths, bytes, KernelSettings.Current));
        return result;
    }

    [SkippableFact]
    public void On_an_L3_that_does_not_spare_the_token_major_kernel_the_aligned_d256_tables_are_tiled_alone_too()
    {
        Skip.IfNot(TiledGather.IsAccelerated, "The tiled kernel needs AVX-512.");
        const long l2 = 2 * MB, l3 = 300 * MB;                                                              // Emerald Rapids: an 8 MB gate
        Assert.True(Takes(2048, 32, 8192, [320], [10 * MB], shared: true, l2, l3));                       // ML₁: now tiled
        Assert.True(Takes(2048, 32, 8192, [256, 256, 256], [8 * MB, 8 * MB, 8 * MB], shared: false, l2, l3)); // each Q/K/V table alone
        Assert.False(Takes(2048, 32, 8192, [252], [10 * MB], shared: true, l2, l3));                      // h mod 8 ≠ 0: the 16 MB gate, same bits
        Assert.True(Takes(2048, 32, 8192, [252], [16 * MB], shared: true, l2, l3));                       // … which it reaches as before
        Assert.False(Takes(2048, 32, 8192, [320], [4 * MB], shared: true, l2, l3));                       // below 4 × L2
        Assert.False(Takes(2048, 32, 32768, [256], [32 * MB], shared: true, l2, l3));                     // ML₂: 2 hits a row
    }

    [SkippableFact]
    public void The_d256_training_shapes_tile_only_the_shared_call()
    {
        Skip.IfNot(TiledGather.IsAccelerated, "The tiled kernel needs AVX-512.");
        // d = 256, N = 2048, K = 32: Q/K/V three [8192, 256] tables of 8 MB; ML₁ one [8192, 320] of 10 MB (Zen 4's caches).
        Assert.True(Takes(2048, 32, 8192, [256, 256, 256], [8 * MB, 8 * MB, 8 * MB], shared: true));
        Assert.False(Takes(2048, 32, 8192, [256, 256, 256], [8 * MB, 8 * MB, 8 * MB], shared: false));  // before: each table alone
        Assert.False(Takes(2048, 32, 8192, [320], [10 * MB], shared: true));                           // one table: unchanged
        Assert.False(Takes(2048, 32, 32768, [256], [32 * MB], shared: true));                          // ML₂: 2 hits a row
        Assert.True(Takes(2048, 64, 16384, [512, 512, 512], [32 * MB, 32 * MB, 32 * MB], shared: false)); // d = 512: as before
        Assert.False(Takes(2048, 32, 8192, [252, 252, 252], [8 * MB, 8 * MB, 8 * MB], shared: true));  // h mod 8 ≠ 0: bits would differ
        Assert.False(Takes(1, 32, 8192, [256, 256, 256], [8 * MB, 8 * MB, 8 * MB], shared: true));     // decode: too few hits a row
    }

    [SkippableFact]
    public void A_shared_call_below_the_per_table_size_gives_the_same_bytes_forward_and_backward()
    {
        Skip.IfNot(TiledGather.IsAccelerated, "The tiled kernel needs AVX-512.");
        using var scope = NewDisposeScope();
        const int n = 200, k = 4, bits = 4, h = 48;                     // 64 rows a table: 12.5 hits a row, tables of 12 KB
        var gen = new Generator(11);
        var rows = randint(0, 1 << bits, [n, k], dtype: ScalarType.Int64, generator: gen) + (arange(k, dtype: ScalarType.Int64) * (1 << bits)).unsqueeze(0);
        var weights = rand([n, k], generator: gen);
        var tables = Enumerable.Range(0, 3).Select(_ => randn([k << bits, h], generator: gen) * 0.02f).ToArray();
        var biases = Enumerable.Range(0, 3).Select(_ => randn([h], generator: gen)).ToArray();
        var upstream = Enumerable.Range(0, 3).Select(_ => randn([n, h], generator: gen)).ToArray();
        Assert.True(FusedMemoryGather.TakesTiledForward(n, k, k << bits, [h, h, h], [12 << 10, 12 << 10, 12 << 10],
            Settings(shared: true)));

        var before = Run(rows, weights, tables, biases, upstream, shared: false);
        var after = Run(rows, weights, tables, biases, upstream, shared: true);
        for (int i = 0; i < before.Length; i++)
            Assert.True(before[i].bytes.ToArray().AsSpan().SequenceEqual(after[i].bytes.ToArray()), $"tensor {i} differs");
    }

    [SkippableFact]
    public void MemoryQkv_gives_the_same_bytes_with_its_three_tables_tiled_together()
    {
        Skip.IfNot(TiledGather.IsAccelerated, "The tiled kernel needs AVX-512.");
        using var scope = NewDisposeScope();
        random.manual_seed(21);
        using var qkv = new MemoryQkv(MemoryFormerConfig.Nano);                  // d = 16, τ = 4, K = 4: three [64, 16] tables of 4 KB
        var x = randn(256, 16);                                                  // 16 hits a row
        var upstream = Enumerable.Range(0, 3).Select(_ => randn(256, 16)).ToArray();
        Assert.True(FusedMemoryGather.TakesTiledForward(256, 4, 64, [16, 16, 16], [4 << 10, 4 << 10, 4 << 10],
            new KernelSettings { TiledForwardMinTableBytes = 10 << 10 }));

        Tensor[] Run(bool shared)
        {
            Tensor[] result = [];
            KernelSettings.Current.With(s =>
            {
                s.TiledSharedForward = shared;
                s.TiledForwardMinTableBytes = 10 << 10;                          // between one table (4 KB) and the three (12 KB)
            }, () =>
            {
                qkv.zero_grad();
                var input = x.detach().clone().requires_grad_(true);
                var (q, k, v) = qkv.call(input);
                autograd.backward([q, k, v], upstream);
                result = [q.detach(), k.detach(), v.detach(), input.grad!, .. qkv.parameters().Select(p => p.grad!.clone())];
            });
            return result;
        }
        var before = Run(shared: false);
        var after = Run(shared: true);
        Assert.Equal(before.Length, after.Length);
        for (int i = 0; i < before.Length; i++)
            Assert.True(before[i].bytes.ToArray().AsSpan().SequenceEqual(after[i].bytes.ToArray()), $"tensor {i} differs");
    }

    /// <summary>Settings as the test runs them: a 30 KB gate, between one 12 KB table and the three together.</summary>
    private static KernelSettings Settings(bool shared) => new() { TiledSharedForward = shared, TiledForwardMinTableBytes = 30 << 10 };

    /// <summary>The three outputs, the weight gradient, the three table and bias gradients of one fused call.</summary>
    private static Tensor[] Run(Tensor rows, Tensor weights, Tensor[] tables, Tensor[] biases, Tensor[] upstream, bool shared)
    {
        Tensor[] result = [];
        KernelSettings.Current.With(s =>
        {
            s.TiledSharedForward = shared;
            s.TiledForwardMinTableBytes = 30 << 10;
        }, () =>
        {
            var w = weights.detach().clone().requires_grad_(true);
            var t = tables.Select(x => x.detach().clone().requires_grad_(true)).ToArray();
            var b = biases.Select(x => x.detach().clone().requires_grad_(true)).ToArray();
            var y = FusedMemoryGather.ApplyMany(rows, w, t, biases: b);
            autograd.backward(y, upstream);
            result = [.. y.Select(o => o.detach()), w.grad!, .. t.Select(x => x.grad!), .. b.Select(x => x.grad!)];
        });
        return result;
    }
}
