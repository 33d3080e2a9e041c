using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Training;

/// <summary>
/// A language model's validation pass holds one batch's tensors at a time: with a full head each batch's logits are
/// [B, T, V] floats, so a pass that kept every batch's temporaries until its end grew with the validation set.
/// </summary>
public class LanguageModelValidationMemoryTests
{
    [Theory]
    [InlineData(TransformerKind.MemoryFormer)]
    [InlineData(TransformerKind.Dense)]
    public void Validation_leaves_no_more_live_tensors_for_many_batches_than_for_one(TransformerKind kind)
    {
        random.manual_seed(3);
        using var model = new LanguageModel(MemoryFormerConfig.Nano with { Kind = kind });
        model.eval();
        var train = randint(0, 64, [4, 17]);
        long LiveAfterValidating(int windows)
        {
            using var outer = NewDisposeScope();
            using var noGrad = no_grad();
            var task = new LanguageModelTask(model, train, randint(0, 64, [windows, 17]), batchSize: 2, seed: 1, CPU);
            long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            var result = task.Validate();
            Assert.NotNull(result);
            Assert.True(double.IsFinite(result.Value.Loss));
            return DisposeScopeManager.Statistics.ThreadTotalLiveCount - before;
        }
        long one = LiveAfterValidating(2);       // one batch
        long many = LiveAfterValidating(16);     // eight batches
        Assert.Equal(one, many);
    }
}
