using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// The training forward over a bf16 copy of each table (<see cref="KernelSettings.Bf16ForwardTables"/>): the copy rounds like
/// <see cref="Bf16Matrix.Round"/>; a layer with the switch computes what the fp32 kernels compute on the rounded table (the
/// tiled forward and both gradients bit for bit); and the copy is never stale (see <see cref="Bf16TableCopyTrainingTests"/>).
/// </summary>
public class Bf16TableCopyTests
{
    [SkippableFact]
    public unsafe void The_copy_rounds_every_value_as_the_scalar_bf16_rounding_does()
    {
        Skip.IfNot(System.Runtime.Intrinsics.X86.Avx512F.IsSupported, "The vector rounding needs AVX-512 (the scalar tail is the reference).");
        const int h = 70;
        var rng = new Random(5);
        var values = new float[h];
        for (int i = 0; i < h; i++)
            values[i] = (float)((rng.NextDouble() - 0.5) * Math.Pow(2, rng.Next(-130, 120)));
        uint[] special = [0x3F80_8000, 0x3F81_8000, 0x7FC0_0001, 0xFF80_0000, 0x7F80_0000, 0x8000_0000, 0x0000_0123, 0x7F7F_FFFF, 0x3FFF_FFFF];
        for (int i = 0; i < special.Length; i++)
            values[(i * 7) + 1] = BitConverter.UInt32BitsToSingle(special[i]);
        var copy = new ushort[h];
        var rounded = new float[h];
        fixed (float* src = values, dst = rounded)
        fixed (ushort* bits = copy)
        {
            Bf16TableCopy.WriteRow(src, bits, h);
            Bf16TableCopy.RoundRow(src, dst, h);
        }
        for (int i = 0; i < h; i++)
        {
            Assert.Equal(Bf16Matrix.Round(values[i]), copy[i]);
            Assert.Equal(BitConverter.SingleToUInt32Bits(Bf16Matrix.ToFloat(copy[i])), BitConverter.SingleToUInt32Bits(rounded[i]));
        }
    }

    [SkippableTheory]
    [InlineData(true, 64, 8)]     // the tiled forward (forced on a small table), 32-column bf16 tiles: the output bit for bit too
    [InlineData(true, 32, 40)]    // two chunk groups (32 + 8 chunks of 256 rows): partial sums between them
    [InlineData(true, 48, 8)]     // a width the bf16 tiles do not take: the fp32 tiles over the widened copy, bit for bit
    [InlineData(false, 64, 8)]    // the token-major bf16 kernel: the output within fp32 rounding (the bias is added last)
    public void A_layer_with_the_switch_computes_what_fp32_computes_on_the_rounded_table(bool tiled, int width, int chunks)
    {
        Skip.IfNot(TableVersion.IsAvailable && TiledGather.IsAccelerated, "Needs libtorch's version counter and AVX-512.");
        const int tokens = 1203;
        random.manual_seed(21);
        using var bf16 = new MemoryLayer(chunks, 8, width, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.1, 0.01);
        using var fp32 = new MemoryLayer(chunks, 8, width, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.1, 0.01);
        using (no_grad())
        {
            fp32.Table.copy_(bf16.Table.to(ScalarType.BFloat16).to(ScalarType.Float32));     // torch rounds to nearest, ties to even
            fp32.Bias.copy_(bf16.Bias);
        }
        var x = randn(tokens, chunks * 8);
        var upstream = randn(tokens, width);
        var a = Run(bf16, x, upstream, on: true, tiled);
        var b = Run(fp32, x, upstream, on: false, tiled);

        Assert.True(a.TableGrad.abs().sum().item<float>() > 0);
        Assert.True(a.TableGrad.eq(b.TableGrad).all().item<bool>(), "the table gradient differs");
        Assert.True(a.XGrad.eq(b.XGrad).all().item<bool>(), "the weight gradient (through the hash into x) differs");
        if (tiled)
            Assert.True(a.Y.eq(b.Y).all().item<bool>(), "the tiled output differs");
        else
            Assert.True(a.Y.allclose(b.Y, rtol: 1e-5, atol: 1e-6), "the token-major output differs by more than rounding");
        var unrounded = Run(bf16, x, upstream, on: false, tiled);
        Assert.False(unrounded.Y.eq(a.Y).all().item<bool>(), "the switch changed nothing");
        var copied = Run(bf16, x, upstream, on: true, tiled, strided: false);   // the tiles from the table's paired tile-major copy
        Assert.True(copied.Y.eq(a.Y).all().item<bool>() && copied.TableGrad.eq(a.TableGrad).all().item<bool>()
            && copied.XGrad.eq(a.XGrad).all().item<bool>(), "TiledStridedCopy changed the bits");
        var fp32Copied = Run(fp32, x, upstream, on: false, tiled, strided: false);
        Assert.True(fp32Copied.Y.eq(b.Y).all().item<bool>() && fp32Copied.TableGrad.eq(b.TableGrad).all().item<bool>(), "TiledStridedCopy changed the fp32 bits");
    }

