namespace Microsoft.ML.MemoryFormer.Data;

/// <summary>Which ML.NET task a trainer serves; fixes the label type and the output columns.</summary>
internal enum PredictionKind
{
    /// <summary>Bool label; outputs Score (margin), Probability, PredictedLabel (bool).</summary>
    BinaryClassification,

    /// <summary>Key label; outputs Score (vector of class probabilities), PredictedLabel (key).</summary>
    MulticlassClassification,

    /// <summary>Float label; outputs Score (float).</summary>
    Regression,
}
