using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// Feature tokenizer of FT-Transformer (Gorishniy et al., NeurIPS 2021, §3.3): slot i of a numeric feature vector
/// becomes the token x_i · W_i + b_i; a missing value (NaN) becomes a learned embedding M_i of that slot; a learned
/// [CLS] token is put first. Glossary: B rows, F feature slots, d width, k frequencies.
/// </summary>
/// <remarks>With <see cref="TabularNumericEmbedding.Periodic"/> the token of a present value is instead
/// ReLU([cos(2π c_i x), sin(2π c_i x)] · P_i + b_i) (Gorishniy et al., NeurIPS 2022, "PLR" embeddings), with k learned
/// frequencies c_i [k] and a per-slot projection P_i [2k, d] (<see cref="TabularNumericEmbedding.PeriodicLinear"/>: the
/// same without the ReLU, "PL"); missing values and [CLS] are as above. With
/// <see cref="TabularNumericEmbedding.PiecewiseLinear"/> it is PLE(x) · P_i + b_i, where PLE(x) [T] is the piecewise-linear
/// encoding of x over the slot's bin edges (Gorishniy et al., NeurIPS 2022, §3.2; see <see cref="Encode"/>) and P_i [T, d].
/// With slot groups (<see cref="Data.OneHotGroups"/>), the tokens of a group's slots are summed into one token: for a one-hot
/// column with raw 0/1 slots that is the learned embedding W_c of its category c plus the group's summed biases
/// (FT-Transformer's categorical tokenizer), so a row has 1 + G tokens for G groups instead of 1 + F.</remarks>
internal sealed class FeatureTokenizer : nn.Module<Tensor, Tensor>
{
    private readonly Parameter? weight;       // W [F, d] (linear)
    private readonly Parameter? frequencies;  // c [F, k] (periodic)
    private readonly Parameter? projection;   // P [F, 2k, d] (periodic) or [F, T, d] (piecewise-linear)
    private readonly Tensor? binLeft;         // b_{t−1} [F, T] (piecewise-linear; padded bins: the last edge)
    private readonly Tensor? binWidth;        // b_t − b_{t−1} [F, T] (padded bins: 1)
    private readonly Tensor? binLow;          // −∞ for the first bin of a slot, else 0 [F, T]
    private readonly Tensor? binHigh;         // +∞ for the last bin of a slot, else 1 [F, T]
    private readonly Tensor? binMask;         // 1 for a slot's bins, 0 for padding [F, T]
    private readonly Tensor? groups;          // 1 where slot f belongs to token g [G, F] (slot groups only)
    private readonly OneHotGroupTokens? groupPath;   // the same group tokens a gather per group (linear and piecewise-linear)
    private readonly Parameter bias;          // b [F, d]
    private readonly Parameter missing;       // M [F, d]
    private readonly Parameter cls;           // [d]

    /// <summary>2π, alive for the process (an implicit scalar could be finalized while an op reads it; see LiveScalars).</summary>
    private static readonly Scalar TwoPi = 2 * Math.PI;

