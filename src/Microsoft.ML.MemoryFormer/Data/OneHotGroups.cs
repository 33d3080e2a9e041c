namespace Microsoft.ML.MemoryFormer.Data;

/// <summary>
/// Finds the one-hot groups of a feature vector on the raw training rows, so that each categorical column becomes one
/// token (FT-Transformer's categorical tokenizer, Gorishniy et al. 2021, §3.3) instead of one token per one-hot slot. A
/// group is a run of adjacent slots whose training values are all 0 or 1 (no NaN) and of which no training row has more
/// than one slot at 1 — what ML.NET's <c>OneHotEncoding</c> writes for one column, concatenated into Features. Every
/// other slot is a group of its own. Deterministic: the result depends only on the values and slot order.
/// </summary>
internal static class OneHotGroups
{
    /// <summary>
    /// Per slot of <paramref name="features"/> [N, F] row-major, the index of its token: 0, 1, … in slot order, equal for
    /// the slots of one group; or null when every slot is its own token (nothing to group).
    /// </summary>
    /// <param name="features">Raw (not standardised) training features.</param>
    /// <param name="featureCount">F.</param>
    public static int[]? Find(float[] features, int featureCount)
    {
        int rows = featureCount == 0 ? 0 : features.Length / featureCount;
        var tokens = new int[featureCount];
        var rowSum = new byte[rows];          // slots at 1 in the open group, per row
        int token = -1;
        bool open = false;                    // whether the last slot may be extended by the next binary slot
        for (int slot = 0; slot < featureCount; slot++)
        {
            bool binary = rows > 0 && IsBinary(features, featureCount, rows, slot);
            if (binary && open && Exclusive(features, featureCount, rows, slot, rowSum))
            {
                tokens[slot] = token;
                continue;
            }
            tokens[slot] = ++token;
            open = binary;
            if (binary)
                for (int r = 0; r < rows; r++) rowSum[r] = (byte)features[r * featureCount + slot];
        }
        return token + 1 == featureCount ? null : tokens;
    }

    /// <summary>The number of tokens of <paramref name="slotTokens"/> (see <see cref="Find"/>).</summary>
    public static int TokenCount(int[] slotTokens) => slotTokens.Length == 0 ? 0 : slotTokens.Max() + 1;

    /// <summary>Whether <paramref name="slotTokens"/> is a valid grouping of <paramref name="featureCount"/> slots: one entry
    /// per slot, tokens numbered 0, 1, … in slot order with none skipped (so a damaged file is refused, not mis-read).</summary>
    public static bool IsValid(int[] slotTokens, int featureCount)
    {
        if (slotTokens.Length != featureCount || featureCount == 0 || slotTokens[0] != 0) return false;
        for (int i = 1; i < slotTokens.Length; i++)
            if (slotTokens[i] != slotTokens[i - 1] && slotTokens[i] != slotTokens[i - 1] + 1) return false;
        return true;
    }

    private static bool IsBinary(float[] features, int featureCount, int rows, int slot)
    {
        for (int r = 0; r < rows; r++)
            if (features[r * featureCount + slot] is not (0f or 1f)) return false;
        return true;
    }

    /// <summary>Whether no row has <paramref name="slot"/> at 1 besides another slot of the open group; if so, adds the slot
    /// to the rows' sums.</summary>
    private static bool Exclusive(float[] features, int featureCount, int rows, int slot, byte[] rowSum)
    {
        for (int r = 0; r < rows; r++)
            if (rowSum[r] + features[r * featureCount + slot] > 1) return false;
        for (int r = 0; r < rows; r++) rowSum[r] += (byte)features[r * featureCount + slot];
        return true;
    }
}
