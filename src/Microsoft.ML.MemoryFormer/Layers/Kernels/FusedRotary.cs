using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// <see cref="RotaryEmbedding"/> (rotate-half on the first r dims of each head) fused with the split into heads, on the
/// CPU in fp32, as one custom autograd function: x [B, T, H·hd] (Q or K as the projections give them) → [B, H, T, hd]
/// contiguous, rotated at positions offset … offset+T−1. It replaces the reference's split view, two narrows, a negation,
/// two concatenations, two multiplies and an add (and as many backward ops) with one pass each way.
/// </summary>
/// <remarks>
/// <para>Forward for i &lt; r/2: y[i] = x[i]·cos[i] − x[i+r/2]·sin[i]; y[i+r/2] = x[i+r/2]·cos[i+r/2] + x[i]·sin[i+r/2]; the
/// dims from r on are copied. Backward, the transposed rotation: ∂x[i] = ∂y[i]·cos[i] + ∂y[i+r/2]·sin[i+r/2];
/// ∂x[i+r/2] = ∂y[i+r/2]·cos[i+r/2] − ∂y[i]·sin[i]. The same products in the same order as the reference, so the output
/// equals it up to float rounding of the multiply-add (bitwise where the JIT emits no fused multiply-add).</para>
/// </remarks>
internal static unsafe class FusedRotary
{
    /// <summary>True when x [B, T, H·hd] rotated by r dims of tables cos/sin takes the managed kernel.</summary>
    public static bool IsSupported(Tensor x, Tensor cos, int rotaryDims) =>
        TensorMemory.IsCpuFloat32(x) && TensorMemory.IsCpuFloat32(cos) && x.dim() == 3 && rotaryDims > 0 && rotaryDims % 2 == 0;

    /// <summary>x [B, T, H·hd] → [B, H, T, hd] with rotary at positions offset…; differentiable in x.</summary>
    /// <param name="x">Q or K, [B, T, H·hd].</param>
    /// <param name="heads">H.</param>
    /// <param name="rotaryDims">r, even, at most hd.</param>
    /// <param name="cos">[P, r], the tables of <see cref="RotaryEmbedding"/>.</param>
    /// <param name="sin">[P, r].</param>
    /// <param name="offset">The position of the first of the T tokens; offset + T ≤ P.</param>
    public static Tensor Apply(Tensor x, int heads, int rotaryDims, Tensor cos, Tensor sin, long offset)
    {
        long b = x.shape[0], t = x.shape[1], width = x.shape[2];
        if (heads <= 0 || width % heads != 0 || rotaryDims > width / heads || offset < 0 || offset + t > cos.shape[0] || cos.shape[1] != rotaryDims)
            throw new ArgumentException($"Rotary: x [B, T, H·hd] = [{b}, {t}, {width}] with H = {heads}, r = {rotaryDims}, positions " +
                $"{offset}…{offset + t - 1} do not fit tables [{string.Join(", ", cos.shape)}].", nameof(x));
        var shape = new Shape(b, t, heads, (int)(width / heads), rotaryDims, offset);
        if (!(is_grad_enabled() && x.requires_grad))
        {
            using var _ = no_grad();
            return Run(x.contiguous(), cos.contiguous(), sin.contiguous(), shape, backward: false);
        }
        return RotaryFunction.apply(x, cos, sin, shape);
    }

    /// <summary>The sizes of one call: B, T, H, hd, r and the first position.</summary>
    private sealed record Shape(long Batch, long Tokens, int Heads, int HeadWidth, int Rotary, long Offset);

