using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Tests.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.Reliability;

/// <summary>
/// Bad data for the tabular trainers (regression, binary, multiclass on a Features vector), one row of the table per
/// case of issue 8 that applies to features: a clear error naming the column (and row and slot), or the behaviour
/// docs/reliability.md "Bad data" documents.
/// </summary>
public class TabularBadDataTests(TabularBadDataTests.Trained trained) : IClassFixture<TabularBadDataTests.Trained>
{
    /// <summary>One model per task, fitted once for the prediction-time cases.</summary>
    public sealed class Trained : IDisposable
    {
        public MLContext Ml { get; } = new(seed: 1);
        public MemoryFormerTabularTransformer Regression { get; }
        public MemoryFormerTabularTransformer Binary { get; }
        public MemoryFormerTabularTransformer Multiclass { get; }

        public Trained()
        {
            Regression = Ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(2)).Fit(Ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(64, 1)));
            Binary = Ml.BinaryClassification.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(2)).Fit(Ml.Data.LoadFromEnumerable(TabularRows.BinaryRows(64, 2)));
            Multiclass = Ml.MulticlassClassification.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(2))
                .Fit(Keyed(Ml, TabularRows.MulticlassRows(64, 3).ToArray()));
        }

        public void Dispose()
        {
            Regression.Dispose();
            Binary.Dispose();
            Multiclass.Dispose();
        }
    }

    private sealed class FeaturesOnly
    {
        [VectorType(4)] public float[] Features { get; set; } = [];
    }

    private sealed class Scored
    {
        public float Score { get; set; }
    }

    private sealed class TwoSlots
    {
        [VectorType(2)] public float[] Features { get; set; } = [];
    }

    private sealed class DoubleRow
    {
        [VectorType(4)] public double[] Features { get; set; } = [];
        public float Label { get; set; }
    }

    private sealed class OtherName
    {
        [VectorType(4)] public float[] Inputs { get; set; } = [];
        public float Label { get; set; }
    }

    private static readonly Dictionary<string, Action<Trained>> Table = new()
    {
        ["no rows"] = t =>
        {
            Assert.Contains("The training data has no rows.", FitRegression(t, []).Message);
            Assert.Contains("The training data has no rows.", Assert.ThrowsAny<Exception>(() =>
                t.Ml.BinaryClassification.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1)).Fit(t.Ml.Data.LoadFromEnumerable(Array.Empty<TabularRows.Binary>()))).Message);
            Assert.Contains("The training data has no rows.", Assert.ThrowsAny<Exception>(() =>
                t.Ml.MulticlassClassification.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1)).Fit(Keyed(t.Ml, []))).Message);
        },
        ["every label missing"] = t =>
        {
            var rows = TabularRows.RegressionRows(3, 1).Select(r => { r.Label = float.NaN; return r; }).ToArray();
            Assert.Contains("has no rows with a label (3 rows have a missing label)", FitRegression(t, rows).Message);
        },
        ["missing feature column"] = t =>
        {
            var e = Assert.ThrowsAny<Exception>(() => t.Ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1))
                .Fit(t.Ml.Data.LoadFromEnumerable(new[] { new OtherName { Inputs = [1, 2, 3, 4] } })));
            Assert.Contains("Feature column 'Features' was not found", e.Message);
            Assert.Contains("Concatenate", e.Message);
            Assert.Contains("Feature column 'Features'", Assert.ThrowsAny<Exception>(() =>
                t.Regression.Transform(t.Ml.Data.LoadFromEnumerable(new[] { new OtherName { Inputs = [1, 2, 3, 4] } }))).Message);
        },
        ["missing label column"] = t =>
        {
            var e = Assert.ThrowsAny<Exception>(() => t.Ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1))
                .Fit(t.Ml.Data.LoadFromEnumerable(new[] { new FeaturesOnly { Features = [1, 2, 3, 4] } })));
            Assert.Contains("The label column 'Label' is not in the data (columns: Features)", e.Message);
        },
        ["features of another type"] = t =>
        {
            var e = Assert.ThrowsAny<Exception>(() => t.Ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1))
                .Fit(t.Ml.Data.LoadFromEnumerable(new[] { new DoubleRow { Features = [1, 2, 3, 4] } })));
            Assert.Contains("Feature column 'Features' has type Vector<Double, 4>", e.Message);
            Assert.Contains("ConvertType", e.Message);
        },
        ["label of another type"] = t =>
        {
            var data = t.Ml.Data.LoadFromEnumerable(TabularRows.MulticlassRows(8, 1));
            Assert.Contains("regression needs a Single (float) label", Assert.ThrowsAny<Exception>(() =>
                t.Ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1)).Fit(data)).Message);
            Assert.Contains("MapValueToKey(\"Label\")", Assert.ThrowsAny<Exception>(() =>
                t.Ml.MulticlassClassification.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1)).Fit(data)).Message);
        },
        ["NaN features"] = t =>
        {
            // Documented: NaN is a missing value, given its slot's learned missing-value embedding, at Fit and at prediction.
            var allMissing = new FeaturesOnly { Features = [float.NaN, float.NaN, float.NaN, float.NaN] };
            foreach (var model in new[] { t.Regression, t.Binary })
                Assert.True(float.IsFinite(t.Ml.Model.CreatePredictionEngine<FeaturesOnly, Scored>(model).Predict(allMissing).Score));
            var rows = TabularRows.RegressionRows(32, 4).ToArray();
            foreach (var r in rows.Take(16)) r.Features[3] = float.NaN;                 // a slot missing in half the rows
            using var fitted = t.Ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1)).Fit(t.Ml.Data.LoadFromEnumerable(rows));
            Assert.All(fitted.Transform(t.Ml.Data.LoadFromEnumerable(rows)).GetColumn<float>("Score"), s => Assert.True(float.IsFinite(s)));
        },
        ["±∞ features at Fit"] = t =>
        {
            foreach (var value in new[] { float.PositiveInfinity, float.NegativeInfinity })
            {
                var rows = TabularRows.RegressionRows(6, 1).ToArray();
                rows[4].Features[2] = value;
                var e = FitRegression(t, rows);
                Assert.Contains($"Feature column 'Features' holds {value} at row 4, slot 2", e.Message);
                Assert.Contains("Clip or replace infinite values", e.Message);
            }
        },
        ["±∞ labels at Fit"] = t =>
        {
            foreach (var value in new[] { float.PositiveInfinity, float.NegativeInfinity })
            {
                var rows = TabularRows.RegressionRows(6, 1).ToArray();
                rows[2].Label = value;
                var e = FitRegression(t, rows);
                Assert.Contains($"Label column 'Label' holds {value} at row 2", e.Message);
                Assert.Contains("Clip or remove infinite labels", e.Message);
            }
        },
        ["±∞ features at prediction"] = t =>
        {
            var engine = t.Ml.Model.CreatePredictionEngine<FeaturesOnly, Scored>(t.Regression);
            var e = Assert.ThrowsAny<Exception>(() => engine.Predict(new FeaturesOnly { Features = [0, float.NegativeInfinity, 0, 0] }));
            Assert.Contains($"Feature column 'Features' holds {float.NegativeInfinity}", e.Message);
            Assert.Contains("slot 1", e.Message);
            Assert.True(float.IsFinite(engine.Predict(new FeaturesOnly { Features = [0, 1, 0, 0] }).Score));   // the engine still works
            var rows = TabularRows.RegressionRows(5, 1).Select(r => new FeaturesOnly { Features = r.Features }).ToArray();
            rows[3].Features[0] = float.PositiveInfinity;
            e = Assert.ThrowsAny<Exception>(() => t.Regression.Transform(t.Ml.Data.LoadFromEnumerable(rows)).GetColumn<float>("Score").ToArray());
            Assert.Contains("holds ∞ at row 3, slot 0", e.Message.Replace("Infinity", "∞"));
        },
        ["labels unseen in training"] = t =>
        {
            var rows = TabularRows.MulticlassRows(8, 5).Append(new TabularRows.Multiclass { Features = [0, 0, 0, 0], Label = "extreme" }).ToArray();
            var e = Assert.Throws<InvalidOperationException>(() =>
                t.Ml.MulticlassClassification.Evaluate(t.Multiclass.Transform(Keyed(t.Ml, rows))));
            Assert.Contains("label column 'Label' of the data has 4 classes", e.Message);
            Assert.Contains("never saw", e.Message);
        },
        ["a single class"] = t =>
        {
            var binary = TabularRows.BinaryRows(8, 1).Select(r => { r.Label = false; return r; });
            Assert.Contains("holds a single class", Assert.ThrowsAny<Exception>(() =>
                t.Ml.BinaryClassification.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1)).Fit(t.Ml.Data.LoadFromEnumerable(binary))).Message);
            var multi = TabularRows.MulticlassRows(8, 1).Select(r => { r.Label = "mid"; return r; }).ToArray();
            Assert.Contains("single class ('mid')", Assert.ThrowsAny<Exception>(() =>
                t.Ml.MulticlassClassification.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1)).Fit(Keyed(t.Ml, multi))).Message);
        },
        ["another slot count at prediction"] = t =>
        {
            var data = t.Ml.Data.LoadFromEnumerable(new[] { new TwoSlots { Features = [1, 2] } });
            Assert.Contains("has 2 slots; the model was trained on 4", Assert.ThrowsAny<Exception>(() => t.Regression.Transform(data)).Message);
        },
    };

    public static TheoryData<string> Cases => new(Table.Keys);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Each_case_gets_a_clear_error_or_its_documented_behaviour(string @case) => Table[@case](trained);

    private static IDataView Keyed(MLContext ml, TabularRows.Multiclass[] rows)
    {
        var data = ml.Data.LoadFromEnumerable(rows);
        return ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
    }

    private static Exception FitRegression(Trained t, TabularRows.Regression[] rows) =>
        Assert.ThrowsAny<Exception>(() => t.Ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1)).Fit(t.Ml.Data.LoadFromEnumerable(rows)));
}
