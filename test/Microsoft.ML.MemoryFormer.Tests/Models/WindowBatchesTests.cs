using Microsoft.ML.MemoryFormer.Models;

namespace Microsoft.ML.MemoryFormer.Tests.Models;

public class WindowBatchesTests
{
    [Fact]
    public void Every_window_is_in_one_batch_longest_first_within_the_budget()
    {
        int[] lengths = [5, 128, 17, 128, 3, 128, 40, 17, 9, 128, 1];
        var batches = WindowBatches.Plan(lengths, tokenBudget: 300);
        Assert.Equal(Enumerable.Range(0, lengths.Length), batches.SelectMany(b => b).Order());
        foreach (var batch in batches)
        {
            Assert.True(batch.Length * lengths[batch[0]] <= 300 || batch.Length == 1, "a batch's padded tokens stay within the budget");
            Assert.Equal(batch.Select(i => lengths[i]).OrderDescending(), batch.Select(i => lengths[i]));
        }
    }

    [Fact]
    public void A_run_of_equal_windows_is_scored_unpadded_and_the_shorter_ones_are_grouped()
    {
        int[] lengths = [128, 20, 128, 128, 18, 128];
        var batches = WindowBatches.Plan(lengths, tokenBudget: 1024);
        Assert.Equal(new[] { new[] { 0, 2, 3, 5 }, new[] { 1, 4 } }, batches);                           // 4 × 128 ≥ a quarter of the budget: not padded to 20
    }

    [Fact]
    public void A_window_longer_than_the_budget_is_a_batch_of_its_own()
    {
        Assert.Equal(new[] { new[] { 1 }, new[] { 0 } }, WindowBatches.Plan([4, 50], tokenBudget: 8));
        Assert.Empty(WindowBatches.Plan([], tokenBudget: 8));
        Assert.Throws<ArgumentOutOfRangeException>(() => WindowBatches.Plan([1], tokenBudget: 0));
    }
}
