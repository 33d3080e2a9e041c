using Microsoft.ML.MemoryFormer.Models;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// Next-token prediction over packed windows: each window holds T+1 tokens, inputs are the first T and targets
/// the last T. The batch of step s is drawn with a generator seeded from (seed, s) (<see cref="StepSeed"/>), so the
/// data position of a run is its step: a seed fixes the whole run and a resumed run sees the same batches.
/// </summary>
internal sealed class LanguageModelTask : ITrainingTask
{
    private readonly LanguageModel model;
    private readonly Tensor train;        // int64 [W, T+1]
    private readonly Tensor? validation;  // int64 [W', T+1]
    private readonly int batchSize;
    private readonly int seed;
    private readonly Device device;

    public LanguageModelTask(LanguageModel model, Tensor trainWindows, Tensor? validationWindows, int batchSize, int seed, Device device)
    {
        if (trainWindows.shape[0] == 0) throw new ArgumentException("There are no training windows.", nameof(trainWindows));
        this.model = model;
        train = trainWindows;
        validation = validationWindows is { } v && v.shape[0] > 0 ? v : null;
        this.batchSize = batchSize;
        this.seed = seed;
        this.device = device;
    }

    public (Tensor Loss, long Items) Loss(int step)
    {
        var random = new Random(StepSeed.Of(seed, step));
        var picks = Enumerable.Range(0, batchSize).Select(_ => (long)random.Next((int)train.shape[0])).ToArray();
        var batch = train.index_select(0, tensor(picks)).to(device);             // [B, T+1]
        return (LossOf(batch), batch.shape[0] * (batch.shape[1] - 1));
    }

    public (double Loss, double? Metric)? Validate()
    {
        if (validation is null) return null;
        double total = 0;
        long count = 0;
        for (long start = 0; start < validation.shape[0]; start += batchSize)
        {
            using var scope = NewDisposeScope();                                 // one batch's tensors at a time, not the whole pass's
            var batch = validation.narrow(0, start, Math.Min(batchSize, validation.shape[0] - start)).to(device);
            long tokens = batch.shape[0] * (batch.shape[1] - 1);
            total += LossOf(batch).item<float>() * tokens;
            count += tokens;
        }
        return (total / count, null);
    }

    /// <summary>Mean cross-entropy of a batch of windows [B, T+1] in nats per token.</summary>
    public Tensor LossOf(Tensor windows)
    {
        long t = windows.shape[1] - 1;
        var inputs = windows.narrow(1, 0, t);                                    // [B, T]
        var targets = windows.narrow(1, 1, t);                                   // [B, T]
        if (model.AdaptiveHead is not null)
            return model.TargetLogProbs(inputs, targets).mean().neg();           // scalar, no [B, T, V] logits
        var logits = model.call(inputs);                                         // [B, T, V]
        return F.cross_entropy(logits.reshape(-1, logits.shape[^1]), targets.reshape(-1)); // scalar
    }
}
