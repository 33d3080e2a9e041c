using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Diagnostics;
using Microsoft.ML.MemoryFormer.Text;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.Interop;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.LanguageModeling;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Onnx;
using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.MemoryFormer.Tests.LanguageModeling.LanguageModelData;

namespace Microsoft.ML.MemoryFormer.Tests.Models;

public class AdaptiveSoftmaxHeadTests
{
    public static TheoryData<TransformerKind> Kinds => new() { TransformerKind.MemoryFormer, TransformerKind.Dense };

    /// <summary>Nano (d = 16, V = 64) with a head of 8 ranks and tails of 24 (width 4) and 32 (width 1).</summary>
    private static MemoryFormerConfig Adaptive(TransformerKind kind) =>
        MemoryFormerConfig.Nano with { Kind = kind, AdaptiveSoftmaxCutoffs = [8, 32] };

    private static LanguageModel NewModel(TransformerKind kind, int seed = 5, int vocabulary = 64)
    {
        random.manual_seed(seed);
        var model = new LanguageModel(Adaptive(kind) with { VocabularySize = vocabulary });
        var counts = new Random(seed).GetItems(Enumerable.Range(0, 10).Select(i => (long)i).ToArray(), vocabulary);
        model.AdaptiveHead!.SetTokenCounts(counts);                       // a ranking with ties, not the identity
        model.eval();
        return model;
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Probabilities_over_the_vocabulary_sum_to_one(TransformerKind kind)
    {
        using var model = NewModel(kind);
        using var _ = no_grad();
        var logProbs = model.call(randint(0, 64, [3, 9]));               // [3, 9, 64]
        Assert.Equal([3, 9, 64], logProbs.shape);
        var sums = logProbs.to_type(ScalarType.Float64).exp().sum(-1);   // [3, 9]
        Assert.True(allclose(sums, ones_like(sums), 1e-5, 1e-6), $"sums {sums.min().item<double>()} … {sums.max().item<double>()}");
        Assert.True(logProbs.le(0).all().item<bool>());
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void The_training_loss_is_minus_the_log_probability_of_the_targets(TransformerKind kind)
    {
        using var model = NewModel(kind);
        using var _ = no_grad();
        var tokens = randint(0, 64, [2, 10]);
        var targets = randint(0, 64, [2, 10]);
        var full = model.call(tokens).gather(-1, targets.unsqueeze(-1)).squeeze(-1); // [2, 10] from the [.., V] log-probs
        var direct = model.TargetLogProbs(tokens, targets);                          // [2, 10] without them
        Assert.True(allclose(direct, full, 1e-5, 1e-6));
        var windows = cat([tokens, targets.narrow(1, 9, 1)], 1);                     // any [B, T+1]; the task's own split
        var task = new Microsoft.ML.MemoryFormer.Training.LanguageModelTask(model, windows, null, 2, 1, CPU);
        var expected = -model.TargetLogProbs(windows.narrow(1, 0, 10), windows.narrow(1, 1, 10)).mean().item<float>();
        Assert.Equal(expected, task.LossOf(windows).item<float>(), 6);
    }

    [Fact]
    public void Ranks_follow_the_counts_most_frequent_first_ties_by_id()
    {
        using var model = new LanguageModel(Adaptive(TransformerKind.MemoryFormer));
        var counts = new long[64];
        counts[7] = 5; counts[3] = 9; counts[40] = 5;
        model.AdaptiveHead!.SetTokenCounts(counts);
        var rank = model.AdaptiveHead.TokenRank.data<long>().ToArray();
        Assert.Equal(0, rank[3]);
        Assert.Equal(1, rank[7]);
        Assert.Equal(2, rank[40]);
        Assert.Equal(3, rank[0]);                                                   // zero counts: by id
        Assert.Equal(Enumerable.Range(0, 64).Select(i => (long)i), rank.Order());   // a permutation
    }

    [Fact]
    public void Gradients_match_finite_differences_in_float64()
    {
        random.manual_seed(3);
        using var head = new AdaptiveSoftmaxHead(Adaptive(TransformerKind.MemoryFormer));
        head.to(ScalarType.Float64);
        head.SetTokenCounts(Enumerable.Range(0, 64).Select(i => 64L - i).ToArray()); // rank = id: the targets hit the head and both tails
        var hidden = randn([6, 16], ScalarType.Float64).requires_grad_(true);
        var targets = tensor(new long[] { 0, 5, 17, 33, 48, 63 });
        Tensor Loss() => head.TargetLogProbs(hidden, targets).sum().neg();
        Loss().backward();
        const double eps = 1e-6;
        var checkedTensors = head.parameters().Select(p => (Value: (Tensor)p, Grad: p.grad!)).Append((hidden, hidden.grad!)).ToList();
        Assert.Equal(6, checkedTensors.Count);                                      // head, 2 down, 2 up, hidden
        foreach (var (value, grad) in checkedTensors)
        {
            var analytic = grad.flatten();
            var flat = value.detach().view(-1);                                     // a view: writes reach the tensor
            for (long i = 0; i < flat.shape[0]; i += Math.Max(1, flat.shape[0] / 7))
            {
                double x = flat[i].item<double>(), plus, minus;
                using (no_grad()) { flat[i] = x + eps; plus = Loss().item<double>(); flat[i] = x - eps; minus = Loss().item<double>(); flat[i] = x; }
                Assert.Equal((plus - minus) / (2 * eps), analytic[i].item<double>(), 6);
            }
        }
    }

    [Fact]
    public void A_fitted_model_saves_loads_and_scores_the_same_and_its_ranks_come_from_the_training_text()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(Corpus);
        using var model = ml.Text.MemoryFormer(AdaptiveOptions()).Fit(data);
        var rank = model.Model.AdaptiveHead!.TokenRank.data<long>().ToArray();
        Assert.Equal(0, rank[' ']);                                                  // the corpus' most frequent byte
        var path = Path.Combine(Path.GetTempPath(), $"adaptive-{Guid.NewGuid():N}.mfm");
        try
        {
            model.Save(path);
            using var loaded = MemoryFormerLanguageModelTransformer.Load(path);
            Assert.Equal(rank, loaded.Model.AdaptiveHead!.TokenRank.data<long>().ToArray());
            Assert.Equal(ml.Text.EvaluateLanguageModel(model, data).TotalNats, ml.Text.EvaluateLanguageModel(loaded, data).TotalNats);
            Assert.Equal(model.Generate("the ", Greedy), loaded.Generate("the ", Greedy));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Training_is_deterministic_for_a_seed_and_the_evaluation_is_exact()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(Corpus);
        using var a = ml.Text.MemoryFormer(AdaptiveOptions()).Fit(data);
        using var b = ml.Text.MemoryFormer(AdaptiveOptions()).Fit(data);
        Assert.Equal(a.TrainingResult!.LossHistory, b.TrainingResult!.LossHistory);
        var metrics = ml.Text.EvaluateLanguageModel(a, data);
        Assert.True(metrics.LossNatsPerToken < Math.Log(258) - 1, $"trained loss {metrics.LossNatsPerToken}");
        var texts = Corpus.Select(d => d.Text).ToList();                             // the evaluator's target path vs the full log-probs
        var windows = new TokenWindows([a.Tokenizer.EndOfTextId, .. new DocumentPacker(a.Tokenizer).Join(texts)], 16);
        using var _ = no_grad();
        var (inputs, targets) = windows.GetBatch(Enumerable.Range(0, windows.Count).ToArray(), CPU);
        double full = -a.Model.call(inputs).to_type(ScalarType.Float64).gather(-1, targets.unsqueeze(-1)).sum().item<double>();
        Assert.Equal(full, -a.Model.TargetLogProbs(inputs, targets).to_type(ScalarType.Float64).sum().item<double>(), 3);
    }

    [Fact]
    public void Generation_takes_the_general_path_and_the_cache_gives_the_same_text()
    {
        using var model = NewModel(TransformerKind.MemoryFormer, vocabulary: 258);
        var caches = model.Backbone.NewCaches(1, CPU);
        Assert.Null(FusedDecodeStep.TryCreate(model, caches));                      // the fused step needs the full head
        foreach (var c in caches) c.Dispose();
        var generator = new TextGenerator(model, new ByteLevelTokenizer(), CPU, defaultSeed: 1);
        var sampled = new GenerationOptions { MaxNewTokens = 10, Seed = 4, Temperature = 0.9, TopK = 20 };
        Assert.Equal(generator.Generate("ab", sampled), generator.Generate("ab", sampled));
    }

    [Fact]
    public void Paths_that_need_the_full_head_say_so()
    {
        using var model = NewModel(TransformerKind.MemoryFormer);
        var folder = Path.Combine(Path.GetTempPath(), $"adaptive-{Guid.NewGuid():N}");
        Exception[] errors =
        [
            Record.Exception(() => model.ExportToOnnx(new MemoryStream())),
            Record.Exception(() => model.ExportSafetensors(folder)),
            Record.Exception(() => model.ExportGptNeoXCheckpoint(folder)),
            Record.Exception(() => model.UseInferencePrecision(InferencePrecision.BFloat16)),
            Record.Exception(() => model.Head),
        ];
        foreach (var e in errors)
        {
            var notSupported = Assert.IsType<NotSupportedException>(e is NotSupportedException ? e : e?.InnerException);
            Assert.Contains(nameof(MemoryFormerConfig.AdaptiveSoftmaxCutoffs), notSupported.Message);
        }
        Assert.False(Directory.Exists(folder) && Directory.EnumerateFiles(folder).Any());
        Assert.Equal(InferencePrecision.Float32, model.InferencePrecision);
    }

    [Theory]
    [InlineData(new[] { 0, 8 })]
    [InlineData(new[] { 8, 8 })]
    [InlineData(new[] { 32, 8 })]
    [InlineData(new[] { 8, 64 })]
    [InlineData(new[] { 2, 4, 8 })]                                                 // d / 4³ < 1 at d = 16
    public void Bad_cutoffs_are_refused_by_name(int[] cutoffs)
    {
        var e = Assert.Throws<ArgumentException>(() => (MemoryFormerConfig.Nano with { AdaptiveSoftmaxCutoffs = cutoffs }).Validate());
        Assert.Contains(nameof(MemoryFormerConfig.AdaptiveSoftmaxCutoffs), e.Message);
    }

    [Fact]
    public void The_default_head_keeps_its_config_json_and_weight_names()
    {
        Assert.DoesNotContain(nameof(MemoryFormerConfig.AdaptiveSoftmaxCutoffs), MemoryFormerConfig.Nano.ToJson());
        using var full = new LanguageModel(MemoryFormerConfig.Nano);
        Assert.Contains("head.weight", full.state_dict().Keys);
        Assert.DoesNotContain(full.state_dict().Keys, k => k.StartsWith("adaptive", StringComparison.Ordinal));
        var config = Adaptive(TransformerKind.MemoryFormer);
        Assert.Equal(config.AdaptiveSoftmaxCutoffs, MemoryFormerConfig.FromJson(config.ToJson()).AdaptiveSoftmaxCutoffs);
        using var adaptive = new LanguageModel(config);
        Assert.Equal((long)CostEstimator.LanguageModelParameters(config), adaptive.parameters().Sum(p => p.numel()));
    }

    private static MemoryFormerLanguageModelEstimator.Options AdaptiveOptions()
    {
        var options = NanoOptions(steps: 12);
        options.Architecture = options.Architecture with { AdaptiveSoftmaxCutoffs = [16, 64] };
        options.Seed = 7;
        return options;
    }
}
