using Microsoft.ML.MemoryFormer.Configuration;
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
/// same without the ReLU, "PL"); missing values and [CLS] are as above.</remarks>
internal sealed class FeatureTokenizer : nn.Module<Tensor, Tensor>
{
    private readonly Parameter? weight;       // W [F, d] (linear)
    private readonly Parameter? frequencies;  // c [F, k] (periodic)
    private readonly Parameter? projection;   // P [F, 2k, d] (periodic)
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
    public FeatureTokenizer(int featureCount, int width, TabularNumericEmbedding embedding = TabularNumericEmbedding.Linear,
        int periodicFrequencies = 0, double periodicScale = 0) : base(nameof(FeatureTokenizer))
    {
        if (embedding != TabularNumericEmbedding.Linear && (periodicFrequencies < 1 || !(periodicScale > 0)))
            throw new ArgumentOutOfRangeException(nameof(periodicFrequencies), $"Periodic embeddings need at least one frequency " +
                $"and a positive scale; got {periodicFrequencies} frequencies and scale {periodicScale}.");
        FeatureCount = featureCount;
        Embedding = embedding;
        double bound = 1 / Math.Sqrt(width);                  // FT-Transformer's uniform(−1/√d, 1/√d) init
        if (embedding != TabularNumericEmbedding.Linear)
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
        RegisterComponents();
    }

    /// <summary>F, the number of feature slots.</summary>
    public int FeatureCount { get; }

    /// <summary>How present numeric values become tokens.</summary>
    public TabularNumericEmbedding Embedding { get; }

    /// <summary>W [F, d] of the linear embedding (read by the ONNX export, as are <see cref="Bias"/>, <see cref="Missing"/>
    /// and <see cref="Cls"/>); null for periodic embeddings.</summary>
    internal Parameter? Weight => weight;

    /// <summary>c [F, k], the frequencies of the periodic embedding; null for linear embeddings.</summary>
    internal Parameter? Frequencies => frequencies;

    /// <summary>P [F, 2k, d], the projection of the periodic embedding; null for linear embeddings.</summary>
    internal Parameter? Projection => projection;

    /// <summary>b [F, d].</summary>
    internal Parameter Bias => bias;

    /// <summary>M [F, d], the missing-value embeddings.</summary>
    internal Parameter Missing => missing;

    /// <summary>The [CLS] token [d].</summary>
    internal Parameter Cls => cls;

    /// <summary>Features x [B, F] (NaN = missing) → tokens [B, 1 + F, d], [CLS] first.</summary>
    public override Tensor forward(Tensor x)
    {
        if (x.dim() != 2 || x.shape[1] != FeatureCount)
            throw new ArgumentException($"The tabular model expects features [B, F] with F = {FeatureCount}; got shape " +
                $"[{string.Join(", ", x.shape)}].", nameof(x));
        var isMissing = x.isnan().unsqueeze(-1);                                // [B, F, 1]
        var values = x.nan_to_num(0).unsqueeze(-1);                             // [B, F, 1]
        var tokens = frequencies is null
            ? Runtime.LiveScalars.Add(values * weight!, bias)                                             // [B, F, d]
            : Periodic(values);
        tokens = where(isMissing, missing.expand_as(tokens), tokens);            // [B, F, d]
        var first = cls.view(1, 1, -1).expand(x.shape[0], 1, -1);               // [B, 1, d]
        return cat([first, tokens], 1);                                          // [B, 1 + F, d]
    }

    /// <summary>values [B, F, 1] → ReLU([cos 2πcx, sin 2πcx] · P + b) [B, F, d] (no ReLU for PeriodicLinear).</summary>
    private Tensor Periodic(Tensor values)
    {
        var angles = values.mul(frequencies!).mul_(TwoPi);                      // [B, F, k]
        var features = cat([angles.cos(), angles.sin()], -1);                  // [B, F, 2k]
        var projected = einsum("bfk,fkd->bfd", features, projection!);         // [B, F, d]
        var tokens = Runtime.LiveScalars.Add(projected, bias);                   // [B, F, d]
        return Embedding == TabularNumericEmbedding.PeriodicLinear ? tokens : nn.functional.relu(tokens);
    }
}
