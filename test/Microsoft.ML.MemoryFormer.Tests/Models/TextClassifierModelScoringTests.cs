using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Models;

/// <summary>The batched scoring path (windows sorted by length, unpadded where they are equal) against the reference path
/// (every window of a call in one batch padded to the longest).</summary>
public class TextClassifierModelScoringTests
{
    private const int WindowTokens = 8;        // 7 text tokens per window
    private const float Tolerance = 1e-5f;     // float rounding of a different batch shape and the managed softmax

    private static TextClassifierModel NewModel(PoolingKind pooling = PoolingKind.Mean, double temperature = 1, int seed = 3)
    {
        TorchRuntime.Seed(seed);
        var tokenizer = new ByteLevelTokenizer();
        var config = MemoryFormerConfig.Nano with { VocabularySize = tokenizer.ModelVocabularySize, ContextLength = WindowTokens, Width = 32, Layers = 2 };
        return new TextClassifierModel(new SequenceClassifier(config, 3, pooling, 0), tokenizer, WindowTokens, CPU, maxWindowsPerRow: 3, temperature);
    }

    private static readonly (string, string?)[] Short = [("hi", null), ("abc", null), ("a row", null), ("abcdefg", null)];

    private static readonly (string, string?)[] Long =
        [("abcdefghijklmn", null), ("a row that spans several windows", null), ("abcdefgh", null), ("0123456789abcdefghijklmnopqrstuvwxyz", null)];

    private static readonly (string, string?)[] Blank = [("", null), (" ", null), ("   \t  ", null), ("\n", null)];

    private static readonly (string, string?)[] Pairs = [("a pair", "of texts that is long"), ("q", "a")];

    private static float[][] Score(TextClassifierModel model, IReadOnlyList<(string, string?)> rows, bool reference, int tokensPerBatch = 4096)
    {
        model.UseReferenceScoring = reference;
        model.ScoringTokensPerBatch = tokensPerBatch;
        return model.LogProbabilities(rows);
    }

    private static void AssertClose(float[][] expected, float[][] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int r = 0; r < expected.Length; r++)
        {
            Assert.Equal(expected[r].Length, actual[r].Length);
            for (int c = 0; c < expected[r].Length; c++)
                Assert.True(Math.Abs(expected[r][c] - actual[r][c]) <= Tolerance, $"row {r}, class {c}: {expected[r][c]} vs {actual[r][c]}");
        }
    }

    public static TheoryData<PoolingKind, int> PoolingsAndBudgets() => new()
    {
        { PoolingKind.Mean, 4096 }, { PoolingKind.Mean, 16 }, { PoolingKind.First, 4096 }, { PoolingKind.First, 16 },
        { PoolingKind.Last, 4096 }, { PoolingKind.Last, 16 },
    };

    [Theory]
    [MemberData(nameof(PoolingsAndBudgets))]
    public void Batched_scoring_equals_the_reference_for_short_long_blank_and_mixed_rows(PoolingKind pooling, int tokensPerBatch)
    {
        using var model = NewModel(pooling);
        foreach (var rows in new[] { Short, Long, Blank, Pairs, [.. Long, .. Short, .. Blank, .. Pairs, .. Long] })
            AssertClose(Score(model, rows, reference: true), Score(model, rows, reference: false, tokensPerBatch));
    }

    [Fact]
    public void Batched_scoring_divides_by_the_temperature_as_the_reference_does()
    {
        using var model = NewModel(temperature: 2.5);
        (string, string?)[] rows = [.. Long, .. Short];
        AssertClose(Score(model, rows, reference: true), Score(model, rows, reference: false, tokensPerBatch: 16));
    }

    [Fact]
    public void A_rows_score_does_not_depend_on_the_rows_scored_with_it()
    {
        using var model = NewModel();
        (string, string?)[] rows = [.. Long, .. Short, .. Blank];
        var together = Score(model, rows, reference: false);
        var alone = rows.Select(r => Score(model, [r], reference: false)[0]).ToArray();
        AssertClose(together, alone);
    }

    [Fact]
    public void Batched_scoring_is_deterministic_for_a_seed()
    {
        (string, string?)[] rows = [.. Long, .. Short, .. Blank, .. Pairs];
        using var first = NewModel(seed: 5);
        using var second = NewModel(seed: 5);
        var once = Score(first, rows, reference: false, tokensPerBatch: 16);
        Assert.Equal(once, Score(first, rows, reference: false, tokensPerBatch: 16));
        Assert.Equal(once, Score(second, rows, reference: false, tokensPerBatch: 16));
    }

    [Fact]
    public void The_profile_counts_every_window_and_its_padding()
    {
        using var model = NewModel();
        model.UseFusedScoring = false;                                           // the torch path pads; the fused one does not
        var profile = model.Profile = new ScoringProfile();
        (string, string?)[] rows = [("abcdefghijklmn", null), ("hi", null), ("abc", null)];   // 2 full windows + [EOT]hi + [EOT]abc
        Score(model, rows, reference: false, tokensPerBatch: 64);
        Assert.Equal(1, profile.Calls);
        Assert.Equal(4, profile.Windows);
        Assert.Equal(2 * WindowTokens + 3 + 4, profile.Tokens);
        int[] lengths = [WindowTokens, WindowTokens, 3, 4];                      // the windows in row order
        Assert.Equal(WindowBatches.Plan(lengths, 64).Sum(b => b.Length * b.Max(i => lengths[i])), profile.PaddedTokens);
        Assert.True(profile.ForwardMs > 0 && profile.TotalMs >= profile.ForwardMs);
    }

    [Fact]
    public void The_profile_of_the_fused_path_counts_no_padding()
    {
        using var model = NewModel();
        var profile = model.Profile = new ScoringProfile();
        (string, string?)[] rows = [("abcdefghijklmn", null), ("hi", null), ("abc", null)];
        Score(model, rows, reference: false, tokensPerBatch: 64);
        Assert.Equal(4, profile.Windows);
        Assert.Equal(profile.Tokens, profile.PaddedTokens);
        Assert.True(profile.ForwardMs > 0 && profile.TotalMs >= profile.ForwardMs);
    }
}
