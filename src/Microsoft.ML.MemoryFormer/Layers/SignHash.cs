using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>
/// The sign hash of the Memory Layer (paper §2.2, eqs. 3–4; official code <c>compute_code_score_torch</c>).
/// The input x [N, K·τ] is cut into K chunks of τ elements; each element's sign (z ≥ 0 → 1) is one bit of the
/// chunk's bucket code, read most-significant-bit first as in the code (the paper reads it LSB-first, which is
/// the same model up to a fixed permutation of table rows). Codes are built with integer ops (a float code is exact
/// only up to 2^8 in bf16, too few for the Memory Block's τ+2 bits) and are not differentiable; gradients reach x only
/// through the weights (docs/model-spec.md, "Sign hash" and "Gradient flow"). This is the hash's one dispatcher: on the
/// CPU in fp32 (with <see cref="KernelSettings.UseFusedKernels"/>) it runs <see cref="FusedSignHash"/>, one managed
/// pass with a custom backward; elsewhere <see cref="Reference"/>, plain torch ops.
/// </summary>
internal static class SignHash
{
    /// <summary>Hashes x [N, K·τ] into rows and weights [N, K].</summary>
    /// <exception cref="ArgumentException">x is not 2-D or its width is not a multiple of τ.</exception>
    public static HashCodes Compute(Tensor x, int bitsPerChunk, HashWeightFunction function, double temperature)
    {
        if (x.dim() != 2 || bitsPerChunk < 1 || x.shape[1] % bitsPerChunk != 0)
            throw new ArgumentException($"The sign hash expects x [N, K·τ] with τ = {bitsPerChunk}: a width that is a multiple of " +
                $"{bitsPerChunk}; got shape [{string.Join(", ", x.shape)}].", nameof(x));
        return KernelSettings.Current.UseFusedKernels && FusedSignHash.IsSupported(x, bitsPerChunk)
            ? FusedSignHash.Compute(x, bitsPerChunk, function, temperature)
            : Reference(x, bitsPerChunk, function, temperature);
    }

    /// <summary>The torch-ops hash, the reference for the fused kernel and the path for CUDA and other dtypes.</summary>
    public static HashCodes Reference(Tensor x, int bitsPerChunk, HashWeightFunction function, double temperature)
    {
        long n = x.shape[0], k = x.shape[1] / bitsPerChunk;
        var z = x.view(n, k, bitsPerChunk);                                       // [N, K, τ]
        Tensor rows;
        using (no_grad())
        {
            // Named scalars, disposed here: an implicit one could be finalized while an op reads it (Runtime/LiveScalars.cs).
            using Scalar top = bitsPerChunk - 1L, chunks = k, bucketCount = 1L << bitsPerChunk;
            var bits = z.ge(LiveScalars.Zero).to(ScalarType.Int64);               // [N, K, τ] bit = z ≥ 0
            var powers = pow(tensor(2L), arange(top, LiveScalars.MinusOneInteger, LiveScalars.MinusOneInteger, ScalarType.Int64, x.device)); // [τ] MSB first
            var codes = (bits * powers).sum(-1);                                  // [N, K] ∈ [0, 2^τ)
            rows = codes.add(arange(LiveScalars.ZeroInteger, chunks, LiveScalars.OneInteger, ScalarType.Int64, x.device).mul(bucketCount), LiveScalars.OneInteger); // [N, K] global rows
        }
        return new HashCodes(rows, Weights(z, function, temperature));
    }

    /// <summary>
    /// w(z) for chunks z [N, K, τ] → [N, K]. Paper eq. 10: p = Π σ(2|zᵢ|/t) = exp(−Σ softplus(−2|zᵢ|/t));
    /// the code multiplies it by ‖z‖₁ and uses t = 1.
    /// </summary>
    public static Tensor Weights(Tensor z, HashWeightFunction function, double temperature)
    {
        var a = z.abs();                                                          // [N, K, τ]
        using Scalar scale = function == HashWeightFunction.L1ScaledSigmoidProduct ? -2.0 : -2.0 / temperature;
        var p = (-a.mul(scale).exp().log1p().sum(-1)).exp();                      // Π σ(2|zᵢ|/t); log1p(exp(y)) is softplus for y ≤ 0
        return function == HashWeightFunction.L1ScaledSigmoidProduct ? p * a.sum(-1) : p;   // the code: ‖z‖₁ · Π σ(2|zᵢ|)
    }
}