    [SkippableFact]
    public void An_edit_of_the_table_or_a_load_makes_the_next_forward_rebuild_the_copy()
    {
        Skip.IfNot(TableVersion.IsAvailable, "Needs libtorch's version counter.");
        random.manual_seed(4);
        using var layer = new MemoryLayer(8, 8, 32, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.1, 0.01);
        var x = randn(50, 64);
        var upstream = randn(50, 32);
        Run(layer, x, upstream, on: true, tiled: false);
        Assert.True(layer.ForwardCopy.IsCurrent(layer.Table));
        Assert.Equal(1, layer.ForwardCopy.Rebuilds);
        Run(layer, x, upstream, on: true, tiled: false);
        Assert.Equal(1, layer.ForwardCopy.Rebuilds);                             // unchanged table: no rebuild

        using (no_grad())
            layer.Table[3, 1] = layer.Table[3, 1] + 0.5f;                         // a user's edit
        Assert.False(layer.ForwardCopy.IsCurrent(layer.Table));
        var edited = Run(layer, x, upstream, on: true, tiled: false);
        Assert.Equal(2, layer.ForwardCopy.Rebuilds);
        AssertCopyIsRounded(layer);

        var bytes = ModuleWeights.ToBytes(layer);
        using (no_grad())
            layer.Table.mul_(2);
        Run(layer, x, upstream, on: true, tiled: false);
        ModuleWeights.Load(layer, bytes, MemoryFormerConfig.Nano); // a raw load into the same storage
        Assert.False(layer.ForwardCopy.IsCurrent(layer.Table));
        var reloaded = Run(layer, x, upstream, on: true, tiled: false);
        AssertCopyIsRounded(layer);
        Assert.True(edited.Y.eq(reloaded.Y).all().item<bool>(), "the forward after the load read stale values");
    }

    /// <summary>The copy equals the layer's fp32 table rounded by torch, bit for bit.</summary>
    internal static unsafe void AssertCopyIsRounded(MemoryLayer layer)
    {
        Assert.True(layer.ForwardCopy.IsCurrent(layer.Table), "the copy is not current");
        var expected = layer.Table.detach().to(ScalarType.BFloat16).to(ScalarType.Float32).data<float>().ToArray();
        var copy = new ReadOnlySpan<ushort>(layer.ForwardCopy.Pointer, expected.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            var bits = (ushort)(BitConverter.SingleToUInt32Bits(expected[i]) >> 16);
            if (bits != copy[i])
                Assert.Fail($"value {i}: the copy holds 0x{copy[i]:X4}, the rounded table 0x{bits:X4}");
        }
    }

    private static (Tensor Y, Tensor TableGrad, Tensor XGrad) Run(MemoryLayer layer, Tensor x, Tensor upstream, bool on, bool tiled, bool strided = true)
    {
        (Tensor, Tensor, Tensor) result = default;
        KernelSettings.Current.With(k =>
        {
            k.TiledStridedCopy = strided;
            k.Bf16ForwardTables = on;
            k.Bf16GradientRows = false;
            k.TiledForward = tiled;
            k.TiledForwardMinTableBytes = 0;
        }, () =>
        {
            var input = x.detach().clone().requires_grad_(true);
            layer.Table.grad = null;
            var y = layer.call(input);
            (y * upstream).sum().backward();
            result = (y.detach(), layer.Table.grad!.clone(), input.grad!.clone());
        });
        return result;
    }
}
