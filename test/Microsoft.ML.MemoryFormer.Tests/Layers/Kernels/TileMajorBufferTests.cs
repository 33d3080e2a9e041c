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