    /// <summary>Creates the tokenizer of <paramref name="featureCount"/> slots into <paramref name="width"/>-wide tokens.</summary>
    /// <param name="featureCount">F.</param>
    /// <param name="width">d.</param>
    /// <param name="embedding">Linear (FT-Transformer) or periodic numeric embeddings.</param>
    /// <param name="periodicFrequencies">k, frequencies per slot (periodic only).</param>
    /// <param name="periodicScale">σ of the frequencies' N(0, σ²) initialisation (periodic only).</param>
    /// <param name="binEdges">Per slot, the strictly increasing bin edges (piecewise-linear only; see <see cref="Data.BinEdges"/>).</param>
    /// <param name="slotTokens">Per slot, the token it is summed into (see <see cref="Data.OneHotGroups"/>), or null for one
    /// token per slot.</param>
    public FeatureTokenizer(int featureCount, int width, TabularNumericEmbedding embedding = TabularNumericEmbedding.Linear,
        int periodicFrequencies = 0, double periodicScale = 0, float[][]? binEdges = null, int[]? slotTokens = null)
        : base(nameof(FeatureTokenizer))
    {
        if (slotTokens is not null && !Data.OneHotGroups.IsValid(slotTokens, featureCount))
            throw new ArgumentException($"Slot groups need one token index per slot of the {featureCount}, numbered 0, 1, … in " +
                $"slot order; got {slotTokens.Length} entries.", nameof(slotTokens));
        bool periodic = embedding is TabularNumericEmbedding.Periodic or TabularNumericEmbedding.PeriodicLinear;
        if (periodic && (periodicFrequencies < 1 || !(periodicScale > 0)))
            throw new ArgumentOutOfRangeException(nameof(periodicFrequencies), $"Periodic embeddings need at least one frequency " +
                $"and a positive scale; got {periodicFrequencies} frequencies and scale {periodicScale}.");
        FeatureCount = featureCount;
        Embedding = embedding;
        double bound = 1 / Math.Sqrt(width);                  // FT-Transformer's uniform(−1/√d, 1/√d) init
        if (embedding == TabularNumericEmbedding.PiecewiseLinear)
        {
            CheckEdges(binEdges, featureCount);
            int bins = binEdges!.Max(e => e.Length - 1);
            (binLeft, binWidth, binLow, binHigh, binMask) = BinTensors(binEdges!, bins);
            double fanIn = 1 / Math.Sqrt(bins);                     // nn.Linear's init of the T → d layer
            projection = new Parameter(empty(featureCount, bins, width).uniform_(-fanIn, fanIn));
            Bins = bins;
        }
        else if (periodic)
        {
            frequencies = new Parameter(empty(featureCount, periodicFrequencies).normal_(0, periodicScale));
            double fanIn = 1 / Math.Sqrt(2 * periodicFrequencies); // nn.Linear's init of the 2k → d layer
            projection = new Parameter(empty(featureCount, 2 * periodicFrequencies, width).uniform_(-fanIn, fanIn));
        }
        else
        {
            weight = new Parameter(empty(featureCount, width).uniform_(-bound, bound));
        }
        bias = new Parameter(empty(featureCount, width).uniform_(-bound, bound));
        missing = new Parameter(empty(featureCount, width).uniform_(-bound, bound));
        cls = new Parameter(empty(width).uniform_(-bound, bound));
        TokenCount = featureCount;
        if (slotTokens is not null)
        {
            TokenCount = Data.OneHotGroups.TokenCount(slotTokens);
            var g = new float[TokenCount * featureCount];
            for (int slot = 0; slot < featureCount; slot++) g[slotTokens[slot] * featureCount + slot] = 1;
            groups = tensor(g, [TokenCount, featureCount]).DetachFromDisposeScope();     // the module's, not a scope's
            if (embedding is TabularNumericEmbedding.Linear or TabularNumericEmbedding.PiecewiseLinear)
                groupPath = OneHotGroupTokens.Create(slotTokens, embedding == TabularNumericEmbedding.PiecewiseLinear ? binEdges : null);
        }
        RegisterComponents();
    }

    /// <summary>F, the number of feature slots.</summary>
    public int FeatureCount { get; }

    /// <summary>G, the feature tokens per row (after [CLS]): F, or the number of slot groups.</summary>
    public int TokenCount { get; }

    /// <summary>The 0/1 matrix [G, F] that sums slot tokens into group tokens (read by the ONNX export); null without groups.</summary>
    internal Tensor? Groups => groups;

    /// <summary>Whether rows in one-hot form take the per-group path (tests switch it off to compare with the per-slot sum).</summary>
    internal bool GroupPathEnabled { get; set; } = true;

    /// <summary>The per-group path of one-hot groups (<see cref="OneHotGroupTokens"/>); null where it does not apply.</summary>
    internal OneHotGroupTokens? GroupPath => groupPath;

    /// <summary>How present numeric values become tokens.</summary>
    public TabularNumericEmbedding Embedding { get; }

    /// <summary>T, the most bins of any slot (piecewise-linear only; 0 otherwise).</summary>
    public int Bins { get; }

    /// <summary>W [F, d] of the linear embedding (read by the ONNX export, as are <see cref="Bias"/>, <see cref="Missing"/>
    /// and <see cref="Cls"/>); null for periodic embeddings.</summary>
    internal Parameter? Weight => weight;

    /// <summary>c [F, k], the frequencies of the periodic embedding; null for linear embeddings.</summary>
    internal Parameter? Frequencies => frequencies;

    /// <summary>P [F, 2k, d] of the periodic or [F, T, d] of the piecewise-linear embedding; null for linear embeddings.</summary>
    internal Parameter? Projection => projection;

