using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// The tiled forward's pooled tile-major buffer read again without copying (<see cref="KernelSettings.ReuseTileMajorBuffer"/>):
/// a forward over an unchanged table reads it and gives the same bits as copying the table; a table changed in any way the library
/// knows of (a user's edit, a load, the update fused into the backward, another layer's table) is copied again.
/// </summary>
public class TileMajorBufferTests
{
    [SkippableTheory]
    [InlineData(64)]
    [InlineData(70)]                                                              // a zero-padded last tile
    public void A_forward_over_an_unchanged_table_reads_the_pooled_copy_with_the_same_bits(int h)
    {
        Skip.IfNot(TableVersion.IsAvailable && TiledGather.IsAccelerated, "Needs libtorch's version counter and AVX-512.");
        random.manual_seed(5);
        using var layer = Layer(h);
        var x = randn(301, 48);                                                   // 301 tokens: a partial 8-token block
        var copied = Forward(layer, x, reuse: false, grad: false);
        Forward(layer, x, reuse: true, grad: false);                              // fills the buffer (or finds it filled)
        long before = TileMajorBuffer.Reuses;
        var reused = Forward(layer, x, reuse: true, grad: false);
        var reusedWithGraph = Forward(layer, x, reuse: true, grad: true);
        Assert.Equal(before + 2, TileMajorBuffer.Reuses);
        AssertSameBits(copied, reused);
        AssertSameBits(copied, reusedWithGraph);
    }

    [SkippableFact]
    public void An_edit_or_a_load_is_copied_again()
    {
        Skip.IfNot(TableVersion.IsAvailable && TiledGather.IsAccelerated, "Needs libtorch's version counter and AVX-512.");
        random.manual_seed(6);
        using var layer = Layer(32);
        var x = randn(300, 48);
        var first = Forward(layer, x, reuse: true, grad: false);
        var bytes = ModuleWeights.ToBytes(layer);

        using (no_grad())
            layer.Table[3, 1] = layer.Table[3, 1] + 0.5f;                         // a user's edit
        var edited = Forward(layer, x, reuse: true, grad: false);
        Assert.False(first.eq(edited).all().item<bool>(), "the edit changed nothing");
        AssertSameBits(Forward(layer, x, reuse: false, grad: false), edited);

        ModuleWeights.Load(layer, bytes, MemoryFormerConfig.Nano);                // a raw load into the same storage
        AssertSameBits(first, Forward(layer, x, reuse: true, grad: false));
    }

    [SkippableTheory]
    [InlineData(ScalarType.BFloat16, false)]
    [InlineData(ScalarType.Float32, false)]
    [InlineData(ScalarType.Float32, true)]                                       // the step applied block by block (BlockedTableGradient)
    public void A_table_updated_inside_the_backward_is_copied_again(ScalarType moments, bool blocked)
    {
        Skip.IfNot(TableVersion.IsAvailable && TiledGather.IsAccelerated, "Needs libtorch's version counter and AVX-512.");
        random.manual_seed(7);
        using var layer = Layer(32);
        var x = randn(300, 48);
        using var m = zeros(layer.Table.shape, moments);
        using var v = zeros(layer.Table.shape, moments);
        layer.Gradient.Attached = true;
        for (int step = 1; step <= 3; step++)
        {
            var update = new TableUpdate(m, v, new AdamWKernel.Coefficients(1e-2, 0.9, 0.95, 1e-8, 0.1, step, 1.0), Bf16Moments.Salt(step, 0));
            layer.Gradient.Update = update;
            var before = Forward(layer, x, reuse: true, grad: false);
            KernelSettings.Current.With(k => { k.TiledForwardMinTableBytes = 0; k.BlockedTableGradient = blocked; }, () =>
            {
                using var scope = NewDisposeScope();
                layer.call(x.detach().clone().requires_grad_(true)).sum().backward();   // the step applied in the backward, no version bump
            });
            layer.Gradient.Update = null;
            Assert.True(update.Applied, "the backward did not apply the armed step");
            var after = Forward(layer, x, reuse: true, grad: false);
            Assert.False(before.eq(after).all().item<bool>(), "the update changed nothing");
            AssertSameBits(Forward(layer, x, reuse: false, grad: false), after);
        }
    }

    [SkippableFact]
    public void Two_layers_read_in_turn_each_get_their_own_table()
    {
        Skip.IfNot(TableVersion.IsAvailable && TiledGather.IsAccelerated, "Needs libtorch's version counter and AVX-512.");
        random.manual_seed(8);
        using var a = Layer(32);
        using var b = Layer(32);
        var x = randn(300, 48);
        var (aCopied, bCopied) = (Forward(a, x, reuse: false, grad: false), Forward(b, x, reuse: false, grad: false));
        for (int i = 0; i < 2; i++)
        {
            AssertSameBits(aCopied, Forward(a, x, reuse: true, grad: false));
            AssertSameBits(bCopied, Forward(b, x, reuse: true, grad: false));
        }
    }

