using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The managed rotary (split into heads + rotate-half) against the torch-ops reference: output and ∂L/∂x.</summary>
public class FusedRotaryTests
{
    private static (Tensor Y, Tensor Dx) Run(bool fused, Tensor x, Tensor upstream, RotaryEmbedding rotary, int heads, long offset, bool strided)
    {
        Tensor y = null!, dx = null!;
        KernelSettings.Current.With(k => k.UseFusedKernels = fused, () =>
        {
            var leaf = x.clone().requires_grad_(true);
            // strided: the dense baseline's Q is one chunk of a [N, 3d] projection, a view with row stride 3d.
            var input = strided ? cat([leaf, leaf * 2, leaf * 3], -1).chunk(3, -1)[0] : leaf;
            y = rotary.SplitAndApply(input, heads, offset);
            (y * upstream).sum().backward();
            dx = leaf.grad!;
        });
        return (y, dx);
    }

    // hd 16 with r 4 (the code's 25%), r = hd (no pass-through dims), r 2; positions from 0 and from a cache offset.
    [Theory]
    [InlineData(2, 5, 4, 16, 4, 0, false)]
    [InlineData(3, 7, 2, 8, 8, 3, false)]
    [InlineData(1, 1, 4, 12, 2, 9, false)]
    [InlineData(2, 6, 4, 16, 4, 0, true)]
    public void Output_and_input_gradient_equal_the_torch_ops_path(int b, int t, int heads, int hd, int r, int offset, bool strided)
    {
        using var rotary = new RotaryEmbedding(r, 16, 10000);
        var gen = new Generator((ulong)(b * 100 + t));
        var x = randn([b, t, heads * hd], generator: gen);
        var upstream = randn([b, heads, t, hd], generator: gen);

        var (yf, dxf) = Run(fused: true, x, upstream, rotary, heads, offset, strided);
        var (yr, dxr) = Run(fused: false, x, upstream, rotary, heads, offset, strided);

        Assert.Equal(yr.shape, yf.shape);
        Assert.True(allclose(yf, yr, 1e-5, 1e-6), $"output differs by {(yf - yr).abs().max().item<float>()}");
        Assert.True(allclose(dxf, dxr, 1e-5, 1e-6), $"∂L/∂x differs by {(dxf - dxr).abs().max().item<float>()}");
    }

    // libtorch's CPU SDPA hands ∂L/∂q and ∂L/∂k back as [B, H, T, hd] views of token-major storage; the backward reads
    // them in place instead of copying them: the same bits as from the contiguous copy.
    [Theory]
    [InlineData(2, 5, 4, 16, 4, 0)]
    [InlineData(3, 7, 2, 8, 8, 3)]
    public void A_token_major_gradient_gives_the_bits_of_its_contiguous_copy(int b, int t, int heads, int hd, int r, int offset)
    {
        using var rotary = new RotaryEmbedding(r, 16, 10000);
        var gen = new Generator((ulong)(b * 10 + t));
        var x = randn([b, t, heads * hd], generator: gen);
        var upstream = randn([b, t, heads, hd], generator: gen).transpose(1, 2);   // [B, H, T, hd] over [B, T, H, hd]
        Assert.False(upstream.is_contiguous());
        Tensor Dx(Tensor grad)
        {
            var leaf = x.clone().requires_grad_(true);
            autograd.backward([rotary.SplitAndApply(leaf, heads, offset)], [grad]);
            return leaf.grad!;
        }

        var strided = Dx(upstream);
        var copied = Dx(upstream.contiguous());
        Assert.True(strided.bytes.ToArray().AsSpan().SequenceEqual(copied.bytes.ToArray()), $"∂L/∂x differs by {(strided - copied).abs().max().item<float>()}");
        Assert.True(allclose(strided, Run(fused: false, x, upstream.contiguous(), rotary, heads, offset, strided: false).Dx, 1e-5, 1e-6));
    }

    [Fact]
    public void Positions_past_the_tables_are_refused_with_the_shapes()
    {
        using var rotary = new RotaryEmbedding(4, 8, 10000);
        var ex = Assert.Throws<ArgumentException>(() => rotary.SplitAndApply(randn(1, 4, 16), heads: 2, offset: 6));
        Assert.Contains("6…9", ex.Message);
    }
}
