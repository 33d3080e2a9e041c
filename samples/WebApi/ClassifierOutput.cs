using Microsoft.ML.Data;

namespace WebApi;

/// <summary>The classifier's output row.</summary>
public sealed class ClassifierOutput
{
    /// <summary>The predicted class name (the pipeline maps the key back to text).</summary>
    [ColumnName("PredictedLabel")]
    public string PredictedLabel { get; set; } = "";

    /// <summary>The probability of each class, in the order of <see cref="ServedModels.ClassNames"/>.</summary>
    [ColumnName("Score")]
    public float[] Score { get; set; } = [];
}