    [Fact]
    public void Buffers_rented_at_the_same_time_are_all_kept_and_each_goes_back_to_its_table()
    {
        TileMajorBuffer.Drain();
        long allocations = TileMajorBuffer.Allocations;
        var (keyA, keyB) = (new TileMajorBuffer.Key(1, 64, 512, 32, 0, 0), new TileMajorBuffer.Key(2, 128, 512, 32, 0, 0));
        nint a = TileMajorBuffer.Rent(1000, out long sizeA, out var heldA, [keyA]);   // two callers at once: two buffers
        nint b = TileMajorBuffer.Rent(1000, out long sizeB, out var heldB, [keyB]);
        Assert.Equal(allocations + 2, TileMajorBuffer.Allocations);
        Assert.Null(heldA);
        Assert.Null(heldB);
        TileMajorBuffer.Return(a, sizeA, keyA);
        TileMajorBuffer.Return(b, sizeB, keyB);
        Assert.Equal(2, TileMajorBuffer.Pooled);                                  // both kept, not only one

        nint b2 = TileMajorBuffer.Rent(1000, out sizeB, out heldB, [keyB]);        // each caller gets the buffer holding its table
        nint a2 = TileMajorBuffer.Rent(1000, out sizeA, out heldA, [keyA]);
        Assert.Equal(allocations + 2, TileMajorBuffer.Allocations);               // reused: nothing allocated
        Assert.Equal((b, keyB), (b2, heldB));
        Assert.Equal((a, keyA), (a2, heldA));
        TileMajorBuffer.Return(a2, sizeA, keyA);
        TileMajorBuffer.Return(b2, sizeB, keyB);

        nint other = TileMajorBuffer.Rent(1000, out long size, out var held, [new TileMajorBuffer.Key(3, 64, 512, 32, 0, 0)]);
        Assert.Equal(allocations + 2, TileMajorBuffer.Allocations);               // a third table gets one of them ...
        Assert.True(held == keyA || held == keyB);                                // ... holding another table: the caller copies
        TileMajorBuffer.Return(other, size, null);
    }

    [Fact]
    public void The_pool_keeps_at_most_its_capacity()
    {
        TileMajorBuffer.Drain();
        var rented = Enumerable.Range(0, TileMajorBuffer.Capacity + 2)
            .Select(i => (Buffer: TileMajorBuffer.Rent(256 * (i + 1), out long size, out _), Size: size)).ToList();
        foreach (var (buffer, size) in rented)
            TileMajorBuffer.Return(buffer, size);
        Assert.Equal(TileMajorBuffer.Capacity, TileMajorBuffer.Pooled);
        long allocations = TileMajorBuffer.Allocations;                           // the largest ones were kept
        var again = TileMajorBuffer.Rent(256 * (TileMajorBuffer.Capacity + 2), out long largest, out _);
        Assert.Equal(allocations, TileMajorBuffer.Allocations);
        TileMajorBuffer.Return(again, largest);
        TileMajorBuffer.Drain();
        Assert.Equal(0, TileMajorBuffer.Pooled);
    }

    [SkippableFact]
    public void Forwards_on_several_threads_at_once_give_each_layer_its_own_bits()
    {
        Skip.IfNot(TableVersion.IsAvailable && TiledGather.IsAccelerated, "Needs libtorch's version counter and AVX-512.");
        random.manual_seed(9);
        var layers = Enumerable.Range(0, 3).Select(_ => Layer(32)).ToArray();
        var x = randn(300, 48);
        var expected = layers.Select(l => Forward(l, x, reuse: false, grad: false)).ToArray();
        var outputs = new Tensor[layers.Length][];
        KernelSettings.Current.With(k =>
        {
            k.ReuseTileMajorBuffer = true;
            k.TiledForwardMinTableBytes = 0;
        }, () =>
        {
            using var noGrad = no_grad();
            Parallel.For(0, layers.Length, new ParallelOptions { MaxDegreeOfParallelism = layers.Length }, i =>
            {
                using var threadNoGrad = no_grad();
                outputs[i] = Enumerable.Range(0, 4).Select(_ => layers[i].call(x).detach()).ToArray();
            });
        });
        for (int i = 0; i < layers.Length; i++)
            foreach (var y in outputs[i])
                AssertSameBits(expected[i], y);
        foreach (var layer in layers)
            layer.Dispose();
    }

    /// <summary>K = 8 chunks of τ = 6 (512 rows), so 300 tokens hit each row about 4.7 times: the tiled forward runs.</summary>
    private static MemoryLayer Layer(int h) => new(8, 6, h, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.1, 0.01);

    private static Tensor Forward(MemoryLayer layer, Tensor x, bool reuse, bool grad)
    {
        Tensor y = null!;
        KernelSettings.Current.With(k =>
        {
            k.ReuseTileMajorBuffer = reuse;
            k.TiledForwardMinTableBytes = 0;
        }, () =>
        {
            using var noGrad = grad ? null : no_grad();
            var input = grad ? x.detach().clone().requires_grad_(true) : x;
            y = layer.call(input).detach();
        });
        return y;
    }

    private static void AssertSameBits(Tensor expected, Tensor actual) =>
        Assert.True(expected.bytes.ToArray().AsSpan().SequenceEqual(actual.bytes.ToArray()), "the outputs differ");
}
