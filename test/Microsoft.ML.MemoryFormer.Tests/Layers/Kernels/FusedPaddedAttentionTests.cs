using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The managed bidirectional attention over right-padded rows (<see cref="FusedCausalAttention.ApplyPadded"/>) against
/// libtorch's <c>scaled_dot_product_attention</c> with the model's key-padding mask, and a classifier's loss and gradients with
/// <see cref="KernelSettings.FusedPaddedAttention"/> on and off.</summary>
public class FusedPaddedAttentionTests
{
    private static bool Available => CausalAttentionKernel.Supports(32);

    /// <summary>Key mask bool [B, T] with the first lengths[b] positions real.</summary>
    private static Tensor KeyMask(int[] lengths, int t) =>
        tensor(lengths.SelectMany(n => Enumerable.Range(0, t).Select(j => j < n)).ToArray(), [lengths.Length, t]);

    // T not a multiple of the 8-query or 32-key tiles; a row of one real token; a row with no padding; lengths at tile edges.
    [Theory]
    [InlineData(new[] { 37, 17, 1 }, 37, 32)]
    [InlineData(new[] { 8, 33, 64, 40 }, 70, 64)]
    [InlineData(new[] { 32, 31, 9 }, 40, 32)]
    [InlineData(new[] { 128, 127, 100, 65, 3 }, 128, 32)]    // the text classifier's windows: 128 tokens, hd = 32
    public void Real_rows_and_every_gradient_equal_masked_sdpa(int[] lengths, int t, int hd)
    {
        if (!Available) return;                                                  // no AVX-512: SDPA serves every call
        int b = lengths.Length, h = 2;
        var gen = new Generator((ulong)(t * 10 + hd));
        var q0 = randn([b, h, t, hd], generator: gen);
        var k0 = randn([b, h, t, hd], generator: gen);
        var v0 = randn([b, h, t, hd], generator: gen);
        var keyMask = KeyMask(lengths, t);
        var real = keyMask.view(b, 1, t, 1).to(ScalarType.Float32);               // padded rows carry no gradient, as in the model
        var upstream = randn([b, h, t, hd], generator: gen) * real;
        var mask = new AttentionContext(Causal: false, KeyMask: keyMask).BuildMask(t, 0, CPU);

        Tensor[] Run(Func<Tensor, Tensor, Tensor, Tensor> attend)
        {
            var r = FusedCausalAttentionTests.Run(attend, q0, k0, v0, upstream, layout: 0);
            return [r[0] * real, r[1], r[2], r[3]];                                // y at the real rows only
        }
        var fused = Run((q, k, v) => FusedCausalAttention.ApplyPadded(q, k, v, lengths));
        var reference = Run((q, k, v) => F.scaled_dot_product_attention(q, k, v, mask, 0.0, false));

        string[] names = ["y at real rows", "∂L/∂q", "∂L/∂k", "∂L/∂v"];
        for (int i = 0; i < 4; i++)
            Assert.True(allclose(fused[i], reference[i], 1e-4, 1e-5), $"{names[i]} differs by {(fused[i] - reference[i]).abs().max().item<float>()}");
    }

    [Fact]
    public void Bad_key_lengths_are_refused()
    {
        if (!Available) return;
        var q = randn(2, 2, 16, 32);
        Assert.Throws<ArgumentException>(() => FusedCausalAttention.ApplyPadded(q, q, q, [16]));        // one length for two rows
        Assert.Throws<ArgumentException>(() => FusedCausalAttention.ApplyPadded(q, q, q, [16, 0]));     // a row with no real key
        Assert.Throws<ArgumentException>(() => FusedCausalAttention.ApplyPadded(q, q, q, [17, 3]));     // longer than the row
    }

    /// <summary>One classifier loss and its parameter gradients on a padded batch, with the switch as given.</summary>
    private static (float Loss, Tensor[] Grads) ClassifierStep(bool fused)
    {
        random.manual_seed(21);
        var config = MemoryFormerConfig.Nano with { Width = 64, Heads = 2, BitsPerChunk = 8, Layers = 2, ContextLength = 48, VocabularySize = 300 };
        using var model = new SequenceClassifier(config with { Dropout = 0 }, 3, PoolingKind.Mean, headDropout: 0.0);
        var rows = new[] { 48, 13, 30, 1 }.Select((n, i) => Enumerable.Range(0, n).Select(j => (7 * j + i) % 299).ToArray()).ToArray();
        var (tokens, mask) = Microsoft.ML.MemoryFormer.Text.PaddedBatch.Create(rows, 299, CPU);
        float loss = 0;
        KernelSettings.Current.With(k => k.FusedPaddedAttention = fused, () =>
        {
            var logits = model.Forward(tokens, mask);                          // [4, 3]
            var l = F.cross_entropy(logits, tensor(new long[] { 0, 1, 2, 1 }));
            l.backward();
            loss = l.item<float>();
        });
        return (loss, model.parameters().Select(p => p.grad!.clone()).ToArray());
    }

    [Fact]
    public void A_classifiers_loss_and_gradients_equal_the_sdpa_path()
    {
        if (!Available) return;
        var (fusedLoss, fusedGrads) = ClassifierStep(fused: true);
        var (sdpaLoss, sdpaGrads) = ClassifierStep(fused: false);
        Assert.Equal(sdpaLoss, fusedLoss, 5);
        for (int i = 0; i < fusedGrads.Length; i++)
            Assert.True(allclose(fusedGrads[i], sdpaGrads[i], 1e-3, 1e-5), $"gradient {i} differs by {(fusedGrads[i] - sdpaGrads[i]).abs().max().item<float>()}");
        Assert.False(fusedGrads.Zip(sdpaGrads).All(p => p.First.bytes.SequenceEqual(p.Second.bytes)));   // the kernel did run
    }
}
