using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Tests.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.Data;

public class FeatureColumnReaderTests
{
    private sealed class ScalarRow
    {
        public float Features { get; set; }
        public float Label { get; set; }
    }

    private sealed class DoubleRow
    {
        [VectorType(2)] public double[] Features { get; set; } = [];
        public float Label { get; set; }
    }

    private sealed class VariableRow
    {
        public float[] Features { get; set; } = [];
        public float Label { get; set; }
    }

    private sealed class StringLabelRow
    {
        [VectorType(2)] public float[] Features { get; set; } = [];
        public string Label { get; set; } = "";
    }

    private static readonly MLContext Ml = new(1);

    private static Exception FitRegression<T>(IEnumerable<T> rows) where T : class =>
        Assert.ThrowsAny<Exception>(() => Ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1)).Fit(Ml.Data.LoadFromEnumerable(rows)));

    [Fact]
    public void Scalar_features_are_refused_naming_the_column_and_the_expected_type()
    {
        var e = FitRegression([new ScalarRow { Features = 1, Label = 1 }]);
        Assert.Contains("Feature column 'Features' has type Single", e.Message);
        Assert.Contains("expected a known-size vector of Single", e.Message);
    }

    [Fact]
    public void Double_features_are_refused_with_the_conversion_to_apply()
    {
        var e = FitRegression([new DoubleRow { Features = [1, 2], Label = 1 }]);
        Assert.Contains("Feature column 'Features' has type Vector<Double, 2>", e.Message);
        Assert.Contains("ConvertType", e.Message);
    }

    [Fact]
    public void Variable_length_features_are_refused()
    {
        var e = FitRegression([new VariableRow { Features = [1, 2], Label = 1 }, new VariableRow { Features = [1], Label = 2 }]);
        Assert.Contains("Feature column 'Features' is a variable-length vector of Single", e.Message);
    }

    [Fact]
    public void Infinite_features_are_refused_with_row_and_slot()
    {
        var rows = TabularRows.RegressionRows(5, 1).ToArray();
        rows[3].Features[1] = float.PositiveInfinity;
        var e = FitRegression(rows);
        Assert.Contains("Feature column 'Features' holds ∞ at row 3, slot 1", e.Message.Replace("Infinity", "∞"));
    }

    [Fact]
    public void Wrong_label_types_name_the_column_and_the_fix()
    {
        var rows = TabularRows.MulticlassRows(8, 1).ToArray();
        var data = Ml.Data.LoadFromEnumerable(rows);
        var e = Assert.ThrowsAny<Exception>(() => Ml.MulticlassClassification.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1)).Fit(data));
        Assert.Contains("The label column 'Label' is String, but multiclass classification needs a key type", e.Message);
        Assert.Contains("MapValueToKey", e.Message);
        e = Assert.ThrowsAny<Exception>(() => Ml.BinaryClassification.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1)).Fit(data));
        Assert.Contains("binary classification needs a Boolean label", e.Message);
        e = FitRegression(new[] { new StringLabelRow { Features = [1, 2], Label = "x" } });
        Assert.Contains("The label column 'Label' is String, but regression needs a Single (float) label", e.Message);
    }

    [Fact]
    public void A_single_class_is_refused()
    {
        var rows = TabularRows.BinaryRows(8, 1).Select(r => { r.Label = true; return r; });
        var e = Assert.ThrowsAny<Exception>(() =>
            Ml.BinaryClassification.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1)).Fit(Ml.Data.LoadFromEnumerable(rows)));
        Assert.Contains("holds a single class", e.Message);
    }

    [Fact]
    public void Scoring_refuses_infinite_values_and_a_different_slot_count()
    {
        var train = Ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(16, 1));
        using var model = Ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1)).Fit(train);
        var rows = TabularRows.RegressionRows(2, 2).ToArray();
        rows[1].Features[0] = float.NegativeInfinity;
        var e = Assert.ThrowsAny<Exception>(() => model.Transform(Ml.Data.LoadFromEnumerable(rows)).GetColumn<float>("Score").ToArray());
        Assert.Contains("Feature column 'Features' holds", e.Message);
        e = Assert.ThrowsAny<Exception>(() => model.Transform(Ml.Data.LoadFromEnumerable([new DoubleRow { Features = [1, 2] }])));
        Assert.Contains("Feature column 'Features'", e.Message);
    }
}
