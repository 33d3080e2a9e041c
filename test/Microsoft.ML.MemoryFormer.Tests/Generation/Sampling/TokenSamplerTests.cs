using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.Generation.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Generation.Sampling;

public class TokenSamplerTests
{
    private static readonly IReadOnlyList<int> NoHistory = [];

    // A fixed, spread-out distribution over 20 ids, shuffled so the ranking is not the id order.
    private static Tensor Logits()
    {
        float[] values = [0.3f, 2.5f, -1f, 1.7f, 0.9f, 3.1f, -0.5f, 1.2f, 2.0f, 0.1f,
                          -2f, 1.5f, 0.6f, 2.8f, -0.2f, 1.0f, 0.0f, 2.2f, -1.5f, 0.4f];
        return torch.tensor(values);
    }

    private static int[] TopIds(Tensor logits, int k) =>
        [.. logits.topk(k).indexes.data<long>().ToArray().Select(id => (int)id)];

    [Fact]
    public void Greedy_takes_the_argmax()
    {
        using var sampler = new TokenSampler(new GenerationOptions { Temperature = 0 });
        using Tensor logits = Logits();

        Assert.Equal(5, sampler.Sample(logits, NoHistory));
        Assert.Equal(5, sampler.Sample(logits, NoHistory));
    }

    [Fact]
    public void Extreme_but_valid_settings_sample_instead_of_failing_in_softmax()
    {
        // Temperatures and penalties that pass validation but overflow float32: a vanishing temperature is greedy, and
        // penalties pushing scores to ±∞ leave softmax defined.
        using Tensor logits = Logits();
        using (var tiny = new TokenSampler(new GenerationOptions { Temperature = double.Epsilon, Seed = 1 }))
            Assert.Equal(5, tiny.Sample(logits, NoHistory));
        IReadOnlyList<int> history = [5, 13, 1];
        using (var repetition = new TokenSampler(new GenerationOptions { Temperature = 1, RepetitionPenalty = 1e-39, Seed = 1 }))
            Assert.Contains(repetition.Sample(logits, history), history);                      // 1/1e-39 lifts the seen ids to +∞
        using (var frequency = new TokenSampler(new GenerationOptions { Temperature = 1, FrequencyPenalty = -1e39, Seed = 1 }))
            Assert.Contains(frequency.Sample(logits, history, generated: [2]), new[] { 2 });   // −(−1e39) lifts the generated id
    }

    [Fact]
    public void Top_k_never_returns_a_token_outside_the_top_k()
    {
        using var sampler = new TokenSampler(new GenerationOptions { Temperature = 2.0, TopK = 3, Seed = 1 });
        using Tensor logits = Logits();
        int[] allowed = TopIds(logits, 3);

        var drawn = new HashSet<int>();
        for (int i = 0; i < 500; i++)
        {
            drawn.Add(sampler.Sample(logits, NoHistory));
        }

        Assert.Subset(allowed.ToHashSet(), drawn);
        Assert.Equal(3, drawn.Count);   // at temperature 2 all three appear in 500 draws
    }

    [Fact]
    public void Top_p_keeps_the_smallest_nucleus_reaching_p()
    {
        // probabilities 0.5, 0.3, 0.15, 0.05: p = 0.75 needs the first two (0.8), p = 0.8 still two, 0.81 three.
        using Tensor logits = torch.tensor(new[] { 0.15f, 0.5f, 0.05f, 0.3f }).log().unsqueeze(0);

        Assert.Equal([1, 3], KeptIds(new TopP(0.75).Process(logits, [NoHistory])));
        Assert.Equal([1, 3], KeptIds(new TopP(0.79).Process(logits, [NoHistory])));
        Assert.Equal([0, 1, 3], KeptIds(new TopP(0.81).Process(logits, [NoHistory])));
        Assert.Equal([1], KeptIds(new TopP(0.01).Process(logits, [NoHistory])));
    }

    [Fact]
    public void Top_k_keeps_exactly_k_tokens_per_row()
    {
        using Tensor logits = torch.stack([Logits(), -Logits()]);   // [2, 20]

        using Tensor kept = new TopK(4).Process(logits, [NoHistory, NoHistory]);

        Assert.Equal(TopIds(logits[0], 4).Order(), KeptIds(kept[0].unsqueeze(0)));
        Assert.Equal(TopIds(logits[1], 4).Order(), KeptIds(kept[1].unsqueeze(0)));
    }

    [Fact]
    public void Same_seed_gives_the_same_draws_and_another_seed_does_not()
    {
        int[] Draws(int seed)
        {
            using var sampler = new TokenSampler(new GenerationOptions { Temperature = 1.5, Seed = seed });
            using Tensor logits = Logits();
            return [.. Enumerable.Range(0, 50).Select(_ => sampler.Sample(logits, NoHistory))];
        }

        Assert.Equal(Draws(123), Draws(123));
        Assert.NotEqual(Draws(123), Draws(124));
    }

