using System.Runtime.Intrinsics;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The managed sign hash against the torch-ops reference: rows, weights and ∂L/∂x.</summary>
public class FusedSignHashTests
{
    /// <summary>
    /// Random x [n, k·τ] with exact zeros, a −0.0 (bit 1, zero gradient) and magnitudes whose e = exp(−2|z|/t) underflows,
    /// and a random upstream gradient for the weights.
    /// </summary>
    private static (Tensor X, Tensor Upstream) Inputs(int n, int k, int bits, long seed)
    {
        var gen = new Generator((ulong)seed);
        var x = randn([n, k * bits], generator: gen);
        x[0, 0] = tensor(0f);
        x[n - 1, (k * bits) - 1] = tensor(0f);
        x[1, 1] = tensor(-0f);
        x[2, 3] = tensor(60f);
        x[3, (k * bits) - 2] = tensor(-45f);
        x[n / 2] = zeros(k * bits);                                      // a whole row of zeros
        return (x, randn([n, k], generator: gen));
    }

    // K < 8 runs the scalar loop only; K ≥ 8 the 8-chunk SIMD blocks (plus the scalar loop for K mod 8), whose
    // transposes differ for τ a multiple of 8 (8, 16), other τ ≥ 4 (padded rows: 4, 5, 10, 12) and τ < 4.
    [Theory]
    [InlineData(HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 8, 4)]
    [InlineData(HashWeightFunction.SigmoidProduct, 0.7, 8, 4)]
    [InlineData(HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 10, 3)]
    [InlineData(HashWeightFunction.SigmoidProduct, 2.0, 5, 7)]
    [InlineData(HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 8, 19)]
    [InlineData(HashWeightFunction.SigmoidProduct, 0.7, 8, 16)]
    [InlineData(HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 10, 11)]
    [InlineData(HashWeightFunction.SigmoidProduct, 1.5, 10, 8)]
    [InlineData(HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 16, 9)]
    [InlineData(HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 12, 8)]
    [InlineData(HashWeightFunction.SigmoidProduct, 0.5, 4, 17)]
    [InlineData(HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 5, 13)]
    [InlineData(HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 3, 10)]
    [InlineData(HashWeightFunction.SigmoidProduct, 2.0, 1, 24)]
    public void Rows_weights_and_input_gradient_equal_the_torch_ops_path(HashWeightFunction function, double t, int bits, int k)
    {
        var (x, upstream) = Inputs(37, k, bits, seed: bits * 10 + k);
        var xf = x.clone().requires_grad_(true);
        var xr = x.clone().requires_grad_(true);

        var fused = FusedSignHash.Compute(xf, bits, function, t);
        var reference = SignHash.Reference(xr, bits, function, t);
        (fused.Weights * upstream).sum().backward();
        (reference.Weights * upstream).sum().backward();

        Assert.True((fused.Rows == reference.Rows).all().item<bool>(), "rows differ");
        Assert.Equal(ScalarType.Int64, fused.Rows.dtype);
        Assert.True(allclose(fused.Weights, reference.Weights, 1e-5, 1e-6),
            $"weights differ by {(fused.Weights - reference.Weights).abs().max().item<float>()}");
        Assert.True(allclose(xf.grad!, xr.grad!, 1e-4, 1e-6),
            $"dx differs by {(xf.grad! - xr.grad!).abs().max().item<float>()}");
        Assert.Equal(0f, xf.grad![0, 0].item<float>());                   // sgn(0) = 0, like torch.abs
        Assert.Equal(0f, xf.grad![1, 1].item<float>());                   // and for −0.0
    }

    [Theory]
    [InlineData(HashWeightFunction.L1ScaledSigmoidProduct, 8)]
    [InlineData(HashWeightFunction.SigmoidProduct, 10)]
    public void NaN_is_bit_0_and_makes_its_chunks_weight_NaN_like_the_reference(HashWeightFunction function, int bits)
    {
        var (x, _) = Inputs(6, 11, bits, seed: 5);
        x[1, 2] = tensor(float.NaN);                                      // in the first SIMD block
        x[4, (10 * bits) + 1] = tensor(float.NaN);                        // in the scalar tail
        using var noGrad = no_grad();
        var fused = FusedSignHash.Compute(x, bits, function, 0.7);
        var reference = SignHash.Reference(x, bits, function, 0.7);
        Assert.True((fused.Rows == reference.Rows).all().item<bool>(), "rows differ");
        Assert.True(float.IsNaN(fused.Weights[1, 0].item<float>()) && float.IsNaN(fused.Weights[4, 10].item<float>()));
        Assert.True(allclose(fused.Weights, reference.Weights, 1e-5, 1e-6, equal_nan: true));
    }