    /// <summary>Forward: [B, T, H·hd] → [B, H, T, hd]. Backward: the gradient [B, H, T, hd] → [B, T, H·hd].</summary>
    private static Tensor Run(Tensor source, Tensor cos, Tensor sin, Shape s, bool backward)
    {
        var result = backward ? KernelBuffers.Empty(s.Batch, s.Tokens, (long)s.Heads * s.HeadWidth) : KernelBuffers.Empty(s.Batch, s.Heads, s.Tokens, s.HeadWidth);
        // The [B, H, T, hd] side: the forward's own contiguous output, or the backward's ∂L/∂y in whatever strides it came.
        var (sb, sh, st) = backward ? (source.stride(0), source.stride(1), source.stride(2)) : ((long)s.Heads * s.Tokens * s.HeadWidth, s.Tokens * s.HeadWidth, (long)s.HeadWidth);
        float* src = Floats(source), dst = TensorMemory.Floats(result);
        float* cp = TensorMemory.Floats(cos), sp = TensorMemory.Floats(sin);
        int heads = s.Heads, hd = s.HeadWidth, r = s.Rotary, half = r / 2;
        long tokens = s.Tokens, offset = s.Offset;
        KernelParallel.For((int)(s.Batch * tokens), (long)heads * hd * 2, (start, end) =>
        {
            for (int n = start; n < end; n++)
            {
                long batch = n / tokens, token = n % tokens;
                float* c = cp + ((offset + token) * r), si = sp + ((offset + token) * r);
                for (int h = 0; h < heads; h++)
                {
                    float* rowMajor = (backward ? dst : src) + (((long)n * heads) + h) * hd;             // [B, T, H, hd]
                    float* headMajor = (backward ? src : dst) + (batch * sb) + (h * sh) + (token * st);       // [B, H, T, hd]
                    if (backward)
                    {
                        for (int i = 0; i < half; i++)
                        {
                            float g1 = headMajor[i], g2 = headMajor[i + half];
                            rowMajor[i] = (g1 * c[i]) + (g2 * si[i + half]);
                            rowMajor[i + half] = (g2 * c[i + half]) - (g1 * si[i]);
                        }
                        new ReadOnlySpan<float>(headMajor + r, hd - r).CopyTo(new Span<float>(rowMajor + r, hd - r));
                    }
                    else
                    {
                        for (int i = 0; i < half; i++)
                        {
                            float x1 = rowMajor[i], x2 = rowMajor[i + half];
                            headMajor[i] = (x1 * c[i]) + (-x2 * si[i]);
                            headMajor[i + half] = (x2 * c[i + half]) + (x1 * si[i + half]);
                        }
                        new ReadOnlySpan<float>(rowMajor + r, hd - r).CopyTo(new Span<float>(headMajor + r, hd - r));
                    }
                }
            }
        });
        return result;
    }

    /// <summary>
    /// ∂L/∂y [B, H, T, hd] as the backward reads it: contiguous, or as it is when it views token-major [B, T, H, hd] storage.
    /// libtorch's CPU scaled_dot_product_attention returns ∂L/∂q and ∂L/∂k that way, the layout this backward writes; a
    /// <c>contiguous()</c> would copy each into fresh memory first (12 copies of 4 MB a d = 512 training step). The backward
    /// reads the same values through the strides, so the result is the same either way.
    /// </summary>
    private static Tensor HeadMajor(Tensor grad)
    {
        if (grad.dim() == 4 && !grad.is_contiguous() && Runtime.KernelSettings.Current.StridedRotaryGradient)
        {
            using var tokenMajor = grad.transpose(1, 2);
            if (tokenMajor.is_contiguous())
                return grad;
        }
        return grad.contiguous();
    }

    /// <summary>The first element of a contiguous tensor, or of a [B, H, T, hd] view of token-major storage (<see cref="HeadMajor"/>).</summary>
    private static float* Floats(Tensor source)
    {
        if (source.is_contiguous())
            return TensorMemory.Floats(source);
        using var tokenMajor = source.transpose(1, 2);                          // the same first element, contiguous
        return TensorMemory.Floats(tokenMajor);
    }

    /// <summary>The autograd node: saves the tables (not differentiated) and the sizes.</summary>
    private sealed class RotaryFunction : GuardedFunction<RotaryFunction>
    {
        public override string Name => nameof(FusedRotary);

        protected override Tensor ForwardPass(autograd.AutogradContext ctx, object[] vars)
        {
            var (x, cos, sin, shape) = (((Tensor)vars[0]).contiguous(), ((Tensor)vars[1]).contiguous(), ((Tensor)vars[2]).contiguous(), (Shape)vars[3]);
            ctx.save_for_backward([cos, sin]);
            ctx.save_data("shape", shape);
            return Run(x, cos, sin, shape, backward: false);
        }

        protected override List<Tensor> BackwardPass(autograd.AutogradContext ctx, Tensor grad_output)
        {
            var saved = ctx.get_saved_variables();
            var dx = Run(HeadMajor(grad_output), saved[0], saved[1], (Shape)ctx.get_data("shape"), backward: true);
            return [dx, null!, null!, null!];
        }
    }
}
