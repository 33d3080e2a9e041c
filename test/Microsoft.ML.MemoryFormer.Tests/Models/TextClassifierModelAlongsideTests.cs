using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Models;

/// <summary>Buffered rows tokenized beside the fused encoder (<see cref="TextClassifierModel.TokenizeAlongside"/>) against the same rows
/// encoded before the call: the same windows, groups and bits.</summary>
public class TextClassifierModelAlongsideTests
{
    private static (string, string?)[] Rows()
    {
        var random = new Random(5);
        var rows = new List<(string, string?)>();
        for (int i = 0; i < 40; i++)                                             // 1 to 4 windows of 48 byte tokens
            rows.Add((string.Concat(Enumerable.Range(0, 5 + random.Next(220)).Select(j => (char)('a' + ((i + (j * 7)) % 26)))), null));
        rows.Insert(3, ("", null));
        rows.Insert(9, ("a pair", "of texts that is somewhat long"));
        rows.Insert(17, (new string('x', TextClassifierModel.MaxBufferedTextLength + 5), null));   // encoded when read
        return [.. rows];
    }

    [Theory]
    [InlineData(4096)]
    [InlineData(300)]
    [InlineData(100)]
    [InlineData(20)]                                                             // shorter than a window: one window a group
    public void Rows_tokenized_beside_the_encoder_score_the_same_bits(int tokensPerBatch)
    {
        using var model = ScoringTestModels.Small(3, 11, 48);
        model.ScoringTokensPerBatch = tokensPerBatch;
        var rows = Rows();
        int previous = get_num_threads();
        try
        {
            set_num_threads(2);                                                  // the path needs a second worker
            model.TokenizeAlongside = false;
            var before = model.LogProbabilities(rows.Select(r => model.Encode(r.Item1, r.Item2)).ToArray());
            model.TokenizeAlongside = true;
            var buffered = rows.Select(r => model.Buffer(r.Item1, r.Item2)).ToArray();
            Assert.Equal(rows.Length - 1, buffered.Count(r => r.Text is not null));   // all but the overlong row kept as text
            var profile = model.Profile = new ScoringProfile();
            var alongside = model.LogProbabilities(buffered);
            model.Profile = null;
            Assert.Equal(1, profile.Calls);
            Assert.Equal(rows.Sum(r => model.Encode(r.Item1, r.Item2).Length), profile.Windows);
            Assert.Equal(before.Length, alongside.Length);
            for (int i = 0; i < before.Length; i++)
                Assert.Equal(before[i].Select(BitConverter.SingleToInt32Bits), alongside[i].Select(BitConverter.SingleToInt32Bits));
            model.TokenizeAlongside = false;                                     // switched off, buffered text is encoded first
            Assert.Equal(before, model.LogProbabilities(buffered));
        }
        finally { set_num_threads(previous); }
    }
}
