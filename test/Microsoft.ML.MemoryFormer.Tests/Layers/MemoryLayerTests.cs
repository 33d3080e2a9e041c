using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers;

public class MemoryLayerTests
{
    private static MemoryLayer NewLayer(HashWeightFunction f = HashWeightFunction.L1ScaledSigmoidProduct, double t = 1.0)
    {
        random.manual_seed(11);
        return new MemoryLayer(chunkCount: 3, bitsPerChunk: 4, outputWidth: 5, f, t, tableInitStd: 0.5, biasInitStd: 0.1);
    }

    [Theory]
    [InlineData(HashWeightFunction.L1ScaledSigmoidProduct)]
    [InlineData(HashWeightFunction.SigmoidProduct)]
    public void Output_equals_a_naive_loop_over_chunks(HashWeightFunction function)
    {
        using var layer = NewLayer(function, 0.5);
        var x = randn(6, 12);
        var y = layer.call(x).data<float>().ToArray();
        var table = layer.Table.data<float>().ToArray();
        var bias = layer.Bias.data<float>().ToArray();
        var xs = x.data<float>().ToArray();
        for (int n = 0; n < 6; n++)
        {
            var expected = (double[])bias.Select(b => (double)b).ToArray().Clone();
            for (int k = 0; k < 3; k++)
            {
                int code = 0;
                double p = 1, l1 = 0;
                for (int i = 0; i < 4; i++)
                {
                    double z = xs[n * 12 + k * 4 + i];
                    if (z >= 0) code |= 1 << (3 - i);
                    double tt = function == HashWeightFunction.SigmoidProduct ? 0.5 : 1.0;
                    p /= 1 + Math.Exp(-2 * Math.Abs(z) / tt);
                    l1 += Math.Abs(z);
                }
                double w = function == HashWeightFunction.SigmoidProduct ? p : l1 * p;
                int row = k * 16 + code;
                for (int j = 0; j < 5; j++) expected[j] += w * table[row * 5 + j];
            }
            for (int j = 0; j < 5; j++) Assert.Equal(expected[j], y[n * 5 + j], 4);
        }
    }

    [Fact]
    public void Only_selected_table_rows_receive_gradient()
    {
        using var layer = NewLayer();
        var x = randn(2, 12);
        layer.call(x).sum().backward();
        var rows = layer.Hash(x).Rows.flatten().data<long>().ToHashSet();
        var rowHasGrad = layer.Table.grad!.abs().sum(1).gt(0).data<bool>().ToArray();
        for (int r = 0; r < rowHasGrad.Length; r++) Assert.Equal(rows.Contains(r), rowHasGrad[r]);
    }

    [Theory]
    [InlineData(HashWeightFunction.L1ScaledSigmoidProduct)]
    [InlineData(HashWeightFunction.SigmoidProduct)]
    public void Gradients_match_finite_differences_in_double(HashWeightFunction function)
    {
        using var layer = NewLayer(function, 0.7);
        layer.to(ScalarType.Float64);
        // keep inputs away from 0 so that a small step never flips a sign bit (the hash is piecewise constant)
        var x = (randn(3, 12, dtype: ScalarType.Float64).sign() * (rand(3, 12, dtype: ScalarType.Float64) + 0.3)).requires_grad_();
        var probe = randn(3, 5, dtype: ScalarType.Float64);
        Func<Tensor> loss = () => (layer.call(x) * probe).sum();
        loss().backward();
        CheckAgainstFiniteDifferences(x, x.grad!, loss);
        CheckAgainstFiniteDifferences(layer.Table, layer.Table.grad!, loss);
        CheckAgainstFiniteDifferences(layer.Bias, layer.Bias.grad!, loss);
    }

    private static void CheckAgainstFiniteDifferences(Tensor parameter, Tensor analytic, Func<Tensor> loss)
    {
        const double h = 1e-6;
        var grad = analytic.clone();
        using var noGrad = no_grad();
        var flat = parameter.view(-1);
        var g = grad.view(-1);
        for (long i = 0; i < flat.numel(); i++)
        {
            double original = flat[i].item<double>();
            flat[i] = tensor(original + h);
            double plus = loss().item<double>();
            flat[i] = tensor(original - h);
            double minus = loss().item<double>();
            flat[i] = tensor(original);
            Assert.Equal((plus - minus) / (2 * h), g[i].item<double>(), 6);
        }
    }
}