    [Fact]
    public void The_vector_exp_is_within_1_ulp_of_exp_and_0_where_exp_would_go_subnormal()
    {
        if (!Vector256.IsHardwareAccelerated)
            return;
        const int count = 1 << 20;
        int worst = 0;
        for (int i = 0; i < count; i += 8)
        {
            var x = Vector256.ConvertToSingle(Vector256.Create(i) + Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7)) * (-87.33f / count);
            var e = SignHashKernel.ExpOfNonPositive(x);
            for (int lane = 0; lane < 8; lane++)
            {
                float expected = (float)Math.Exp(x[lane]);
                worst = Math.Max(worst, Math.Abs(BitConverter.SingleToInt32Bits(e[lane]) - BitConverter.SingleToInt32Bits(expected)));
            }
        }
        Assert.True(worst <= 1, $"{worst} ulp");
        var special = SignHashKernel.ExpOfNonPositive(
            Vector256.Create(0f, -0f, -1e-30f, -87.34f, -100f, float.NegativeInfinity, float.NaN, -87.33f));
        Assert.Equal([1f, 1f, 1f, 0f, 0f, 0f], [special[0], special[1], special[2], special[3], special[4], special[5]]);
        Assert.True(float.IsNaN(special[6]));
        Assert.True(special[7] > 0f);
    }

    [Theory]
    [InlineData(17, HashWeightFunction.L1ScaledSigmoidProduct)]
    [InlineData(20, HashWeightFunction.SigmoidProduct)]   // the config allows τ + extra bits up to 20; the kernel hashes at most 16
    public void Chunks_wider_than_the_kernel_take_the_reference_path_which_equals_a_naive_loop(int bits, HashWeightFunction function)
    {
        using var scope = NewDisposeScope();
        var (x, _) = Inputs(5, 2, bits, seed: 3);
        Assert.False(FusedSignHash.IsSupported(x, bits));
        var codes = SignHash.Compute(x, bits, function, 0.7);
        var (rows, weights) = NaiveHash(x, bits, function, 0.7);
        Assert.Equal(rows, codes.Rows.data<long>().ToArray());
        var actual = codes.Weights.data<float>().ToArray();
        for (int i = 0; i < weights.Length; i++)
            Assert.Equal(weights[i], actual[i], Math.Max(1e-6, Math.Abs(weights[i]) * 1e-5));
    }

    /// <summary>
    /// The hash written out element by element in double: bit i of chunk k is z ≥ 0 (−0.0 counts as ≥ 0), the first
    /// element the most significant bit, row = code + k·2^τ; weight ‖z‖₁ · Π 1/(1 + e^(−2|zᵢ|)) (code) or
    /// Π 1/(1 + e^(−2|zᵢ|/t)) (paper).
    /// </summary>
    private static (long[] Rows, double[] Weights) NaiveHash(Tensor x, int bits, HashWeightFunction function, double t)
    {
        int n = (int)x.shape[0], k = (int)x.shape[1] / bits;
        var values = x.data<float>().ToArray();
        var rows = new long[n * k];
        var weights = new double[n * k];
        for (int i = 0; i < n; i++)
        {
            for (int c = 0; c < k; c++)
            {
                long code = 0;
                double p = 1, l1 = 0;
                for (int j = 0; j < bits; j++)
                {
                    double z = values[(i * k * bits) + (c * bits) + j];
                    if (z >= 0) code |= 1L << (bits - 1 - j);
                    double scale = function == HashWeightFunction.SigmoidProduct ? t : 1.0;
                    p /= 1 + Math.Exp(-2 * Math.Abs(z) / scale);
                    l1 += Math.Abs(z);
                }
                rows[(i * k) + c] = code + (c * (1L << bits));
                weights[(i * k) + c] = function == HashWeightFunction.SigmoidProduct ? p : l1 * p;
            }
        }
        return (rows, weights);
    }

    [Fact]
    public void Without_a_gradient_it_returns_plain_tensors_and_the_same_values()
    {
        var (x, _) = Inputs(5, 4, 8, seed: 3);
        using var noGrad = no_grad();
        var fused = FusedSignHash.Compute(x, 8, HashWeightFunction.L1ScaledSigmoidProduct, 1.0);
        var reference = SignHash.Reference(x, 8, HashWeightFunction.L1ScaledSigmoidProduct, 1.0);
        Assert.False(fused.Weights.requires_grad);
        Assert.True(allclose(fused.Weights, reference.Weights, 1e-5, 1e-6));
    }

    [Fact]
    public void Many_tokens_split_across_threads_give_the_same_result_as_the_reference()
    {
        var (x, _) = Inputs(3000, 64, 8, seed: 4);
        var fused = FusedSignHash.Compute(x, 8, HashWeightFunction.L1ScaledSigmoidProduct, 1.0);
        var reference = SignHash.Reference(x, 8, HashWeightFunction.L1ScaledSigmoidProduct, 1.0);
        Assert.True((fused.Rows == reference.Rows).all().item<bool>());
        Assert.True(allclose(fused.Weights, reference.Weights, 1e-5, 1e-6));
    }
}
