using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Text;

/// <summary>
/// A token stream cut into training windows of T + 1 tokens: window i starts at token i·T, its first T tokens are the
/// inputs and its last T tokens the targets (the inputs shifted by one). Consecutive windows share one token, so every
/// token after the first is a target exactly once; a tail shorter than a window is dropped.
/// </summary>
internal sealed class TokenWindows
{
    private readonly int[] _tokens;

    /// <param name="tokens">The token stream (not copied).</param>
    /// <param name="contextLength">Tokens the model sees at once (T), at least 1.</param>
    public TokenWindows(int[] tokens, int contextLength)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentOutOfRangeException.ThrowIfLessThan(contextLength, 1);
        _tokens = tokens;
        ContextLength = contextLength;
        Count = tokens.Length <= contextLength ? 0 : (tokens.Length - 1) / contextLength;
    }

    /// <summary>Tokens per input row (T).</summary>
    public int ContextLength { get; }

    /// <summary>Number of full windows.</summary>
    public int Count { get; }

    /// <summary>The stream the windows are cut from.</summary>
    public ReadOnlySpan<int> Tokens => _tokens;

    /// <summary>Window <paramref name="index"/>: T + 1 tokens.</summary>
    /// <param name="index">In [0, Count).</param>
    /// <returns>The window's tokens.</returns>
    public ReadOnlySpan<int> GetWindow(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        return _tokens.AsSpan(index * ContextLength, ContextLength + 1);
    }

    /// <summary>Splits off the last <paramref name="validationFraction"/> of the windows for validation.</summary>
    /// <remarks>A contiguous tail rather than a random pick: random windows would put neighbouring text, often from the
    /// same document, on both sides. The two parts share at most one token, the boundary.</remarks>
    /// <param name="validationFraction">In [0, 1); at least one window goes to validation when it is above 0.</param>
    /// <returns>The training and validation windows.</returns>
    public (TokenWindows Training, TokenWindows Validation) Split(double validationFraction)
    {
        if (!(validationFraction >= 0 && validationFraction < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(validationFraction), validationFraction, "validationFraction must be in [0, 1).");
        }

        int validationCount = validationFraction == 0 ? 0 : Math.Max(1, (int)Math.Round(Count * validationFraction));
        if (validationCount > 0 && validationCount >= Count)
        {
            throw new ArgumentException(
                $"Splitting {Count} windows with validationFraction {validationFraction} leaves no training window; use more text or a smaller fraction.",
                nameof(validationFraction));
        }

        int trainingCount = Count - validationCount;
        int boundary = trainingCount * ContextLength;
        int[] training = _tokens[..(boundary + 1)];
        int[] validation = validationCount == 0 ? [] : _tokens[boundary..(boundary + (validationCount * ContextLength) + 1)];
        return (new TokenWindows(training, ContextLength), new TokenWindows(validation, ContextLength));
    }

    /// <summary>Builds the input and target tensors of the given windows.</summary>
    /// <param name="windowIndices">Windows in batch order (B of them).</param>
    /// <param name="device">Device for the tensors; CPU when <see langword="null"/>.</param>
    /// <returns>Inputs and targets, each [B, T] int64.</returns>
    public (Tensor Inputs, Tensor Targets) GetBatch(IReadOnlyList<int> windowIndices, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(windowIndices);
        int batchSize = windowIndices.Count;
        int t = ContextLength;
        var inputs = new long[batchSize * t];
        var targets = new long[batchSize * t];
        for (int b = 0; b < batchSize; b++)
        {
            ReadOnlySpan<int> window = GetWindow(windowIndices[b]);
            for (int i = 0; i < t; i++)
            {
                inputs[(b * t) + i] = window[i];
                targets[(b * t) + i] = window[i + 1];
            }
        }

        Tensor inputTensor = torch.tensor(inputs, [batchSize, t]);      // [B, T]
        Tensor targetTensor = torch.tensor(targets, [batchSize, t]);    // [B, T]
        return device is null || device.type == DeviceType.CPU
            ? (inputTensor, targetTensor)
            : (inputTensor.to(device), targetTensor.to(device));
    }
}
