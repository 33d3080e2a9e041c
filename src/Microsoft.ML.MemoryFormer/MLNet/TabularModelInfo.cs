using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>What a tabular transformer needs besides the architecture and weights; saved as <c>tabular.json</c>.</summary>
/// <param name="Kind">The task.</param>
/// <param name="FeatureColumnName">The feature vector column it reads.</param>
/// <param name="Scaler">The per-slot standardisation learned on the training rows.</param>
/// <param name="LabelMean">Regression: mean of the training labels (the model predicts standardised labels).</param>
/// <param name="LabelStd">Regression: standard deviation of the training labels.</param>
/// <param name="ClassNames">Multiclass: class names in key order; empty otherwise.</param>
internal sealed record TabularModelInfo(TabularTaskKind Kind, string FeatureColumnName, FeatureScaler Scaler,
    float LabelMean, float LabelStd, string[] ClassNames)
{
    /// <summary>Feature slots F.</summary>
    public int FeatureCount => Scaler.Means.Length;

    /// <summary>Model outputs per row: C for multiclass, else 1.</summary>
    public int OutputCount => Kind == TabularTaskKind.MulticlassClassification ? ClassNames.Length : 1;

    /// <summary>The archive entry holding this record.</summary>
    public const string Entry = "tabular.json";
}
