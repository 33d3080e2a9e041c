using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// Feature tokenizer of FT-Transformer (Gorishniy et al., NeurIPS 2021, §3.3): slot i of a numeric feature vector
/// becomes the token x_i · W_i + b_i; a missing value (NaN) becomes a learned embedding M_i of that slot; a learned
/// [CLS] token is put first. Glossary: B rows, F feature slots, d width.
/// </summary>
internal sealed class FeatureTokenizer : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;    // W [F, d]
    private readonly Parameter bias;      // b [F, d]
    private readonly Parameter missing;   // M [F, d]
    private readonly Parameter cls;       // [d]

    /// <summary>Creates the tokenizer of <paramref name="featureCount"/> slots into <paramref name="width"/>-wide tokens.</summary>
    public FeatureTokenizer(int featureCount, int width) : base(nameof(FeatureTokenizer))
    {
        FeatureCount = featureCount;
        double bound = 1 / Math.Sqrt(width);                  // FT-Transformer's uniform(−1/√d, 1/√d) init
        weight = new Parameter(empty(featureCount, width).uniform_(-bound, bound));
        bias = new Parameter(empty(featureCount, width).uniform_(-bound, bound));
        missing = new Parameter(empty(featureCount, width).uniform_(-bound, bound));
        cls = new Parameter(empty(width).uniform_(-bound, bound));
        RegisterComponents();
    }

    /// <summary>F, the number of feature slots.</summary>
    public int FeatureCount { get; }

    /// <summary>W [F, d] (read by the ONNX export, as are <see cref="Bias"/>, <see cref="Missing"/> and <see cref="Cls"/>).</summary>
    internal Parameter Weight => weight;

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
        var tokens = Runtime.LiveScalars.Add(values * weight, bias);                                     // [B, F, d]
        tokens = where(isMissing, missing.expand_as(tokens), tokens);            // [B, F, d]
        var first = cls.view(1, 1, -1).expand(x.shape[0], 1, -1);               // [B, 1, d]
        return cat([first, tokens], 1);                                          // [B, 1 + F, d]
    }
}
