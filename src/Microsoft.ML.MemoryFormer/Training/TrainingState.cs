using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// The training loop's own state besides the weights and the optimizer: where the run is, its loss history and its
/// early-stopping bookkeeping. Everything a checkpoint needs for a resumed run to end with the same result.
/// </summary>
internal sealed class TrainingState : IDisposable
{
    /// <summary>Steps completed (the next step's 0-based index).</summary>
    public int Step { get; set; }

    /// <summary>Training loss of every completed step.</summary>
    public List<double> Losses { get; } = [];

    /// <summary>Items (tokens or rows) trained on.</summary>
    public long Items { get; set; }

    /// <summary>Wall time of the sessions before this one (a resumed run adds its own).</summary>
    public TimeSpan EarlierElapsed { get; set; }

    /// <summary>The best validation so far.</summary>
    public (double Loss, double? Metric)? Best { get; set; }

    /// <summary>The lowest validation loss so far (with a metric, not always the best validation's loss).</summary>
    public double? LowestLoss { get; set; }

    /// <summary>Validations since the last that raised the metric or lowered the loss.</summary>
    public int SinceBest { get; set; }

    /// <summary>The validation of the last step, if it ran one (reported, not checkpointed).</summary>
    public (double Loss, double? Metric)? LastValidation { get; set; }

    /// <summary>Whether early stopping ended the run.</summary>
    public bool StoppedEarly { get; set; }

    /// <summary>A copy of the weights at the best validation (early stopping only), owned by this state.</summary>
    public Dictionary<string, Tensor>? BestWeights { get; private set; }

    /// <summary>Replaces <see cref="BestWeights"/> (disposing the previous copy).</summary>
    public void SetBestWeights(Dictionary<string, Tensor>? weights)
    {
        if (BestWeights is not null && !ReferenceEquals(BestWeights, weights))
            foreach (var t in BestWeights.Values) t.Dispose();
        BestWeights = weights;
    }

    /// <summary>The scalars and the loss history (the tensors are written separately); <paramref name="elapsed"/> is
    /// the run's wall time so far, which a resumed run starts from.</summary>
    public void WriteTo(BinaryWriter writer, TimeSpan elapsed)
    {
        writer.Write(Step);
        writer.Write(Items);
        writer.Write(elapsed.Ticks);
        writer.Write(Best is not null);
        writer.Write(Best?.Loss ?? 0);
        writer.Write(Best?.Metric is not null);
        writer.Write(Best?.Metric ?? 0);
        writer.Write(SinceBest);
        writer.Write(StoppedEarly);
        writer.Write(Losses.Count);
        foreach (var loss in Losses) writer.Write(loss);
        writer.Write(LowestLoss is not null);                            // appended last (2026-12-07): ReadFrom accepts a state without it
        writer.Write(LowestLoss ?? 0);
    }

    /// <summary>Reads what <see cref="WriteTo"/> wrote.</summary>
    public static TrainingState ReadFrom(BinaryReader reader)
    {
        var state = new TrainingState { Step = reader.ReadInt32(), Items = reader.ReadInt64(), EarlierElapsed = new TimeSpan(reader.ReadInt64()) };
        bool hasBest = reader.ReadBoolean();
        double bestLoss = reader.ReadDouble();
        bool hasMetric = reader.ReadBoolean();
        double metric = reader.ReadDouble();
        state.Best = hasBest ? (bestLoss, hasMetric ? metric : null) : null;
        state.SinceBest = reader.ReadInt32();
        state.StoppedEarly = reader.ReadBoolean();
        int count = reader.ReadInt32();
        if (count != state.Step)
            throw new InvalidDataException($"The checkpoint's loss history holds {count} steps but its step is {state.Step}.");
        for (int i = 0; i < count; i++) state.Losses.Add(reader.ReadDouble());
        if (reader.BaseStream.Position == reader.BaseStream.Length)      // written before the lowest loss was kept:
            state.LowestLoss = state.Best?.Loss;                         // the best validation's loss stands in for it
        else
        {
            bool hasLowest = reader.ReadBoolean();
            double lowest = reader.ReadDouble();
            state.LowestLoss = hasLowest ? lowest : null;
        }
        return state;
    }

    public void Dispose() => SetBestWeights(null);
}
