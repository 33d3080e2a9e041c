using Microsoft.ML.Data;

namespace TextClassification;

/// <summary>What the model predicts for one row.</summary>
public sealed class ModelOutput
{
    /// <summary>The predicted class name (MapKeyToValue turned the key back into text).</summary>
    [ColumnName("PredictedLabel")]
    public string PredictedLabel { get; set; } = "";

    /// <summary>The probability of each class, in the order of the Score column's SlotNames.</summary>
    [ColumnName("Score")]
    public float[] Score { get; set; } = [];
}
