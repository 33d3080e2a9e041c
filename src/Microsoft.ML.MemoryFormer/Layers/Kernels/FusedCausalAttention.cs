using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// Causal self-attention for training on the CPU as one custom autograd function over <see cref="CausalAttentionKernel"/>:
/// softmax(q kᵀ/√hd + causal mask) v for q, k, v [B, H, T, hd], equal to
/// <c>scaled_dot_product_attention(q, k, v, is_causal: true)</c> up to float rounding. It saves q, k, v, the output and the
/// rows' log-sum-exp [B·H, T] (not the probabilities) and its backward recomputes P. The output is a [B, H, T, hd] view of
/// token-major [B, T, H, hd] storage, so the model's merge of the heads back into [B, T, H·hd] is a free view.
/// <see cref="ApplyPadded"/> runs the same kernel bidirectionally over right-padded rows (the text classifier's windows).
/// </summary>
/// <remarks>Operands contiguous as [B, H, T, hd] (the fused rotary's q and k) or as [B, T, H, hd] (v split into heads) are
/// read in place; any other layout is copied once.</remarks>
internal static unsafe class FusedCausalAttention
{
    /// <summary>The longest sequence the kernel takes: its backward keeps P and dS [T, T] of a pair per thread (8 MB at
    /// 1,024), which stop fitting the caches well before; longer ones stay with libtorch's SDPA.</summary>
    public const int MaxTokens = 1024;

    /// <summary>True when q, k, v [B, H, T, hd] take the kernel: CPU float32, equal shapes, 1 &lt; T ≤ <see cref="MaxTokens"/>,
    /// AVX-512 and hd a multiple of 32.</summary>
    public static bool IsSupported(Tensor q, Tensor k, Tensor v) =>
        TensorMemory.IsCpuFloat32(q) && TensorMemory.IsCpuFloat32(k) && TensorMemory.IsCpuFloat32(v) && q.dim() == 4
        && q.shape.SequenceEqual(k.shape) && q.shape.SequenceEqual(v.shape) && q.shape[2] > 1 && q.shape[2] <= MaxTokens
        && CausalAttentionKernel.Supports(q.shape[3]) && q.shape[0] * q.shape[1] < int.MaxValue;

    /// <summary>Causal attention of q, k, v [B, H, T, hd] → [B, H, T, hd]; differentiable in all three.</summary>
    public static Tensor Apply(Tensor q, Tensor k, Tensor v)
    {
        if (!IsSupported(q, k, v))
            throw new ArgumentException($"Fused causal attention: unsupported q [{string.Join(", ", q.shape)}] ({q.dtype}, {q.device}).", nameof(q));
        if (is_grad_enabled() && (q.requires_grad || k.requires_grad || v.requires_grad))
            return AttentionFunction.apply(q, k, v);
        using var _ = no_grad();
        Tensor[] inputs = [q, k, v];
        var (operands, tokenMajor) = Operands(inputs);
        var (output, lse) = Forward(operands, tokenMajor, SizesOf(q));
        lse.Dispose();
        for (int i = 0; i < inputs.Length; i++)
            if (!ReferenceEquals(operands[i], inputs[i])) operands[i].Dispose();      // views or copies made here
        return output.transpose(1, 2);
    }

    /// <summary>Bidirectional attention of right-padded sequences: every query of batch row b sees keys [0, keyLengths[b]);
    /// differentiable in q, k and v. Equal to <c>scaled_dot_product_attention</c> with the key-padding mask at every real query;
    /// a padded query sees the real keys only, where the model's mask also lets it see itself (<see cref="AttentionContext.BuildMask"/>):
    /// padded rows are never read by a real row and get no gradient, so the loss and every gradient are the same.</summary>
    public static Tensor ApplyPadded(Tensor q, Tensor k, Tensor v, int[] keyLengths)
    {
        if (!IsSupported(q, k, v) || keyLengths.Length != q.shape[0] || keyLengths.Any(l => l < 1 || l > q.shape[2]))
            throw new ArgumentException($"Fused padded attention: unsupported q [{string.Join(", ", q.shape)}] or key lengths.", nameof(q));
        return AttentionFunction.apply(q, k, v, keyLengths);
    }

    private static CausalAttentionKernel.Sizes SizesOf(Tensor q) => new((int)q.shape[0], (int)q.shape[1], (int)q.shape[2], (int)q.shape[3]);

