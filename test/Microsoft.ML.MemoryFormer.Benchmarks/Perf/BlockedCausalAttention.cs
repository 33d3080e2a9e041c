using Microsoft.ML.MemoryFormer.Layers.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// The first design tried for issue 16's training attention, kept for <c>perf attention</c> to time beside the managed kernel
/// (<c>Layers/Kernels/FusedCausalAttention.cs</c>): it lost to libtorch's SDPA on this CPU (docs/benchmarks.md).
/// Causal softmax attention, softmax(q kᵀ/√hd + causal mask) v, computed in query blocks so that
/// only the key blocks at or below the diagonal are multiplied: the scores of query block i (rows r0…r1−1) are one batched
/// matmul [B·H, len, hd] × [B·H, hd, r1], masked only in their last len columns (the diagonal block). At T = 256 and
/// blocks of 64 that is 62.5% of the full T × T work (T = 128: 75%). A custom autograd function with a hand-written
/// backward from the saved probabilities (FlashAttention's, Dao et al. 2022, without the recomputation):
/// dV = Pᵀ dO, dP = dO Vᵀ, dS = P ∘ (dP − rowsum(dO ∘ O)), dQ = dS K/√hd, dK = dSᵀ Q/√hd, block by block.
/// </summary>
/// <remarks>Every product is a libtorch batched matmul (its BLAS), every elementwise step a libtorch op, in a fixed order,
/// so a call gives the same bits for the same inputs and thread count. Results equal
/// <c>scaled_dot_product_attention(q, k, v, is_causal: true)</c> up to float rounding.</remarks>
internal static class BlockedCausalAttention
{
    /// <summary>Query rows per block: 64 was the best of 32, 64 and 128 at both training shapes (<c>perf attention</c>).</summary>
    public const int DefaultBlock = 64;

    /// <summary>True when q, k, v [B, H, T, hd] (any strides) take this path: CPU float32, T &gt; 1, equal shapes.</summary>
    public static bool IsSupported(Tensor q, Tensor k, Tensor v) =>
        TensorMemory.IsCpuFloat32(q) && TensorMemory.IsCpuFloat32(k) && TensorMemory.IsCpuFloat32(v) && q.dim() == 4
        && q.shape.SequenceEqual(k.shape) && q.shape.SequenceEqual(v.shape) && q.shape[2] > 1;

