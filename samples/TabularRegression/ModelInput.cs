using Microsoft.ML.Data;

namespace TabularRegression;

/// <summary>One row of penguins.csv. Missing measurements ("NA") load as NaN; the model learns an embedding for them.
/// BodyMassG is the value to predict.</summary>
public sealed class ModelInput
{
    [LoadColumn(0)] public string Species { get; set; } = "";
    [LoadColumn(1)] public string Island { get; set; } = "";
    [LoadColumn(2)] public float BillLengthMm { get; set; }
    [LoadColumn(3)] public float BillDepthMm { get; set; }
    [LoadColumn(4)] public float FlipperLengthMm { get; set; }
    [LoadColumn(5)] public float BodyMassG { get; set; }
    [LoadColumn(6)] public string Sex { get; set; } = "";
    [LoadColumn(7)] public float Year { get; set; }
}
