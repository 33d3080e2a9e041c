namespace Microsoft.ML.MemoryFormer.Generation;

/// <summary>
/// Finds stop sequences in streamed text. <see cref="Append"/> returns only text that can no longer turn into a stop
/// sequence: a tail that could be the start of one is held back until later text settles it, and the stop sequence
/// itself, with anything after it, is never returned.
/// </summary>
internal sealed class StopSequenceMatcher
{
    private readonly string[] _stopSequences;
    private string _pending = string.Empty;

    /// <param name="stopSequences">Non-empty stop strings; may be empty (nothing is ever held back).</param>
    public StopSequenceMatcher(IReadOnlyList<string> stopSequences)
    {
        ArgumentNullException.ThrowIfNull(stopSequences);
        foreach (string stop in stopSequences)
        {
            ArgumentException.ThrowIfNullOrEmpty(stop, nameof(stopSequences));
        }

        _stopSequences = [.. stopSequences];
    }

    /// <summary>Whether a stop sequence has been seen; later <see cref="Append"/> calls return nothing.</summary>
    public bool IsStopped { get; private set; }

    /// <summary>Adds generated text and returns the part that is safe to emit now.</summary>
    /// <param name="piece">Newly generated text.</param>
    /// <returns>Text before any stop sequence, minus a tail that may still become one.</returns>
    public string Append(string piece)
    {
        ArgumentNullException.ThrowIfNull(piece);
        if (IsStopped)
        {
            return string.Empty;
        }

        // Held-back text is shorter than the longest stop sequence, so the search stays local.
        string text = _pending + piece;
        int cut = FindCut(text, _stopSequences);
        if (cut >= 0)
        {
            IsStopped = true;
            _pending = string.Empty;
            return text[..cut];
        }

        int hold = PossibleStartLength(text);
        _pending = text[^hold..];
        return text[..^hold];
    }

    /// <summary>Returns the held-back tail at the end of generation (it did not become a stop sequence).</summary>
    /// <returns>The remaining text; empty after a stop.</returns>
    public string Flush()
    {
        string rest = _pending;
        _pending = string.Empty;
        return rest;
    }

    /// <summary>Where to cut <paramref name="text"/>: the start of its earliest stop sequence, or -1.</summary>
    /// <param name="text">Generated text.</param>
    /// <param name="stopSequences">Non-empty stop strings.</param>
    /// <returns>The length of text to keep, or -1 when no stop sequence occurs.</returns>
    public static int FindCut(string text, IReadOnlyList<string> stopSequences)
    {
        int cut = -1;
        foreach (string stop in stopSequences)
        {
            int found = text.IndexOf(stop, StringComparison.Ordinal);
            if (found >= 0 && (cut < 0 || found < cut))
            {
                cut = found;
            }
        }

        return cut;
    }

    // Length of the longest suffix of text that is a proper prefix of some stop sequence.
    private int PossibleStartLength(string text)
    {
        int longest = 0;
        foreach (string stop in _stopSequences)
        {
            for (int length = Math.Min(stop.Length - 1, text.Length); length > longest; length--)
            {
                if (text.AsSpan(text.Length - length).SequenceEqual(stop.AsSpan(0, length)))
                {
                    longest = length;
                    break;
                }
            }
        }

        return longest;
    }
}
