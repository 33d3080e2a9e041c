using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// The tokens of a <see cref="FeatureTokenizer"/> with one-hot groups, computed per group rather than per slot. A group's
/// token is the sum of its slots' tokens, x_s · V_s + b_s, with V_s the slot's linear weight (or its piecewise-linear
/// projection row, whose single bin on [0, 1] encodes x itself); for a row of 0/1 values with at most one 1 per group that
/// is V of the set slot (none: nothing) plus the group's summed biases: a gather of one row per group instead of a token
/// per slot summed by a [G, F] matrix. Slots that are tokens of their own go through the tokenizer's usual embedding. On
/// adult (107 slots, 14 tokens) the per-slot path built [rows, 107, d] tensors forward and backward, most of the tokenizer's
/// time. <see cref="RowsThatApply"/> says which rows may take this path, whatever the batch size; the tokenizer takes the
/// per-slot one for the others, so a row's tokens (and scores) depend on its own values only, never on its batch. The price is
/// a slower single row (a <c>PredictionEngine</c> call on adult's shape: 76 µs here against 33 µs one slot at a time; 8 rows
/// 100–111 against 122–201 µs, 64 rows 183–188 against 520–573 µs).
/// </summary>
internal sealed class OneHotGroupTokens : IDisposable
{
    private readonly Tensor singletonSlots;   // [Fs] slots that are tokens of their own
    private readonly Tensor groupSlots;       // [Fg] slots of multi-slot groups, in slot order
    private readonly Tensor slotOfGroup;      // [Fg, Gm]: 1 where group slot j belongs to group g
    private readonly Tensor numbered;         // [Fg, Gm]: j + 1 where group slot j belongs to group g (a row's set slot, 1-based)
    private readonly Tensor order;            // [G]: where token t sits in [singleton tokens, group tokens]

    /// <summary>The path for <paramref name="slotTokens"/>, or null when no group has two slots, or (piecewise-linear) a group
    /// slot's bin is not [0, 1], so that its encoding would not be the value itself.</summary>
    public static OneHotGroupTokens? Create(int[] slotTokens, float[][]? binEdges)
    {
        var sizes = slotTokens.GroupBy(t => t).ToDictionary(g => g.Key, g => g.Count());
        var grouped = Enumerable.Range(0, slotTokens.Length).Where(s => sizes[slotTokens[s]] > 1).ToArray();
        if (grouped.Length == 0 || (binEdges is not null && grouped.Any(s => binEdges[s] is not [0f, 1f])))
            return null;
        return new OneHotGroupTokens(slotTokens, grouped, sizes);
    }

    private OneHotGroupTokens(int[] slotTokens, int[] grouped, Dictionary<int, int> sizes)
    {
        var singles = Enumerable.Range(0, slotTokens.Length).Where(s => sizes[slotTokens[s]] == 1).ToArray();
        var groups = grouped.Select(s => slotTokens[s]).Distinct().ToArray();               // tokens of the groups, ascending
        var member = new float[grouped.Length * groups.Length];
        var index = new float[grouped.Length * groups.Length];
        for (int j = 0; j < grouped.Length; j++)
        {
            int g = Array.IndexOf(groups, slotTokens[grouped[j]]);
            member[j * groups.Length + g] = 1;
            index[j * groups.Length + g] = j + 1;
        }
        var place = new long[sizes.Count];
        for (int i = 0; i < singles.Length; i++) place[slotTokens[singles[i]]] = i;
        for (int g = 0; g < groups.Length; g++) place[groups[g]] = singles.Length + g;
        singletonSlots = Owned(tensor(singles.Select(s => (long)s).ToArray()));
        groupSlots = Owned(tensor(grouped.Select(s => (long)s).ToArray()));
        slotOfGroup = Owned(tensor(member, [grouped.Length, groups.Length]));
        numbered = Owned(tensor(index, [grouped.Length, groups.Length]));
        order = Owned(tensor(place));
        SingletonSlots = singles;
    }

    /// <summary>The slots that are tokens of their own, ascending.</summary>
    public int[] SingletonSlots { get; }

    /// <summary>Which rows of x [B, F] may take this path: [B] true where every group slot is 0 or 1 (so not NaN) with at most one 1
    /// per group; null when none may (the inputs are not on the CPU, where the index tensors live).</summary>
    public Tensor? RowsThatApply(Tensor x)
    {
        if (x.device_type != DeviceType.CPU) return null;
        var values = x.index_select(1, groupSlots);                                           // [B, Fg]
        var zeroOrOne = values.eq(Zero).logical_or_(values.eq(One)).all(1);                   // [B]
        return zeroOrOne.logical_and_(values.nan_to_num(0).matmul(slotOfGroup).le(One).all(1)); // [B]
    }

    /// <summary>
    /// Tokens [B, G, d] of raw-or-standardised x [B, F] whose rows all apply (<see cref="RowsThatApply"/>; NaN only in singleton
    /// slots): each group's gathered row V plus its summed biases, each other slot's token from <paramref name="singletons"/>(its
    /// values [B, Fs], its slot indices).
    /// </summary>
    /// <param name="x">The features.</param>
    /// <param name="rows">V [F, d]: each slot's row (the linear weight, or the projection of its first bin).</param>
    /// <param name="bias">b [F, d].</param>
    /// <param name="singletons">The usual tokens [B, Fs, d] of the singleton slots' values [B, Fs], given their indices [Fs].</param>
    public Tensor Tokens(Tensor x, Tensor rows, Tensor bias, Func<Tensor, Tensor, Tensor> singletons)
    {
        long b = x.shape[0], d = rows.shape[1], gm = slotOfGroup.shape[1];
        var set = x.index_select(1, groupSlots).matmul(numbered).to_type(ScalarType.Int64);     // [B, Gm]: 1-based set slot, 0 none
        var table = cat([zeros(1, d, dtype: rows.dtype), rows.index_select(0, groupSlots)], 0); // [1 + Fg, d]
        var summedBias = slotOfGroup.t().matmul(bias.index_select(0, groupSlots));              // [Gm, d]
        var grouped = Runtime.LiveScalars.Add(table.index_select(0, set.view(-1)).view(b, gm, d), summedBias); // [B, Gm, d]
        var parts = SingletonSlots.Length == 0 ? grouped
            : cat([singletons(x.index_select(1, singletonSlots), singletonSlots), grouped], 1);  // [B, Fs + Gm, d]
        return parts.index_select(1, order);                                                    // [B, G, d] in token order
    }

    private static Tensor Owned(Tensor t) => t.DetachFromDisposeScope();

    /// <summary>0 and 1, alive for the process (an implicit scalar could be finalized while an op reads it; see LiveScalars).</summary>
    private static readonly Scalar Zero = 0f, One = 1f;

    /// <summary>Frees the index tensors.</summary>
    public void Dispose()
    {
        singletonSlots.Dispose();
        groupSlots.Dispose();
        slotOfGroup.Dispose();
        numbered.Dispose();
        order.Dispose();
    }
}
