using Microsoft.ML.MemoryFormer.Configuration;
using System.Text.Json.Serialization;
using Microsoft.ML.MemoryFormer.Data;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>What a tabular model needs besides the architecture and weights; saved as <c>tabular.json</c>.</summary>
/// <param name="FeatureColumnName">The feature vector column it reads.</param>
/// <param name="Label">The label it was trained on: task, class count and names.</param>
/// <param name="Scaler">The per-slot standardisation learned on the training rows.</param>
/// <param name="LabelMean">Regression: mean of the training labels (the model predicts standardised labels).</param>
/// <param name="LabelStd">Regression: standard deviation of the training labels.</param>
/// <param name="NumericEmbedding">How numeric slots become tokens; absent in models saved before the option (linear).</param>
/// <param name="PeriodicFrequencies">k of periodic embeddings (0 otherwise).</param>
/// <param name="BinEdges">Per slot, the bin edges of piecewise-linear embeddings on standardised values (null otherwise;
/// absent in models saved before the option).</param>
/// <param name="SlotTokens">Per slot, the token its one-hot group shares (<see cref="OneHotGroups"/>); null for one token
/// per slot (absent in models saved before the option).</param>
/// <param name="Expansion">Slots appended to the input before standardisation (value categories, target encodings); null
/// for none (not written then, so models without it save as before).</param>
internal sealed record TabularModelInfo(string FeatureColumnName, LabelColumn Label, FeatureScaler Scaler,
    float LabelMean, float LabelStd, TabularNumericEmbedding NumericEmbedding = TabularNumericEmbedding.Linear,
    int PeriodicFrequencies = 0, float[][]? BinEdges = null, int[]? SlotTokens = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] FeatureExpansion? Expansion = null)
{
    /// <summary>The archive entry holding this record.</summary>
    public const string Entry = "tabular.json";

    /// <summary>Feature slots the model reads after the <see cref="Expansion"/> (F without one).</summary>
    public int FeatureCount => Scaler.Means.Length;

    /// <summary>Slots of the feature column: F, before the <see cref="Expansion"/>.</summary>
    [JsonIgnore]
    public int InputCount => Expansion?.InputCount ?? FeatureCount;

    /// <summary>Values per group of a target encoding: one for regression and binary, one per class otherwise.</summary>
    [JsonIgnore]
    public int EncodedOutputs => FeatureExpansion.EncodedOutputs(Label.Kind == PredictionKind.Regression ? 0 : Label.Classes);

    /// <summary>Feature tokens per row after [CLS]: F, or the number of one-hot groups and other slots.</summary>
    public int TokenCount => SlotTokens is null ? FeatureCount : OneHotGroups.TokenCount(SlotTokens);

    /// <summary>Model outputs per row: one value for regression, one logit per class otherwise.</summary>
    public int OutputCount => Label.Kind == PredictionKind.Regression ? 1 : Label.Classes;
}
