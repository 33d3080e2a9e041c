using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Training;

/// <summary>Training on two threads twice gives the same bytes: no result depends on which thread finishes first.</summary>
public class ThreadDeterminismTests
{
    /// <summary>Trains a model wide enough that the managed kernels split their work over threads; returns every parameter's bytes.</summary>
    private static (byte[][] Parameters, IReadOnlyList<double> Losses) Train(int threads)
    {
        int previous = get_num_threads();
        set_num_threads(threads);
        try
        {
            random.manual_seed(9);
            // d = 64, τ = 8: 2,048 table rows of 64 per Q/K/V layer and 8,192 in the Memory Block's second layer.
            var config = MemoryFormerConfig.Nano with { Width = 64, Heads = 2, BitsPerChunk = 8, Layers = 1, ContextLength = 32 };
            using var model = new LanguageModel(config);
            var windows = randint(0, 64, [8, 33], dtype: ScalarType.Int64, generator: new Generator(3));
            var task = new LanguageModelTask(model, windows, windows, batchSize: 8, seed: 9, CPU);
            // A tiny clip norm makes every step scale its gradients by the measured norm.
            var options = new TrainingOptions { MaxSteps = 6, WarmupSteps = 1, GradientClip = 1e-3, ReportEvery = 1 };
            var result = TrainingLoop.Run(model, task, options);
            return (model.parameters().Select(p => p.bytes.ToArray()).ToArray(), result.LossHistory);
        }
        finally { set_num_threads(previous); }
    }

    [Fact]
    public void Two_runs_on_two_threads_give_identical_weights()
    {
        var a = Train(threads: 2);
        var b = Train(threads: 2);
        Assert.Equal(a.Losses, b.Losses);
        Assert.Equal(a.Parameters.Length, b.Parameters.Length);
        for (int i = 0; i < a.Parameters.Length; i++)
            Assert.True(a.Parameters[i].AsSpan().SequenceEqual(b.Parameters[i]), $"parameter {i} differs");
    }
}
