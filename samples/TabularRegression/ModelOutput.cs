namespace TabularRegression;

/// <summary>What the model predicts for a row.</summary>
public sealed class ModelOutput
{
    /// <summary>The predicted body mass in grams (ML.NET's regression Score column).</summary>
    public float Score { get; set; }
}