    /// <summary>The piecewise-linear encoding's constants [F, T] (read by the ONNX export): each bin's left edge and width, the
    /// clip's lower bound (−∞ on a slot's first bin, else 0) and upper bound (+∞ on its last, else 1), and 1 on the slot's own
    /// bins, 0 on padding (see <see cref="Encode"/>); null for other embeddings.</summary>
    internal (Tensor Left, Tensor Width, Tensor Low, Tensor High, Tensor Mask)? BinConstants =>
        binLeft is null ? null : (binLeft, binWidth!, binLow!, binHigh!, binMask!);

    /// <summary>b [F, d].</summary>
    internal Parameter Bias => bias;

    /// <summary>M [F, d], the missing-value embeddings.</summary>
    internal Parameter Missing => missing;

    /// <summary>The [CLS] token [d].</summary>
    internal Parameter Cls => cls;

    /// <summary>Features x [B, F] (NaN = missing) → tokens [B, 1 + G, d], [CLS] first (G = F without slot groups).</summary>
    public override Tensor forward(Tensor x)
    {
        if (x.dim() != 2 || x.shape[1] != FeatureCount)
            throw new ArgumentException($"The tabular model expects features [B, F] with F = {FeatureCount}; got shape " +
                $"[{string.Join(", ", x.shape)}].", nameof(x));
        var isMissing = x.isnan().unsqueeze(-1);                                // [B, F, 1]
        bool anyMissing = AnyMissing(isMissing);
        var tokens = GroupPathEnabled && groupPath?.RowsThatApply(x) is { } applies ? GroupedTokens(x, applies, anyMissing)
            : PerSlotTokens(x, anyMissing);
        if (!anyMissing && is_grad_enabled()) tokens = Runtime.LiveScalars.Add(tokens, missing.mul(Zero).sum());
        var first = cls.view(1, 1, -1).expand(x.shape[0], 1, -1);               // [B, 1, d]
        return cat([first, tokens], 1);                                          // [B, 1 + G, d]
    }

    /// <summary>Tokens [B, G, d] (F without groups): one per slot, missing values M, summed into their groups by the [G, F] matrix.</summary>
    private Tensor PerSlotTokens(Tensor x, bool anyMissing)
    {
        var values = x.nan_to_num(0).unsqueeze(-1);                             // [B, F, 1]
        var tokens = weight is not null ? Runtime.LiveScalars.Add(values * weight, bias)                   // [B, F, d]
            : frequencies is not null ? Periodic(values)
            : Runtime.LiveScalars.Add(Project(Encode(values.squeeze(-1))), bias);
        if (anyMissing) tokens = where(x.isnan().unsqueeze(-1), missing.expand_as(tokens), tokens);       // [B, F, d]
        return groups is null ? tokens : On(groups, x).matmul(tokens);          // [B, G, d]
    }

    /// <summary>
    /// Tokens [B, G, d] with one-hot groups: the rows <paramref name="applies"/> [B] marks through the per-group path, the others
    /// (a NaN or a value other than 0/1 in a group slot, two categories at once) one slot at a time; each row's by its own
    /// values alone, so a row gets the same tokens in any batch.
    /// </summary>
    private Tensor GroupedTokens(Tensor x, Tensor applies, bool anyMissing)
    {
        Tensor Grouped(Tensor rows) => groupPath!.Tokens(rows, weight ?? projection!.select(1, 0), bias, SingletonTokens);
        long taking = applies.sum().item<long>();
        if (taking == x.shape[0]) return Grouped(x);                            // [B, G, d]
        if (taking == 0) return PerSlotTokens(x, anyMissing);
        var grouped = applies.nonzero().view(-1);                                // [Bg]
        var others = applies.logical_not().nonzero().view(-1);                   // [Bo]
        var tokens = cat([Grouped(x.index_select(0, grouped)), PerSlotTokens(x.index_select(0, others), anyMissing)], 0);
        return tokens.index_select(0, cat([grouped, others]).argsort());         // [B, G, d] in row order
    }

    /// <summary>The tokens [B, S, d] of singleton slots <paramref name="slots"/> [S] from their values [B, S]: M where a value is missing.</summary>
    private Tensor SingletonTokens(Tensor values, Tensor slots)
    {
        var isMissing = values.isnan();
        using var any = isMissing.any();
        if (!any.item<bool>()) return SlotTokens(values, slots);
        return where(isMissing.unsqueeze(-1), missing.index_select(0, slots).unsqueeze(0), SlotTokens(values.nan_to_num(0), slots));
    }

