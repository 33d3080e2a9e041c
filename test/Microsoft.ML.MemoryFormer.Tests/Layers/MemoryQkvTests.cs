using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers;

public class MemoryQkvTests
{
    [Fact]
    public void Q_K_and_V_read_their_own_tables_with_one_hash_and_one_set_of_weights()
    {
        random.manual_seed(13);
        var config = MemoryFormerConfig.Nano;                                     // d = 16, τ = 4, K = 4
        using var qkv = new MemoryQkv(config);
        using var noGrad = no_grad();
        int n = 6, d = config.Width, bits = config.BitsPerChunk, k = config.ChunkCount;
        var x = randn(n, d);
        var (q, kk, v) = qkv.call(x);
        var xs = x.data<float>().ToArray();
        var layers = new[] { qkv.Query, qkv.Key, qkv.Value };
        var outputs = new[] { q, kk, v }.Select(o => o.data<float>().ToArray()).ToArray();
        var tables = layers.Select(l => l.Table.data<float>().ToArray()).ToArray();
        var biases = layers.Select(l => l.Bias.data<float>().ToArray()).ToArray();
        for (int i = 0; i < n; i++)
        {
            // one hash of x: the same rows and weights for all three projections
            var rows = new int[k];
            var weights = new double[k];
            for (int c = 0; c < k; c++)
            {
                int code = 0;
                double p = 1, l1 = 0;
                for (int j = 0; j < bits; j++)
                {
                    double z = xs[(i * d) + (c * bits) + j];
                    if (z >= 0) code |= 1 << (bits - 1 - j);
                    p /= 1 + Math.Exp(-2 * Math.Abs(z));
                    l1 += Math.Abs(z);
                }
                rows[c] = (c << bits) + code;
                weights[c] = l1 * p;
            }
            for (int m = 0; m < 3; m++)
            {
                for (int col = 0; col < d; col++)
                {
                    double expected = biases[m][col];
                    for (int c = 0; c < k; c++)
                        expected += weights[c] * tables[m][(rows[c] * d) + col];
                    Assert.Equal(expected, outputs[m][(i * d) + col], 1e-4);
                }
            }
        }
        // three tables and three biases, nothing else: no per-projection hash state
        Assert.Equal(6, qkv.parameters().Count());
        Assert.False(tables[0].SequenceEqual(tables[1]));
    }
}
