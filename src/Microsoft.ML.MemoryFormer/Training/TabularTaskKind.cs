namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>What a tabular model predicts, which fixes its loss, its outputs and its ML.NET output columns.</summary>
internal enum TabularTaskKind
{
    /// <summary>One real value; squared error on the standardised label; Score.</summary>
    Regression,

    /// <summary>A bool label; logistic loss on one logit; Score, Probability, PredictedLabel.</summary>
    BinaryClassification,

    /// <summary>A key label of C classes; cross-entropy on C logits; Score (probabilities) and PredictedLabel (key).</summary>
    MulticlassClassification,
}