    /// <summary>The tokens [B, S, d] of the slots <paramref name="slots"/> [S] from their values [B, S] (no NaN), as
    /// <see cref="forward"/> makes them one per slot (linear or piecewise-linear).</summary>
    private Tensor SlotTokens(Tensor values, Tensor slots)
    {
        var slotBias = bias.index_select(0, slots);                             // [S, d]
        if (weight is not null) return Runtime.LiveScalars.Add(values.unsqueeze(-1) * weight.index_select(0, slots), slotBias);
        var projected = Project(Encode(values, slots), projection!.index_select(0, slots));       // [B, S, d]
        return Runtime.LiveScalars.Add(projected, slotBias);                     // [B, S, d]
    }

    /// <summary>
    /// Whether any value of the batch is missing. Without one, the <c>where</c> that puts M in place of missing values changes
    /// nothing, and on [B, F, d] it was ≈ 10 % of a tabular training step (adult: three scalar passes over 1.75 M elements,
    /// forward and backward). Training then adds a zero that depends on M instead, so M still gets its zero gradient and the
    /// optimizer updates it (decay, moments) exactly as after the <c>where</c>: the same bits either way.
    /// </summary>
    private static bool AnyMissing(Tensor isMissing)
    {
        using var any = isMissing.any();
        return any.item<bool>();
    }

    /// <summary>0, alive for the process (see <see cref="TwoPi"/>).</summary>
    private static readonly Scalar Zero = 0f;

    /// <summary>values [B, F, 1] → ReLU([cos 2πcx, sin 2πcx] · P + b) [B, F, d] (no ReLU for PeriodicLinear).</summary>
    private Tensor Periodic(Tensor values)
    {
        var angles = values.mul(frequencies!).mul_(TwoPi);                      // [B, F, k]
        var features = cat([angles.cos(), angles.sin()], -1);                  // [B, F, 2k]
        var projected = Project(features);                                      // [B, F, d]
        var tokens = Runtime.LiveScalars.Add(projected, bias);                   // [B, F, d]
        return Embedding == TabularNumericEmbedding.PeriodicLinear ? tokens : nn.functional.relu(tokens);
    }

    /// <summary>
    /// <see cref="forward"/> of a linear tokenizer without slot groups at inference on the CPU, without torch: the same
    /// elementwise arithmetic (x · W[f] rounded, then + b[f]; M[f] for a missing value; [CLS] first), so the same bits, without
    /// the dozen torch ops that took ≈ 15 µs of a one-row prediction. Null where it does not apply (other embeddings, slot
    /// groups, gradients on, not CPU fp32): call <see cref="forward"/> then.
    /// </summary>
    internal unsafe Tensor? LinearTokens(Tensor x)
    {
        if (weight is null || groups is not null || is_grad_enabled() || x.dim() != 2 || x.shape[1] != FeatureCount
            || !TensorMemory.IsCpuFloat32(x) || !TensorMemory.IsCpuFloat32(weight))
            return null;
        var values = x.contiguous();
        int rows = (int)values.shape[0], slots = FeatureCount, d = (int)cls.shape[0];
        var tokens = empty(rows, slots + 1, d);                                 // [B, 1 + F, d]
        float* v = TensorMemory.Floats(values), w = TensorMemory.Floats(weight), b = TensorMemory.Floats(bias),
            m = TensorMemory.Floats(missing), c = TensorMemory.Floats(cls), t = TensorMemory.Floats(tokens);
        for (int r = 0; r < rows; r++)
        {
            float* row = t + ((long)r * (slots + 1) * d);
            new Span<float>(c, d).CopyTo(new Span<float>(row, d));
            for (int f = 0; f < slots; f++)
            {
                float value = v[((long)r * slots) + f];
                float* token = row + ((long)(f + 1) * d), wf = w + ((long)f * d), bf = b + ((long)f * d);
                if (float.IsNaN(value))
                {
                    new Span<float>(m + ((long)f * d), d).CopyTo(new Span<float>(token, d));
                    continue;
                }
                for (int i = 0; i < d; i++)
                {
                    float product = value * wf[i];                              // rounded, as torch's mul
                    token[i] = product + bf[i];                                 // then the add
                }
            }
        }
        GC.KeepAlive(values);
        return tokens;
    }

