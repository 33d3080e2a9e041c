namespace TabularClassification;

/// <summary>What the model predicts for a row: the species and the probability of each species.</summary>
public sealed class ModelOutput
{
    /// <summary>The most probable species (the PredictedLabel key mapped back to its name).</summary>
    public string PredictedSpecies { get; set; } = "";

    /// <summary>Probabilities of the species, in the order of the label's keys.</summary>
    public float[] Score { get; set; } = [];
}
