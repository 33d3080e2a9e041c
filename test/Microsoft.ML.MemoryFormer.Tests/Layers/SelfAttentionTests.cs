using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers;

public class SelfAttentionTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Attention_is_softmax_of_scaled_rotated_scores_written_out(bool causal)
    {
        random.manual_seed(12);
        var config = MemoryFormerConfig.Nano with { Width = 32, Heads = 2, BitsPerChunk = 4, RotaryFraction = 0.5 };   // hd 16, 8 rotated
        using var attention = new SelfAttention(config);
        using var noGrad = no_grad();
        int t = 5, heads = config.Heads, hd = config.HeadWidth;
        var x = randn(1, t, config.Width);
        var y = attention.Forward(x, new AttentionContext(Causal: causal), cache: null).data<float>().ToArray();   // [1, T, d]

        // Q, K, V from the layer's own projections, rotated by the layer's rotary; the rest written out here.
        var (q, k, v) = attention.Qkv.call(x.reshape(t, -1));
        Tensor Heads(Tensor m) => m.view(1, t, heads, hd).transpose(1, 2);            // [1, H, T, hd]
        var qs = attention.Rotary.Apply(Heads(q), 0).contiguous().data<float>().ToArray();
        var ks = attention.Rotary.Apply(Heads(k), 0).contiguous().data<float>().ToArray();
        var vs = Heads(v).contiguous().data<float>().ToArray();
        double scale = 1 / Math.Sqrt(hd);
        for (int h = 0; h < heads; h++)
        {
            for (int i = 0; i < t; i++)
            {
                int last = causal ? i : t - 1;
                var scores = new double[last + 1];
                for (int j = 0; j <= last; j++)
                {
                    double dot = 0;
                    for (int c = 0; c < hd; c++)
                        dot += qs[(((h * t) + i) * hd) + c] * (double)ks[(((h * t) + j) * hd) + c];
                    scores[j] = dot * scale;
                }
                double max = scores.Max(), sum = scores.Sum(s => Math.Exp(s - max));
                for (int c = 0; c < hd; c++)
                {
                    double expected = 0;
                    for (int j = 0; j <= last; j++)
                        expected += Math.Exp(scores[j] - max) / sum * vs[(((h * t) + j) * hd) + c];
                    Assert.Equal(expected, y[(i * config.Width) + (h * hd) + c], 1e-4);   // heads side by side, no W_O
                }
            }
        }
    }
}