    /// <summary>Causal attention of q, k, v [B, H, T, hd] → [B, H, T, hd] (contiguous); differentiable in all three.</summary>
    /// <param name="q">Queries [B, H, T, hd].</param>
    /// <param name="k">Keys [B, H, T, hd].</param>
    /// <param name="v">Values [B, H, T, hd].</param>
    /// <param name="block">Query rows per block (≥ 1).</param>
    public static Tensor Apply(Tensor q, Tensor k, Tensor v, int block = DefaultBlock)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(block, 1);
        var shape = new Shape(q.shape[0], q.shape[1], q.shape[2], q.shape[3], block);
        bool grad = is_grad_enabled() && (q.requires_grad || k.requires_grad || v.requires_grad);
        if (!grad)
        {
            using var _ = no_grad();
            using var qs = Flat(q, shape).mul(shape.Scale);
            var (output, probs) = Forward(qs, Flat(k, shape), Flat(v, shape), shape);
            foreach (var p in probs) p.Dispose();
            return output.view(shape.Batch, shape.Heads, shape.Tokens, shape.HeadWidth);
        }
        return AttentionFunction.apply(q, k, v, shape);
    }

    /// <summary>The sizes of one call: B, H, T, hd and the query block.</summary>
    private sealed record Shape(long Batch, long Heads, long Tokens, long HeadWidth, int Block)
    {
        public int Blocks => (int)((Tokens + Block - 1) / Block);

        public double Scale => 1.0 / Math.Sqrt(HeadWidth);

        /// <summary>Rows r0 and count of query block i.</summary>
        public (long Start, long Length) Rows(int i) => (i * (long)Block, Math.Min(Block, Tokens - (i * (long)Block)));
    }

    /// <summary>[B, H, T, hd] (any strides) → [B·H, T, hd] contiguous.</summary>
    private static Tensor Flat(Tensor x, Shape s) => x.reshape(s.Batch * s.Heads, s.Tokens, s.HeadWidth).contiguous();

    /// <summary>Q·scale, K, V [B·H, T, hd] → O [B·H, T, hd] and each block's probabilities [B·H, len, r1].</summary>
    private static (Tensor Output, Tensor[] Probs) Forward(Tensor qs, Tensor k, Tensor v, Shape s)
    {
        var probs = new Tensor[s.Blocks];
        var outputs = new Tensor[s.Blocks];
        using var mask = full(s.Block, s.Block, double.NegativeInfinity).triu(1);   // [blk, blk]: −∞ above the diagonal
        for (int i = 0; i < s.Blocks; i++)
        {
            var (r0, len) = s.Rows(i);
            long r1 = r0 + len;
            using var scores = qs.narrow(1, r0, len).bmm(k.narrow(1, 0, r1).transpose(1, 2));          // [B·H, len, r1]
            scores.narrow(2, r0, len).add_(mask.narrow(0, 0, len).narrow(1, 0, len));                   // the diagonal block
            probs[i] = scores.softmax(-1);                                                             // [B·H, len, r1]
            outputs[i] = probs[i].bmm(v.narrow(1, 0, r1));                                             // [B·H, len, hd]
        }
        var output = cat(outputs, 1);                                                                  // [B·H, T, hd]
        foreach (var o in outputs) o.Dispose();
        return (output, probs);
    }

    /// <summary>∂O [B·H, T, hd] → ∂Q, ∂K, ∂V [B·H, T, hd] from the saved Q·scale, K, V, O and probabilities.</summary>
    private static (Tensor Dq, Tensor Dk, Tensor Dv) Backward(Tensor dOut, Tensor qs, Tensor k, Tensor v, Tensor output, Tensor[] probs, Shape s)
    {
        using var rowDot = dOut.mul(output).sum(-1, keepdim: true);                                      // [B·H, T, 1]
        var dk = zeros_like(k);
        var dv = zeros_like(v);
        var dqs = new Tensor[s.Blocks];
        for (int i = 0; i < s.Blocks; i++)
        {
            var (r0, len) = s.Rows(i);
            long r1 = r0 + len;
            using var dOi = dOut.narrow(1, r0, len);                                                     // [B·H, len, hd]
            using (var part = probs[i].transpose(1, 2).bmm(dOi))                                         // [B·H, r1, hd]
                dv.narrow(1, 0, r1).add_(part);
            using var ds = dOi.bmm(v.narrow(1, 0, r1).transpose(1, 2));                                 // dP [B·H, len, r1]
            ds.sub_(rowDot.narrow(1, r0, len)).mul_(probs[i]);                                           // dS
            dqs[i] = ds.bmm(k.narrow(1, 0, r1));                                                         // [B·H, len, hd]
            using (var part = ds.transpose(1, 2).bmm(qs.narrow(1, r0, len)))                             // [B·H, r1, hd]
                dk.narrow(1, 0, r1).add_(part);
        }
        var dq = cat(dqs, 1).mul_(s.Scale);                                                             // [B·H, T, hd]
        foreach (var d in dqs) d.Dispose();
        return (dq, dk, dv);
    }

    /// <summary>The autograd node: saves Q·scale, K, V, O and the block probabilities.</summary>
    private sealed class AttentionFunction : autograd.SingleTensorFunction<AttentionFunction>
    {
        public override string Name => nameof(BlockedCausalAttention);

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var s = (Shape)vars[3];
            var qs = Flat((Tensor)vars[0], s).mul(s.Scale);
            var (k, v) = (Flat((Tensor)vars[1], s), Flat((Tensor)vars[2], s));
            var (output, probs) = Forward(qs, k, v, s);
            ctx.save_for_backward([qs, k, v, output, .. probs]);
            ctx.save_data("shape", s);
            return output.view(s.Batch, s.Heads, s.Tokens, s.HeadWidth);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
        {
            var saved = ctx.get_saved_variables();
            var s = (Shape)ctx.get_data("shape");
            var dOut = grad_output.reshape(s.Batch * s.Heads, s.Tokens, s.HeadWidth).contiguous();
            var (dq, dk, dv) = Backward(dOut, saved[0], saved[1], saved[2], saved[3], saved.Skip(4).ToArray(), s);
            long[] four = [s.Batch, s.Heads, s.Tokens, s.HeadWidth];
            return [dq.view(four), dk.view(four), dv.view(four), null!];
        }
    }
}
