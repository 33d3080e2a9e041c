using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// An exponential moving average of a model's parameters (Polyak averaging; <see cref="TrainingOptions.WeightAveragingDecay"/>),
/// bias-corrected as Adam's moments are: after optimizer step n (1-based) the average is Σₖ dⁿ⁻ᵏ·wₖ / Σₖ dⁿ⁻ᵏ over the
/// weights wₖ after steps k = 1…n, a weighted mean of the trained weights in which the random initialisation has no
/// share. It is kept by the recurrence a ← a·dₙ + w·(1 − dₙ) with dₙ = d·(1 − dⁿ⁻¹) / (1 − dⁿ) (d₁ = 0: the first
/// update copies the weights; dₙ → d). Every parameter is averaged, the Memory
/// Layer tables included: the fused AdamW has updated them inside the backward by the time <see cref="Update"/> runs, and
/// the average reads them in one elementwise pass (it costs one more copy of the parameters in memory).
/// </summary>
/// <remarks>d is a pure function of the step, so a run resumed from a checkpoint that carries the average
/// (<see cref="WriteTo"/>, <see cref="ReadFrom"/>) repeats the uninterrupted run bit for bit.</remarks>
internal sealed class WeightAverage : IDisposable
{
    private readonly (string Name, Tensor Live, Tensor Average)[] entries;
    private readonly double decay;

    /// <summary>An average of <paramref name="model"/>'s parameters that starts at their current values.</summary>
    public WeightAverage(nn.Module model, double decay)
    {
        this.decay = decay;
        using var noGrad = no_grad();
        entries = model.named_parameters()
            .Select(p => (p.name, (Tensor)p.parameter, p.parameter.detach().clone().DetachFromDisposeScope()))
            .ToArray();
    }

    /// <summary>The decay dₙ applied by update n = <paramref name="updates"/> (1 = after the first step):
    /// d·(1 − dⁿ⁻¹) / (1 − dⁿ), 0 for n = 1 or d = 0.</summary>
    public static double DecayAt(double decay, int updates) =>
        decay == 0 ? 0 : decay * (1 - Math.Pow(decay, updates - 1)) / (1 - Math.Pow(decay, updates));

    /// <summary>Moves every average towards its parameter after 0-based step <paramref name="step"/>.</summary>
    public void Update(int step)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        double weight = 1.0 - DecayAt(decay, step + 1);
        foreach (var (_, live, average) in entries)
            average.lerp_(live, tensor(weight, average.dtype));               // a + (w − a)·(1 − dₙ), one pass
    }

    /// <summary>Exchanges the parameters and their averages (its own inverse): the model then holds the averaged weights
    /// until the next call.</summary>
    public void Swap()
    {
        using var noGrad = no_grad();
        foreach (var (_, live, average) in entries)
        {
            using var held = live.clone();
            live.copy_(average);                                               // an in-place op: bumps the table's version
            average.copy_(held);
        }
    }

    /// <summary>Writes the averaged weights into the model's parameters (the end of a run without early stopping).</summary>
    public void CopyInto()
    {
        using var noGrad = no_grad();
        foreach (var (_, live, average) in entries) live.copy_(average);
    }

    /// <summary>Writes the averages, by parameter name, for a checkpoint.</summary>
    public void WriteTo(BinaryWriter writer)
    {
        writer.Write(entries.Length);
        foreach (var (name, _, average) in entries)
        {
            writer.Write(name);
            average.Save(writer);
        }
    }

    /// <summary>Reads what <see cref="WriteTo"/> wrote for the same model.</summary>
    public void ReadFrom(BinaryReader reader)
    {
        int count = reader.ReadInt32();
        if (count != entries.Length)
            throw new InvalidDataException($"The checkpoint's weight average holds {count} tensors; the model has {entries.Length} parameters.");
        using var noGrad = no_grad();
        foreach (var (name, _, average) in entries)
        {
            string saved = reader.ReadString();
            if (saved != name)
                throw new InvalidDataException($"The checkpoint's weight average holds '{saved}' where the model has '{name}'.");
            average.Load(reader);
        }
    }

    public void Dispose()
    {
        foreach (var (_, _, average) in entries) average.Dispose();
    }
}
