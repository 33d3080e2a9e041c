using Microsoft.ML.MemoryFormer.Models;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// Supervised training on table rows for <see cref="TrainingLoop"/>: seeded shuffled epochs of mini-batches, and a
/// validation pass over the whole validation set. Regression fits the standardised label with squared error, binary
/// the logit with logistic loss, multiclass the logits with cross-entropy. Glossary: B rows, F slots, C classes.
/// </summary>
internal sealed class TabularTask : ITrainingTask
{
    private readonly TabularModel model;
    private readonly TabularTaskKind kind;
    private readonly (Tensor X, Tensor Y) train;         // [N, F] float, [N] float or int64
    private readonly (Tensor X, Tensor Y)? validation;
    private readonly int batchSize;
    private readonly Random random;
    private readonly Device device;
    private long[] order = [];

    public TabularTask(TabularModel model, TabularTaskKind kind, (Tensor X, Tensor Y) train, (Tensor X, Tensor Y)? validation,
        int batchSize, int seed, Device device)
    {
        this.model = model;
        this.kind = kind;
        this.train = train;
        this.validation = validation;
        this.batchSize = batchSize;
        random = new Random(seed);
        this.device = device;
    }

    /// <summary>Optimizer steps in one pass over the training rows.</summary>
    public int StepsPerEpoch => (int)((train.X.shape[0] + batchSize - 1) / batchSize);

    public (Tensor Loss, long Items) Loss(int step)
    {
        int inEpoch = step % StepsPerEpoch;
        if (inEpoch == 0) order = Shuffled(train.X.shape[0]);
        var picks = order.AsSpan(inEpoch * batchSize, Math.Min(batchSize, order.Length - inEpoch * batchSize)).ToArray();
        var index = tensor(picks);
        var x = train.X.index_select(0, index).to(device);                      // [B, F]
        var y = train.Y.index_select(0, index).to(device);                      // [B]
        return (LossOf(x, y), picks.Length);
    }

    public (double Loss, double? Metric)? Validate()
    {
        if (validation is not { } v) return null;
        double total = 0;
        long rows = v.X.shape[0];
        for (long start = 0; start < rows; start += batchSize)
        {
            long n = Math.Min(batchSize, rows - start);
            total += LossOf(v.X.narrow(0, start, n).to(device), v.Y.narrow(0, start, n).to(device)).item<float>() * n;
        }
        return (total / rows, null);
    }

    /// <summary>Mean loss of rows x [B, F] with labels y [B].</summary>
    public Tensor LossOf(Tensor x, Tensor y)
    {
        var output = model.call(x);                                               // [B, 1] or [B, C]
        return kind switch
        {
            TabularTaskKind.Regression => F.mse_loss(output.squeeze(-1), y),
            TabularTaskKind.BinaryClassification => F.binary_cross_entropy_with_logits(output.squeeze(-1), y),
            _ => F.cross_entropy(output, y),
        };
    }

    private long[] Shuffled(long n)
    {
        var result = new long[n];
        for (long i = 0; i < n; i++) result[i] = i;
        random.Shuffle(result);
        return result;
    }
}
