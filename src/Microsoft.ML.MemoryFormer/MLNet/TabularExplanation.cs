namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// Why a tabular model gave a row its prediction (<see cref="MemoryFormerTabularTransformer.Explain(IDataView, IDataView, int?, int)"/>):
/// the prediction explained, the mean prediction over the background rows, and each feature's contribution: how much the
/// prediction falls, on average, when that feature's values are replaced by a background row's (occlusion).
/// </summary>
/// <param name="ClassIndex">The class explained (0-based; for binary classification 1 is true): the predicted one unless
/// another was asked for; null for regression.</param>
/// <param name="ClassName">The class's name (the label's key value, or "True"/"False" for binary classification); null for
/// regression.</param>
/// <param name="Prediction">The row's probability of the class (or its value, for regression), as <c>Transform</c> scores it.</param>
/// <param name="BackgroundPrediction">The mean of the same over the background rows: what the model predicts for a typical row.</param>
/// <param name="Features">Each feature of the row, in slot order; a one-hot column is one feature.</param>
public sealed record TabularExplanation(int? ClassIndex, string? ClassName, double Prediction, double BackgroundPrediction,
    IReadOnlyList<FeatureContribution> Features)
{
    /// <summary>The features that move the prediction most, either way: largest |contribution| first.</summary>
    /// <param name="count">How many at most.</param>
    public IEnumerable<FeatureContribution> Top(int count) => Features.OrderByDescending(f => Math.Abs(f.Contribution)).Take(count);
}

/// <summary>One feature of an explained row (<see cref="TabularExplanation"/>).</summary>
/// <param name="Name">The feature's name: its slot name (from the feature column's <c>SlotNames</c>, as <c>Concatenate</c>
/// writes them), the column name shared by a one-hot group's slot names (<c>workclass</c> for <c>workclass.Private</c>, …),
/// or <c>Slot 3</c> / <c>Slots 3–7</c> without slot names.</param>
/// <param name="FirstSlot">Its first slot in the feature vector.</param>
/// <param name="SlotCount">Its slots (1, or the size of a one-hot group).</param>
/// <param name="Values">The row's values of those slots (NaN: missing).</param>
/// <param name="DisplayValue">The values as a person reads them: the number of a single slot ("missing" for NaN); the
/// category of a named one-hot column (<c>Private</c> for a row with <c>workclass.Private</c> at 1; "none" when no slot
/// is 1); else the values, comma-separated.</param>
/// <param name="Contribution">The prediction minus the mean prediction with this feature's values taken from each background
/// row in turn: positive when the row's value raises the prediction above what typical values give, negative when it lowers
/// it. Contributions are not additive (unlike Shapley values, they need not sum to Prediction − BackgroundPrediction).</param>
public sealed record FeatureContribution(string Name, int FirstSlot, int SlotCount, IReadOnlyList<float> Values, string DisplayValue,
    double Contribution);
