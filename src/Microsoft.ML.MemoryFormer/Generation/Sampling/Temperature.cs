using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Generation.Sampling;

/// <summary>Divides logits by a temperature: below 1 sharpens the distribution, above 1 flattens it.</summary>
/// <remarks>Temperature 0 (greedy) is not a division; <see cref="TokenSampler"/> takes the argmax instead.</remarks>
internal sealed class Temperature : ILogitsProcessor
{
    /// <param name="value">Greater than 0.</param>
    public Temperature(double value)
    {
        if (!(value > 0) || double.IsInfinity(value))
        {
            throw new ArgumentOutOfRangeException(nameof(value), value, "temperature must be a finite number > 0.");
        }

        Value = value;
        divisor = value;
    }

    /// <summary>The temperature.</summary>
    public double Value { get; }

    // Owned, not implicit: see Runtime.LiveScalars.
    private readonly Scalar divisor;

    /// <inheritdoc />
    /// <remarks>The row's largest logit is subtracted first (softmax does not change): with a temperature so small that the
    /// quotients overflow float32, the largest stays 0 and the others go to −∞ (greedy), instead of ∞ − ∞ = NaN in the softmax.</remarks>
    public Tensor Process(Tensor logits, IReadOnlyList<IReadOnlyList<int>> history) =>
        logits.sub(logits.amax([-1], keepdim: true)).div(divisor);
}