    /// <summary>Each of q, k, v as a contiguous tensor in [B, H, T, hd] (false) or [B, T, H, hd] (true) order.</summary>
    private static (Tensor[] Operands, bool[] TokenMajor) Operands(params Tensor[] xs)
    {
        var operands = new Tensor[xs.Length];
        var tokenMajor = new bool[xs.Length];
        for (int i = 0; i < xs.Length; i++)
            (operands[i], tokenMajor[i]) = Operand(xs[i]);
        return (operands, tokenMajor);
    }

    /// <summary>x [B, H, T, hd] as it is when contiguous, its [B, T, H, hd] transpose when that is, else a contiguous copy.</summary>
    private static (Tensor Operand, bool TokenMajor) Operand(Tensor x)
    {
        if (x.is_contiguous()) return (x, false);
        var swapped = x.transpose(1, 2);
        if (swapped.is_contiguous()) return (swapped, true);
        swapped.Dispose();
        return (x.contiguous(), false);
    }

    /// <summary>The kernel's view of an operand stored [B, H, T, hd] or [B, T, H, hd].</summary>
    private static CausalAttentionKernel.View ViewOf(Tensor operand, bool tokenMajor, CausalAttentionKernel.Sizes s)
    {
        long h = s.Heads, t = s.Tokens, hd = s.HeadWidth;
        nint data = (nint)TensorMemory.Floats(operand);
        return tokenMajor ? new(data, t * h * hd, hd, h * hd) : new(data, h * t * hd, t * hd, hd);
    }

    /// <summary>Output [B, T, H, hd] (token-major) and log-sum-exp [B·H, T].</summary>
    private static (Tensor Output, Tensor Lse) Forward(Tensor[] operands, bool[] tokenMajor, CausalAttentionKernel.Sizes s, int[]? keyLengths = null)
    {
        var output = empty(s.Batch, s.Tokens, s.Heads, s.HeadWidth);
        var lse = empty((long)s.Batch * s.Heads, s.Tokens);
        CausalAttentionKernel.Forward(ViewOf(operands[0], tokenMajor[0], s), ViewOf(operands[1], tokenMajor[1], s),
            ViewOf(operands[2], tokenMajor[2], s), ViewOf(output, true, s), TensorMemory.Floats(lse), s, keyLengths);
        return (output, lse);
    }

    /// <summary>The autograd node: saves q, k, v (as read), the token-major output and the log-sum-exp.</summary>
    private sealed class AttentionFunction : GuardedFunction<AttentionFunction>
    {
        public override string Name => nameof(FusedCausalAttention);

        protected override Tensor ForwardPass(autograd.AutogradContext ctx, object[] vars)
        {
            var (q, k, v) = ((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2]);
            var keyLengths = vars.Length > 3 ? (int[])vars[3] : null;                           // null: causal
            var s = SizesOf(q);
            var (operands, tokenMajor) = Operands(q, k, v);
            var (output, lse) = Forward(operands, tokenMajor, s, keyLengths);
            ctx.save_for_backward([.. operands, output, lse]);
            ctx.save_data("tokenMajor", tokenMajor);
            ctx.save_data("keyLengths", keyLengths ?? []);                                  // empty: causal
            return output.transpose(1, 2);                                                      // [B, H, T, hd]
        }

        protected override List<Tensor> BackwardPass(autograd.AutogradContext ctx, Tensor grad_output)
        {
            var saved = ctx.get_saved_variables();
            var tokenMajor = (bool[])ctx.get_data("tokenMajor");
            var lengths = (int[])ctx.get_data("keyLengths");
            int[]? keyLengths = lengths.Length > 0 ? lengths : null;
            var s = SizesOf(grad_output);
            var (dOut, dOutTokenMajor) = Operand(grad_output);
            var dq = empty(s.Batch, s.Heads, s.Tokens, s.HeadWidth);
            var dk = empty(s.Batch, s.Heads, s.Tokens, s.HeadWidth);
            var dv = empty(s.Batch, s.Tokens, s.Heads, s.HeadWidth);
            CausalAttentionKernel.Backward(ViewOf(saved[0], tokenMajor[0], s), ViewOf(saved[1], tokenMajor[1], s), ViewOf(saved[2], tokenMajor[2], s),
                ViewOf(saved[3], true, s), ViewOf(dOut, dOutTokenMajor, s), TensorMemory.Floats(saved[4]),
                ViewOf(dq, false, s), ViewOf(dk, false, s), ViewOf(dv, true, s), s, keyLengths);
            return keyLengths is null ? [dq, dk, dv.transpose(1, 2)] : [dq, dk, dv.transpose(1, 2), null!];
        }
    }
}