    /// <summary>features [B, F, T] · the per-slot projection [F, T, d] → [B, F, d]; at inference on the CPU each row on its own
    /// (<see cref="SlotProjection"/>), so a row's tokens do not depend on the batch it is scored in.</summary>
    private Tensor Project(Tensor features) => Project(features, projection!);

    /// <summary>features [B, S, T] · <paramref name="slotProjection"/> [S, T, d] → [B, S, d] (see <see cref="Project(Tensor)"/>).</summary>
    private static Tensor Project(Tensor features, Tensor slotProjection) =>
        SlotProjection.Serves(features, slotProjection) ? SlotProjection.Apply(features, slotProjection)
            : einsum("bft,ftd->bfd", features, slotProjection);

    /// <summary>
    /// Piecewise-linear encoding of standardised values x [B, F] (no NaN) → [B, F, T]: component t of slot i is
    /// (x − b_{t−1}) / (b_t − b_{t−1}) clipped to [0, 1], except that the first bin is not clipped below and the last
    /// not above (so values outside the training range extrapolate linearly); bins a slot does not have are 0.
    /// </summary>
    /// <param name="x">Values [B, F], or [B, S] of the slots <paramref name="slots"/> [S].</param>
    /// <param name="slots">The slots x holds, or null for all of them.</param>
    internal Tensor Encode(Tensor x, Tensor? slots = null)
    {
        if (binLeft is null) throw new InvalidOperationException("Only piecewise-linear tokenizers have an encoding.");
        Tensor Bins(Tensor bins) => slots is null ? On(bins, x) : On(bins, x).index_select(0, slots);
        var ratio = (x.unsqueeze(-1) - Bins(binLeft)).div_(Bins(binWidth!));                      // [B, F, T]
        return maximum(ratio, Bins(binLow!)).minimum(Bins(binHigh!)).mul_(Bins(binMask!));
    }

    /// <summary>A bin tensor on <paramref name="x"/>'s device (the bins are constants, not parameters, so Module.to leaves them).</summary>
    private static Tensor On(Tensor bins, Tensor x) =>
        bins.device_type == x.device_type && bins.device_index == x.device_index ? bins : bins.to(x.device);

    private static void CheckEdges(float[][]? edges, int featureCount)
    {
        if (edges is null || edges.Length != featureCount)
            throw new ArgumentException($"Piecewise-linear embeddings need bin edges for each of the {featureCount} slots; got " +
                $"{(edges is null ? "none" : $"{edges.Length}")}.", nameof(edges));
        for (int slot = 0; slot < featureCount; slot++)
        {
            var e = edges[slot];
            if (e is null || e.Length < 2 || e.Any(v => !float.IsFinite(v)) || e.Zip(e.Skip(1)).Any(p => !(p.First < p.Second)))
                throw new ArgumentException($"The bin edges of slot {slot} must be at least two finite, strictly increasing " +
                    $"values; got [{(e is null ? "" : string.Join(", ", e))}].", nameof(edges));
        }
    }

    private static (Tensor Left, Tensor Width, Tensor Low, Tensor High, Tensor Mask) BinTensors(float[][] edges, int bins)
    {
        int f = edges.Length;
        float[] left = new float[f * bins], width = new float[f * bins], low = new float[f * bins], high = new float[f * bins],
            mask = new float[f * bins];
        for (int slot = 0; slot < f; slot++)
        {
            var e = edges[slot];
            int own = e.Length - 1;
            for (int t = 0; t < bins; t++)
            {
                int i = slot * bins + t;
                bool present = t < own;
                left[i] = present ? e[t] : e[^1];
                width[i] = present ? e[t + 1] - e[t] : 1;
                low[i] = t == 0 ? float.NegativeInfinity : 0;
                high[i] = t == own - 1 ? float.PositiveInfinity : 1;
                mask[i] = present ? 1 : 0;
            }
        }
        static Tensor Owned(float[] values, long f, long bins) => tensor(values, [f, bins]).DetachFromDisposeScope();   // the module's, not a scope's
        return (Owned(left, f, bins), Owned(width, f, bins), Owned(low, f, bins), Owned(high, f, bins), Owned(mask, f, bins));
    }

    /// <summary>Frees the bin tensors with the module.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            binLeft?.Dispose();
            binWidth?.Dispose();
            binLow?.Dispose();
            binHigh?.Dispose();
            binMask?.Dispose();
            groups?.Dispose();
            groupPath?.Dispose();
        }
        base.Dispose(disposing);
    }
}
