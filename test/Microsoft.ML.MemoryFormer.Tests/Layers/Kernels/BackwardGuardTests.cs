using System.Runtime.InteropServices;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// An exception inside one of the library's managed backwards reaches the caller of <c>backward()</c> instead of ending
/// the process (<see cref="BackwardGuard"/>): before it, a table modified in place between forward and backward crashed
/// the test host; and it reaches the training that ran the failing forward, never another thread's.
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

    [Fact]
    public async Task Two_trainings_at_the_same_time_each_get_their_own_failure_or_none()
    {
        random.manual_seed(11);
        using var failing = new LanguageModel(MemoryFormerConfig.Nano);
        using var healthy = new LanguageModel(MemoryFormerConfig.Nano);
        var windows = randint(0, 64, [8, 17], dtype: ScalarType.Int64, generator: new TorchSharp.torch.Generator(3));
        var failingTask = new TableEditingTask(failing, new LanguageModelTask(failing, windows, windows, batchSize: 4, seed: 9, CPU));
        var healthyTask = new LanguageModelTask(healthy, windows, windows, batchSize: 4, seed: 9, CPU);
        var options = new TrainingOptions { MaxSteps = 3, ReportEvery = 1000 };
        using var start = new Barrier(2);

        Exception? Train(nn.Module model, ITrainingTask task) => Record.Exception(() =>
        {
            start.SignalAndWait(TimeSpan.FromSeconds(60));
            for (int run = 0; run < 2; run++)
                TrainingLoop.Run(model, task, options);
        });
        var failed = Task.Factory.StartNew(() => Train(failing, failingTask), TaskCreationOptions.LongRunning);
        var trained = Task.Factory.StartNew(() => Train(healthy, healthyTask), TaskCreationOptions.LongRunning);
        await Task.WhenAll(failed, trained);

        var e = Assert.IsType<InvalidOperationException>(await failed);
        Assert.Contains($"The backward of {nameof(FusedMemoryGather)} failed", e.Message);
        Assert.Null(await trained);
        Assert.Null(BackwardGuard.Take());                                        // nothing filed outside the trainings' scopes
    }

    [Fact]
    public void A_users_failed_backward_on_another_thread_is_not_reported_by_a_training()
    {
        random.manual_seed(12);
        using var model = new LanguageModel(MemoryFormerConfig.Nano);
        var windows = randint(0, 64, [8, 17], dtype: ScalarType.Int64, generator: new TorchSharp.torch.Generator(3));
        using var layer = new MemoryLayer(4, 6, 16, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.1, 0.01);
        var x = randn(20, 24).requires_grad_(true);
        var userLoss = (layer.call(x) * x.narrow(1, 0, 16)).sum();               // the user's graph, outside any training
        using var inBackward = new ManualResetEventSlim();
        using var userFailed = new ManualResetEventSlim();
        Blocking.Entered = inBackward;
        Blocking.Release = userFailed;
        Exception? userBackward = null;
        var userThread = new Thread(() =>
        {
            userBackward = Record.Exception(() =>
            {
                inBackward.Wait(TimeSpan.FromSeconds(60));                        // the training's backward has started
                using (no_grad())
                    layer.Table.add_(1);
                userLoss.backward();
            });
            userFailed.Set();
        });
        userThread.Start();

        // The training's backward fails on its own (an invalid gradient, no guarded backward involved) while the user's failed.
        var task = new BlockingTask(new LanguageModelTask(model, windows, windows, batchSize: 4, seed: 9, CPU));
        var e = Record.Exception(() => TrainingLoop.Run(model, task, new TrainingOptions { MaxSteps = 1 }));
        userThread.Join();
        var user = BackwardGuard.Take();

        Assert.IsType<ExternalException>(userBackward);
        Assert.IsType<ExternalException>(e);
        Assert.DoesNotContain(nameof(FusedMemoryGather), e.Message);
        Assert.NotNull(user);                                                     // the user's failure stayed the user's
        Assert.Contains(nameof(FusedMemoryGather), user!.Message);
    }

    /// <summary>A task whose loss goes through <see cref="Blocking"/>: its backward waits for the other thread, then fails.</summary>
    private sealed class BlockingTask(ITrainingTask inner) : ITrainingTask
    {
        public (Tensor Loss, long Items) Loss(int step)
        {
            var (loss, items) = inner.Loss(step);
            return (Blocking.apply(loss.expand(3)).mean(), items);                // [3]: a [..., 2] gradient cannot reduce to it
        }

        public (double Loss, double? Metric)? Validate() => inner.Validate();
    }

    /// <summary>The identity, whose backward signals <see cref="Entered"/>, waits for <see cref="Release"/> and returns a
    /// gradient of an impossible shape (autograd's own "invalid gradient" error, not a guarded backward's).</summary>
    private sealed class Blocking : autograd.SingleTensorFunction<Blocking>
    {
        public static ManualResetEventSlim? Entered, Release;

        public override string Name => nameof(Blocking);

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars) => ((Tensor)vars[0]).clone();

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
        {
            Entered?.Set();
            Release?.Wait(TimeSpan.FromSeconds(60));
            return [zeros([1, 1, 1, 1, 1, 1, 1, 1, 2])];
        }
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
