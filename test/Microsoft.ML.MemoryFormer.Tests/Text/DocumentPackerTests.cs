using Microsoft.ML.MemoryFormer.Text;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Tests.Text;

public class DocumentPackerTests
{
    private readonly ByteLevelTokenizer _tokenizer = new();

    [Fact]
    public void Join_puts_end_of_text_after_every_document_and_skips_empty_ones()
    {
        int[] stream = new DocumentPacker(_tokenizer).Join(["ab", "", "c"]);

        Assert.Equal([97, 98, 256, 99, 256], stream);
    }

    [Fact]
    public void Windows_are_context_plus_one_tokens_with_stride_context()
    {
        int[] tokens = Enumerable.Range(0, 10).ToArray();
        var windows = new TokenWindows(tokens, contextLength: 3);

        Assert.Equal(3, windows.Count);   // (10 - 1) / 3
        Assert.Equal([0, 1, 2, 3], windows.GetWindow(0).ToArray());
        Assert.Equal([3, 4, 5, 6], windows.GetWindow(1).ToArray());
        Assert.Equal([6, 7, 8, 9], windows.GetWindow(2).ToArray());
    }

    [Fact]
    public void Targets_are_inputs_shifted_by_one_and_cross_document_separators()
    {
        TokenWindows windows = new DocumentPacker(_tokenizer).Pack(["abc", "de", "fgh"], contextLength: 4);
        // stream: a b c EOT d e EOT f g h EOT (11 tokens) -> 2 windows of 5
        (torch.Tensor inputs, torch.Tensor targets) = windows.GetBatch([1, 0]);

        Assert.Equal([2L, 4L], inputs.shape);
        Assert.Equal(torch.ScalarType.Int64, inputs.dtype);
        long[] x = inputs.data<long>().ToArray();
        long[] y = targets.data<long>().ToArray();
        Assert.Equal([100L, 101, 256, 102, 97, 98, 99, 256], x);   // row 0 = window 1 "de␃f", row 1 = window 0 "abc␃"
        Assert.Equal([101L, 256, 102, 103, 98, 99, 256, 100], y);
        for (int row = 0; row < 2; row++)
        {
            for (int t = 0; t < 3; t++)
            {
                Assert.Equal(x[(row * 4) + t + 1], y[(row * 4) + t]);
            }
        }
    }

    [Fact]
    public void Validation_split_takes_the_tail_and_shares_only_the_boundary_token()
    {
        var windows = new TokenWindows(Enumerable.Range(0, 101).ToArray(), contextLength: 10);   // 10 windows

        (TokenWindows training, TokenWindows validation) = windows.Split(0.2);

        Assert.Equal(8, training.Count);
        Assert.Equal(2, validation.Count);
        Assert.Equal(80, training.GetWindow(7)[^1]);
        Assert.Equal(80, validation.GetWindow(0)[0]);
        Assert.Equal(100, validation.GetWindow(1)[^1]);
        Assert.Throws<ArgumentOutOfRangeException>(() => windows.Split(1.0));
    }

    [Fact]
    public void Shuffled_batches_are_a_seeded_permutation_per_epoch()
    {
        var sampler = new ShuffledBatchSampler(count: 10, batchSize: 3, seed: 42, dropLast: true);
        int[][] epoch0 = sampler.Epoch(0).ToArray();

        Assert.Equal(3, epoch0.Length);
        Assert.All(epoch0, batch => Assert.Equal(3, batch.Length));
        Assert.Equal(9, epoch0.SelectMany(b => b).Distinct().Count());
        Assert.Equal(epoch0, new ShuffledBatchSampler(10, 3, 42).Epoch(0).ToArray());
        Assert.NotEqual(sampler.Permutation(0), sampler.Permutation(1));
        Assert.NotEqual(sampler.Permutation(0), new ShuffledBatchSampler(10, 3, 43).Permutation(0));
        Assert.Equal(Enumerable.Range(0, 10), sampler.Permutation(3).Order());
    }

    [Fact]
    public void Last_small_batch_is_kept_unless_dropped()
    {
        var sampler = new ShuffledBatchSampler(count: 10, batchSize: 4, seed: 1, dropLast: false);

        Assert.Equal([4, 4, 2], sampler.Epoch(0).Select(b => b.Length));
        Assert.Equal(3, sampler.BatchesPerEpoch);
    }
}
