using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Models;

/// <summary><see cref="TextClassifierModel.Features"/>: each row's head input, the fused encoder's and the torch modules' alike,
/// is what the scores are computed from (head weight and bias, temperature, log-softmax), n-gram bag and window means included.</summary>
public class TextClassifierModelFeaturesTests
{
    private static readonly (string, string?)[] Rows =
        [("hi", null), ("a row that spans several windows", null), ("0123456789abcdefghijklmnopqrstuvwxyz", null), ("", null), ("a pair", "of texts")];

    private static TextClassifierModel NewModel(int ngramBuckets)
    {
        TorchRuntime.Seed(5);
        var tokenizer = new ByteLevelTokenizer();
        var config = MemoryFormerConfig.Nano with { VocabularySize = tokenizer.ModelVocabularySize, ContextLength = 8, Width = 32, Layers = 2 };
        var network = new SequenceClassifier(config, 3, PoolingKind.Mean, 0, ngramBuckets);
        if (network.NgramBag is { } bag)
            using (no_grad())
                bag.Table.normal_(0, 0.5);                                    // it starts at zero: give it something to add
        return new TextClassifierModel(network, tokenizer, 8, CPU, maxWindowsPerRow: 3, temperature: 2.5);
    }

    [Theory]
    [InlineData(0, true)]
    [InlineData(0, false)]
    [InlineData(64, true)]
    [InlineData(64, false)]
    public void The_scores_are_the_head_over_the_features(int ngramBuckets, bool fused)
    {
        using var model = NewModel(ngramBuckets);
        Assert.True(FusedEncoder.Supports(model.Network.Backbone));          // the fused rows test the fused path
        model.UseFusedScoring = fused;
        var encoded = Rows.Select(r => model.Encode(r.Item1, r.Item2)).ToArray();
        Assert.Contains(encoded, windows => windows.Length > 1);             // window means are part of it

        var features = model.Features(encoded);
        var expected = model.LogProbabilities(encoded);

        using var scope = NewDisposeScope();
        var head = model.Network.Head.Output;
        var logits = tensor(features.SelectMany(f => f).ToArray(), [features.Length, 32]).matmul(head.weight!.detach().t()) + head.bias!.detach();
        var scores = nn.functional.log_softmax(logits / 2.5, 1);
        for (int r = 0; r < Rows.Length; r++)
            for (int c = 0; c < 3; c++)
                Assert.True(Math.Abs(scores[r, c].item<float>() - expected[r][c]) < 1e-5f, $"row {r}, class {c}: {scores[r, c].item<float>()} vs {expected[r][c]}");
    }

    [Fact]
    public void The_fused_and_torch_features_agree()
    {
        using var model = NewModel(64);
        var encoded = Rows.Select(r => model.Encode(r.Item1, r.Item2)).ToArray();
        model.UseFusedScoring = true;
        var fused = model.Features(encoded);
        model.UseFusedScoring = false;
        var modules = model.Features(encoded);
        for (int r = 0; r < Rows.Length; r++)
            for (int c = 0; c < 32; c++)
                Assert.True(Math.Abs(fused[r][c] - modules[r][c]) < 1e-5f, $"row {r}, feature {c}: {fused[r][c]} vs {modules[r][c]}");
    }
}
