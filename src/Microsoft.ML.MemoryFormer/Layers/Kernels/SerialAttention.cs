using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// libtorch's causal <c>scaled_dot_product_attention</c> for training on the CPU, inside a custom autograd node so that its
/// backward, too, runs with MKL set to one thread on the calling thread (<see cref="OpenMPTeam.SerialGemms"/>). The forward runs
/// SDPA on detached copies of q, k, v's handles (no data copied) with gradients on and keeps that small graph; the backward hands
/// ∂L/∂y to it (<c>autograd.grad</c>, re-entrant) with MKL serial around the call, and returns ∂L/∂q, ∂L/∂k, ∂L/∂v. The same
/// SDPA forward and backward ops on the same tensors and the same ∂L/∂y, so the same bits; only the GEMMs of the backward's blocks
/// on the autograd thread no longer open a nested one-thread OpenMP region each (≈ 3,700 a training step at d = 256;
/// docs/benchmarks.md, "The training step's overheads at d = 256"). <see cref="Runtime.KernelSettings.SerialAttentionBackward"/>.
/// </summary>
internal static class SerialAttention
{
    /// <summary>Causal attention of q, k, v [B, H, T, hd] → [B, H, T, hd] (SDPA's <c>is_causal</c>, no mask, no dropout),
    /// differentiable in all three. The caller has set MKL serial on libtorch's worker threads.</summary>
    public static Tensor Apply(Tensor q, Tensor k, Tensor v)
    {
        Interlocked.Increment(ref calls);
        return AttentionFunction.apply(q, k, v);
    }

    /// <summary>How many attentions took this node since the process started (tests: the path is taken).</summary>
    public static long Calls => Interlocked.Read(ref calls);

    private static long calls;

    /// <summary>The autograd node: keeps SDPA's own graph over leaf handles of q, k, v.</summary>
    private sealed class AttentionFunction : GuardedFunction<AttentionFunction>
    {
        public override string Name => nameof(SerialAttention);

        protected override Tensor ForwardPass(autograd.AutogradContext ctx, object[] vars)
        {
            var (q, k, v) = ((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2]);
            var qi = q.detach().requires_grad_(true);                             // [B, H, T, hd], the same storage
            var ki = k.detach().requires_grad_(true);
            var vi = v.detach().requires_grad_(true);
            Tensor y;
            int previous = OpenMPTeam.SerialGemms(1);
            try
            {
                using var _ = enable_grad();
                y = F.scaled_dot_product_attention(qi, ki, vi, null, 0.0, true); // [B, H, T, hd], SDPA's node behind it
            }
            finally
            {
                OpenMPTeam.SerialGemms(previous);
            }
            ctx.save_for_backward([qi, ki, vi, y]);                               // y keeps SDPA's node alive
            return y.detach();
        }

        protected override List<Tensor> BackwardPass(autograd.AutogradContext ctx, Tensor grad_output)
        {
            var saved = ctx.get_saved_variables();                                // qi, ki, vi, y
            int previous = OpenMPTeam.SerialGemms(1);
            try
            {
                // retain_graph: a graph run backward twice (retain_graph outside) reaches SDPA's node twice, as without this node;
                // otherwise SDPA's node goes with the saved handles (TorchSharp keeps them managed: the caller's dispose scope).
                var grads = autograd.grad([saved[3]], [saved[0], saved[1], saved[2]], [grad_output], retain_graph: true);
                return [.. grads];                                                // ∂L/∂q, ∂L/∂k, ∂L/∂v
            }
            finally
            {
                OpenMPTeam.SerialGemms(previous);
            }
        }
    }
}