    [Fact]
    public void Default_seed_is_used_when_options_have_none()
    {
        int[] Draws(GenerationOptions options, int defaultSeed)
        {
            using var sampler = new TokenSampler(options, defaultSeed);
            using Tensor logits = Logits();
            return [.. Enumerable.Range(0, 30).Select(_ => sampler.Sample(logits, NoHistory))];
        }

        Assert.Equal(Draws(new GenerationOptions { Temperature = 1.5, Seed = 9 }, 0), Draws(new GenerationOptions { Temperature = 1.5 }, 9));
    }

    [Fact]
    public void Repetition_penalty_lowers_a_repeated_tokens_probability()
    {
        using Tensor logits = torch.tensor(new[] { 2f, -1f, 0.5f }).unsqueeze(0);   // [1, 3]
        IReadOnlyList<IReadOnlyList<int>> history = [[0, 1, 0]];

        using Tensor penalized = new RepetitionPenalty(2.0).Process(logits, history);

        Assert.Equal([1f, -2f, 0.5f], penalized.data<float>().ToArray());
        float[] before = logits.softmax(-1).data<float>().ToArray();
        float[] after = penalized.softmax(-1).data<float>().ToArray();
        Assert.True(after[0] < before[0]);
        Assert.True(after[1] < before[1]);
        Assert.True(after[2] > before[2]);
    }

    [Fact]
    public void Repetition_penalty_changes_the_greedy_choice()
    {
        using Tensor logits = torch.tensor(new[] { 2f, 1.5f, 0f });
        using var plain = new TokenSampler(new GenerationOptions { Temperature = 0 });
        using var penalized = new TokenSampler(new GenerationOptions { Temperature = 0, RepetitionPenalty = 1.5 });

        Assert.Equal(0, plain.Sample(logits, [0]));
        Assert.Equal(1, penalized.Sample(logits, [0]));
    }

    [Fact]
    public void Frequency_and_presence_penalties_subtract_per_occurrence_and_once()
    {
        using Tensor logits = torch.tensor(new[] { 2f, -1f, 0.5f }, [1, 3]);
        IReadOnlyList<IReadOnlyList<int>> generated = [[0, 1, 0]];

        using Tensor penalized = new OutputPenalties(frequency: 0.5, presence: 0.25).Process(logits, generated);

        Assert.Equal([2f - (2 * 0.5f) - 0.25f, -1f - 0.5f - 0.25f, 0.5f], penalized.data<float>().ToArray());
    }

    [Fact]
    public void Frequency_and_presence_penalties_count_the_output_not_the_prompt()
    {
        using Tensor logits = torch.tensor(new[] { 2f, 1.5f, 0f });
        using var sampler = new TokenSampler(new GenerationOptions { Temperature = 0, FrequencyPenalty = 0.4, PresencePenalty = 0.2 });

        Assert.Equal(0, sampler.Sample(logits, history: [0, 0, 0], generated: []));   // token 0 only in the prompt
        Assert.Equal(1, sampler.Sample(logits, history: [0], generated: [0]));        // 2 − 0.4 − 0.2 < 1.5
        Assert.Equal(0, sampler.Sample(logits, history: [0], generated: null));       // nothing counted
    }

    [Fact]
    public void Batched_rows_use_their_own_history_and_padding_ids_are_never_drawn()
    {
        // 2 rows over a padded vocabulary of 6 where only 4 ids are real; ids 4 and 5 have the largest logits.
        using Tensor logits = torch.tensor(new[] { 3f, 2.9f, 0f, 0f, 9f, 9f, 0f, 0f, 1f, 1.1f, 9f, 9f }, [2, 6]);
        using var sampler = new TokenSampler(new GenerationOptions { Temperature = 0, RepetitionPenalty = 2 }, vocabularySize: 4);

        int[] ids = sampler.Sample(logits, [[0], []]);

        Assert.Equal([1, 3], ids);
    }

    [Fact]
    public void Sampling_leaks_no_tensors()
    {
        using var sampler = new TokenSampler(new GenerationOptions { TopK = 5, TopP = 0.9, RepetitionPenalty = 1.3, Seed = 2 });
        using Tensor logits = Logits();
        sampler.Sample(logits, [1, 2]);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;

        for (int i = 0; i < 20; i++)
        {
            sampler.Sample(logits, [1, 2, i % 20]);
        }

        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    private static int[] KeptIds(Tensor processed) =>
        [.. Enumerable.Range(0, (int)processed.shape[^1]).Where(i => !float.IsNegativeInfinity(processed[0, i].item<float>()))];
}
