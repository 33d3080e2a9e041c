using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Training;

/// <summary>A few seeded training steps of a small language model under a kernel setting, for the tests that compare a
/// switch's bits against its default.</summary>
internal static class SeededTraining
{
    /// <summary>Trains a <paramref name="config"/> model (weights seeded by <paramref name="seed"/>) on one batch of
    /// <paramref name="batchSize"/> random windows (drawn from <paramref name="windowSeed"/>) with <paramref name="options"/>,
    /// <paramref name="change"/> applied to <see cref="KernelSettings.Current"/> for the run; every parameter's bytes and the losses.</summary>
    public static (byte[][] Parameters, IReadOnlyList<double> Losses) Run(Action<KernelSettings> change, MemoryFormerConfig config,
        int seed, int windowSeed, int batchSize, TrainingOptions options)
    {
        byte[][] parameters = [];
        IReadOnlyList<double> losses = [];
        KernelSettings.Current.With(change, () =>
        {
            random.manual_seed(seed);
            using var model = new LanguageModel(config);
            var windows = randint(0, 64, [batchSize, config.ContextLength + 1], dtype: ScalarType.Int64, generator: new Generator((ulong)windowSeed));
            var task = new LanguageModelTask(model, windows, windows, batchSize, seed, CPU);
            losses = TrainingLoop.Run(model, task, options).LossHistory;
            parameters = model.parameters().Select(p => p.bytes.ToArray()).ToArray();
        });
        return (parameters, losses);
    }
}
