using System.Runtime.InteropServices;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// An exception inside one of the library's managed backwards reaches the caller of <c>backward()</c> instead of ending
/// the process (<see cref="BackwardGuard"/>): before it, a table modified in place between forward and backward crashed
/// the test host.
/// </summary>
public class BackwardGuardTests
{
    [Fact]
    public void A_table_modified_between_forward_and_backward_fails_the_backward_with_an_exception()
    {
        random.manual_seed(5);
        using var layer = new MemoryLayer(4, 6, 16, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.1, 0.01);
        var x = randn(20, 24).requires_grad_(true);
        var loss = (layer.call(x) * x.narrow(1, 0, 16)).sum();
        using (no_grad())
            layer.Table.add_(1);

        var e = Assert.Throws<ExternalException>(() => loss.backward());
        Assert.Contains("invalid gradient", e.Message);
        var kept = BackwardGuard.Take();
        Assert.NotNull(kept);
        Assert.Contains(nameof(FusedMemoryGather), kept!.Message);
        Assert.Contains("inplace", kept.Message);
    }

    [Fact]
    public void A_norm_gain_modified_between_forward_and_backward_fails_the_backward_with_an_exception()
    {
        using var norm = new RmsNorm(8, 1e-5);
        var x = randn(3, 8).requires_grad_(true);
        var loss = (norm.call(x) * x).sum();
        using (no_grad())
            norm.Weight.mul_(2);

        Assert.Throws<ExternalException>(() => loss.backward());
        Assert.Contains(nameof(FusedRmsNorm), BackwardGuard.Take()?.Message);
    }

    [Fact]
    public void The_training_loop_reports_the_failed_backward_by_name()
    {
        random.manual_seed(9);
        using var model = new LanguageModel(MemoryFormerConfig.Nano);
        var windows = randint(0, 64, [8, 17], dtype: ScalarType.Int64, generator: new TorchSharp.torch.Generator(3));
        var task = new TableEditingTask(model, new LanguageModelTask(model, windows, windows, batchSize: 4, seed: 9, CPU));

        var e = Assert.Throws<InvalidOperationException>(() => TrainingLoop.Run(model, task, new TrainingOptions { MaxSteps = 2 }));
        Assert.Contains($"The backward of {nameof(FusedMemoryGather)} failed", e.Message);
        Assert.Contains("inplace", e.Message);
    }

    /// <summary>A task that writes a table in place after the forward, as a user's code might by mistake.</summary>
    private sealed class TableEditingTask(LanguageModel model, ITrainingTask inner) : ITrainingTask
    {
        public (Tensor Loss, long Items) Loss(int step)
        {
            var result = inner.Loss(step);
            using (no_grad())
                ParameterGroups.TableLayers(model).First().Table.add_(0);
            return result;
        }

        public (double Loss, double? Metric)? Validate() => inner.Validate();
    }
}
