using Microsoft.ML.MemoryFormer.Configuration;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The sign hash (docs/model-spec.md, "Sign hash", "Weight functions" and "Gradient flow") as one managed pass over x [N, K·τ] on the CPU: bucket rows (bit = z ≥ 0,
/// MSB first, plus the chunk offset k·2^τ) and weights — code ‖z‖₁·Π σ(2|zᵢ|) or paper Π σ(2|zᵢ|/t) — with a
/// custom backward for ∂L/∂x. It replaces the dozen torch ops of <see cref="SignHash.Reference"/> (abs, softplus,
/// sum, exp, compare, shifts …) and their saved activations.
/// </summary>
/// <remarks>
/// <para>Weights use the product form p = 1 / Π (1 + e^(−2|zᵢ|/t)), equal to torch's exp(−Σ softplus(−2|zᵢ|/t)) within
/// float rounding; τ ≤ 16 keeps the product below 2^16. When x needs a gradient, the forward also stores
/// J = ∂w/∂z per element ([N, K·τ]), so the backward is one multiply: ∂L/∂zᵢ = ∂L/∂w · Jᵢ with
/// Jᵢ = sgn(zᵢ)·p·(1 + 2‖z‖₁·σ(−2|zᵢ|)) (code) or sgn(zᵢ)·p·(2/t)·σ(−2|zᵢ|/t) (paper); sgn(0) = 0 as in the
/// gradient of torch.abs.</para>
/// </remarks>
internal static class FusedSignHash
{
    /// <summary>The widest chunk the kernel hashes; the config allows τ + extra bits up to 20, which take the reference path.</summary>
    public const int MaxBits = 16;

    /// <summary>True when <paramref name="x"/> hashed with <paramref name="bitsPerChunk"/> bits takes the managed kernel
    /// (CPU float32, at most <see cref="MaxBits"/> bits).</summary>
    public static bool IsSupported(Tensor x, int bitsPerChunk) => TensorMemory.IsCpuFloat32(x) && bitsPerChunk is >= 1 and <= MaxBits;

    /// <summary>x [N, K·τ] → rows int64 [N, K] and weights [N, K] (differentiable in x).</summary>
    public static HashCodes Compute(Tensor x, int bitsPerChunk, HashWeightFunction function, double temperature)
    {
        if (x.dim() != 2 || x.shape[1] % bitsPerChunk != 0)
            throw new ArgumentException($"x must be [N, K·{bitsPerChunk}], got [{string.Join(", ", x.shape)}].", nameof(x));
        if (bitsPerChunk is < 1 or > MaxBits)
            throw new ArgumentOutOfRangeException(nameof(bitsPerChunk), "The fused hash supports 1 to 16 bits per chunk.");
        bool needsGrad = x.requires_grad && is_grad_enabled();
        var result = SignHashKernel.Run(x, bitsPerChunk, function == HashWeightFunction.L1ScaledSigmoidProduct,
            (float)temperature, needsGrad, Runtime.KernelSettings.Current.HashWritesRows32);
        if (!needsGrad)
            return new HashCodes(result.Rows, result.Weights) { Rows32 = result.Rows32 };
        var weights = WeightsFunction.apply(x, result);
        return new HashCodes(result.Rows, weights) { Rows32 = result.Rows32 };
    }

    /// <summary>Hands the precomputed weights to autograd; the backward multiplies by the saved Jacobian.</summary>
    private sealed class WeightsFunction : GuardedFunction<WeightsFunction>
    {
        public override string Name => nameof(FusedSignHash);

        protected override Tensor ForwardPass(autograd.AutogradContext ctx, object[] vars)
        {
            var result = (SignHashKernel.Result)vars[1];
            ctx.save_for_backward([result.Jacobian!]);
            ctx.save_data("bits", result.BitsPerChunk);
            return result.Weights;
        }

        protected override List<Tensor> BackwardPass(autograd.AutogradContext ctx, Tensor grad_output)
        {
            var jacobian = ctx.get_saved_variables()[0];
            int bits = (int)ctx.get_data("bits");
            var dx = SignHashKernel.Backward(grad_output, jacobian, bits);   // [N, K·τ]
            jacobian.Dispose();
            return [dx, null!];                                                  // none for the kernel result
        }
    }
}
