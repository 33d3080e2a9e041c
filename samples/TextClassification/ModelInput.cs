using Microsoft.ML.Data;

namespace TextClassification;

/// <summary>One e-mail: its text (subject and the start of the body) and its label (spam, easy_ham or hard_ham).</summary>
public sealed class ModelInput
{
    /// <summary>The class to predict.</summary>
    [LoadColumn(0), ColumnName("Label")]
    public string Label { get; set; } = "";

    /// <summary>The text the model reads.</summary>
    [LoadColumn(1), ColumnName("Text")]
    public string Text { get; set; } = "";
}
