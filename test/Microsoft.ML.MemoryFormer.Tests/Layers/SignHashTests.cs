using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers;

public class SignHashTests
{
    [Theory]
    [InlineData(4, 3)]
    [InlineData(8, 2)]
    [InlineData(10, 1)]
    public void Rows_equal_a_naive_msb_first_loop_with_zero_counted_positive(int tau, int chunks)
    {
        random.manual_seed(1);
        var x = randn(7, chunks * tau);
        x[0, 0] = tensor(0f);                                      // an exact zero hashes as a 1 bit
        var codes = SignHash.Compute(x, tau, HashWeightFunction.L1ScaledSigmoidProduct, 1.0);
        var xs = x.data<float>().ToArray();
        var rows = codes.Rows.data<long>().ToArray();
        for (int n = 0; n < 7; n++)
            for (int k = 0; k < chunks; k++)
            {
                long code = 0;
                for (int i = 0; i < tau; i++)
                    if (xs[n * chunks * tau + k * tau + i] >= 0) code |= 1L << (tau - 1 - i);
                Assert.Equal(code + k * (1L << tau), rows[n * chunks + k]);
            }
        Assert.Equal(ScalarType.Int64, codes.Rows.dtype);
    }

    [Theory]
    [InlineData(HashWeightFunction.L1ScaledSigmoidProduct, 1.0)]
    [InlineData(HashWeightFunction.SigmoidProduct, 0.7)]
    public void Weights_equal_a_naive_loop(HashWeightFunction function, double t)
    {
        random.manual_seed(2);
        var x = randn(5, 12, dtype: ScalarType.Float64);
        var w = SignHash.Compute(x, 4, function, t).Weights.data<double>().ToArray();
        var xs = x.data<double>().ToArray();
        for (int n = 0; n < 5; n++)
            for (int k = 0; k < 3; k++)
            {
                double p = 1, l1 = 0;
                for (int i = 0; i < 4; i++)
                {
                    double a = Math.Abs(xs[n * 12 + k * 4 + i]);
                    p *= 1 / (1 + Math.Exp(-2 * a / (function == HashWeightFunction.SigmoidProduct ? t : 1)));
                    l1 += a;
                }
                double expected = function == HashWeightFunction.SigmoidProduct ? p : l1 * p;
                Assert.Equal(expected, w[n * 3 + k], 12);
            }
    }

    [Fact]
    public void Paper_closed_form_equals_the_brute_force_softmax_over_all_codes()
    {
        random.manual_seed(3);
        const int tau = 6;
        const double t = 0.8;
        var z = randn(4, 1, tau, dtype: ScalarType.Float64);
        var closed = SignHash.Weights(z, HashWeightFunction.SigmoidProduct, t).data<double>().ToArray();
        var zs = z.data<double>().ToArray();
        for (int n = 0; n < 4; n++)
        {
            // softmax over the 2^τ codes c ∈ {−1,+1}^τ with logits ⟨z, c⟩/t, evaluated at c = sgn(z)
            double denominator = 0, selected = 0;
            for (int code = 0; code < 1 << tau; code++)
            {
                double logit = 0;
                bool isSign = true;
                for (int i = 0; i < tau; i++)
                {
                    int c = (code >> i & 1) == 1 ? 1 : -1;
                    logit += zs[n * tau + i] * c / t;
                    isSign &= c == (zs[n * tau + i] >= 0 ? 1 : -1);
                }
                denominator += Math.Exp(logit);
                if (isSign) selected = Math.Exp(logit);
            }
            Assert.Equal(selected / denominator, closed[n], 12);
        }
    }
}
