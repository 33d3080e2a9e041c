using System.Diagnostics;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Tests.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.Reliability;

/// <summary>
/// Bad data for the text classifiers (binary and multiclass), one row of the table per case of issue 8: a clear error
/// naming the column, or the behaviour docs/reliability.md "Bad data" documents.
/// </summary>
public class TextClassifierBadDataTests(TextClassifierBadDataTests.Trained trained) : IClassFixture<TextClassifierBadDataTests.Trained>
{
    /// <summary>A binary and a multiclass classifier fitted once for the prediction-time cases.</summary>
    public sealed class Trained : IDisposable
    {
        public MLContext Ml { get; } = new(seed: 1);
        public MemoryFormerTextClassificationTransformer Binary { get; }
        public MemoryFormerTextClassificationTransformer Multiclass { get; }

        public Trained()
        {
            Binary = Ml.BinaryClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options(epochs: 3))
                .Fit(Ml.Data.LoadFromEnumerable(ClassificationRows.Binary()));
            Multiclass = Ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options(epochs: 3))
                .Fit(KeyedMulticlass(Ml, ClassificationRows.Multiclass()));
        }

        public void Dispose()
        {
            Binary.Dispose();
            Multiclass.Dispose();
        }
    }

    private sealed class TextOnly
    {
        public string? Text { get; set; }
    }

    private sealed class NumberText
    {
        public float Text { get; set; }
        public bool Label { get; set; }
    }

    private sealed class NullableRow
    {
        public string? Text { get; set; }
        public bool Label { get; set; }
    }

    private sealed class BinaryScore
    {
        public float Score { get; set; }
        public float Probability { get; set; }
    }

    private sealed class MulticlassScore
    {
        public float[] Score { get; set; } = [];
    }

    private static readonly string OneMegabyte = string.Concat(Enumerable.Repeat("rain today and snow ", (1 << 20) / 20));

    private static readonly Dictionary<string, Action<Trained>> Table = new()
    {
        ["no rows"] = t =>
        {
            Assert.Contains("has no rows", FitBinary(t, []).Message);
            Assert.Contains("has no rows", Assert.ThrowsAny<Exception>(() => FitMulticlass(t, [])).Message);
        },
        ["missing text column"] = t =>
        {
            var data = t.Ml.Data.LoadFromEnumerable(ClassificationRows.Binary().Select(r => new { Body = r.Text, r.Label }));
            Assert.Contains("text column 'Text' is not in the data (columns: Body, Label)", Fit(t, data).Message);
        },
        ["missing label column"] = t =>
        {
            var data = t.Ml.Data.LoadFromEnumerable(ClassificationRows.Binary().Select(r => new TextOnly { Text = r.Text }));
            Assert.Contains("label column 'Label' is not in the data", Fit(t, data).Message);
        },
        ["text column of another type"] = t =>
        {
            var data = t.Ml.Data.LoadFromEnumerable(new[] { new NumberText { Text = 1, Label = true }, new NumberText { Label = false } });
            Assert.Contains("text column 'Text' is Single; it must be a scalar String", Fit(t, data).Message);
        },
        ["label of another type"] = t =>
        {
            var data = t.Ml.Data.LoadFromEnumerable(ClassificationRows.Multiclass());
            Assert.Contains("The label column 'Label' is String, but binary classification needs a Boolean label", Fit(t, data).Message);
            Assert.Contains("MapValueToKey(\"Label\")", Assert.ThrowsAny<Exception>(() =>
                t.Ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options(1)).Fit(data)).Message);
        },
        ["null, empty and whitespace texts"] = t =>
        {
            // Documented: such a row is the start token alone (or its whitespace bytes): it trains and predicts.
            var rows = ClassificationRows.Binary().Select(r => new NullableRow { Text = r.Text, Label = r.Label })
                .Concat([new() { Text = null, Label = true }, new() { Text = "", Label = false }, new() { Text = " \t\n", Label = true }]);
            using var model = t.Ml.BinaryClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options(1)).Fit(t.Ml.Data.LoadFromEnumerable(rows));
            var empty = PredictBinary(t, t.Binary, "");
            Assert.Equal(empty.Score, PredictBinary(t, t.Binary, null).Score);
            Assert.InRange(PredictBinary(t, t.Binary, " \t\n").Probability, 0, 1);
            Assert.True(float.IsFinite(empty.Score));
            Assert.Equal(1, PredictMulticlass(t, "").Sum(), 4);
        },
        ["a 1 MB text"] = t =>
        {
            // Documented: the row keeps its first MaxWindowsPerRow × (MaxTokensPerRow − 1) tokens (head; here 4 × 31 bytes,
            // inside the 200-character head), and only those are tokenized.
            var head = OneMegabyte[..200];
            PredictBinary(t, t.Binary, head);
            var clock = Stopwatch.StartNew();
            var huge = PredictBinary(t, t.Binary, OneMegabyte);
            var multi = PredictMulticlass(t, OneMegabyte);
            Assert.True(clock.ElapsedMilliseconds < 1000, $"two 1 MB predictions took {clock.ElapsedMilliseconds} ms");
            Assert.Equal(PredictBinary(t, t.Binary, head).Score, huge.Score);
            Assert.Equal(PredictMulticlass(t, head), multi);
            var rows = ClassificationRows.Binary().Append(new ClassificationRows.BinaryRow { Text = OneMegabyte, Label = false });
            clock.Restart();
            using var model = t.Ml.BinaryClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options(1)).Fit(t.Ml.Data.LoadFromEnumerable(rows));
            Assert.True(clock.ElapsedMilliseconds < 10_000, $"fitting with a 1 MB row took {clock.ElapsedMilliseconds} ms");
        },
        ["unpaired UTF-16 surrogates"] = t =>
        {
            // Documented: a lone surrogate is encoded as U+FFFD, as UTF-8 encoding does; no error.
            Assert.Equal(PredictBinary(t, t.Binary, "WIN \uFFFD prize").Score, PredictBinary(t, t.Binary, "WIN \uD800 prize").Score);
            Assert.Equal(PredictMulticlass(t, "rain \uFFFD"), PredictMulticlass(t, "rain \uDC00"));
            var rows = ClassificationRows.Binary().Append(new ClassificationRows.BinaryRow { Text = "\uDBFF lone", Label = true });
            using var model = t.Ml.BinaryClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options(1)).Fit(t.Ml.Data.LoadFromEnumerable(rows));
        },
        ["labels unseen in training"] = t =>
        {
            var other = ClassificationRows.Multiclass().Append(new ClassificationRows.TextRow { Text = "goal!", Label = "sports" }).ToArray();
            var e = Assert.Throws<InvalidOperationException>(() =>
                t.Ml.MulticlassClassification.Evaluate(t.Multiclass.Transform(KeyedMulticlass(t.Ml, other))));
            Assert.Contains("label column 'Label' of the data has 4 classes", e.Message);
            Assert.Contains("MapValueToKey", e.Message);
        },
        ["a single class"] = t =>
        {
            Assert.Contains("holds a single class", FitBinary(t, ClassificationRows.Binary().Where(r => r.Label)).Message);
            var food = ClassificationRows.Multiclass().Where(r => r.Label == "food").ToArray();
            Assert.Contains("single class ('food')", Assert.ThrowsAny<Exception>(() => FitMulticlass(t, food)).Message);
        },
    };

    public static TheoryData<string> Cases => new(Table.Keys);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Each_case_gets_a_clear_error_or_its_documented_behaviour(string @case) => Table[@case](trained);

    private static IDataView KeyedMulticlass(MLContext ml, ClassificationRows.TextRow[] rows)
    {
        var data = ml.Data.LoadFromEnumerable(rows);
        return ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
    }

    private static Exception Fit(Trained t, IDataView data) =>
        Assert.ThrowsAny<Exception>(() => t.Ml.BinaryClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options(1)).Fit(data));

    private static Exception FitBinary(Trained t, IEnumerable<ClassificationRows.BinaryRow> rows) => Fit(t, t.Ml.Data.LoadFromEnumerable(rows));

    private static MemoryFormerTextClassificationTransformer FitMulticlass(Trained t, ClassificationRows.TextRow[] rows) =>
        t.Ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(ClassificationRows.Options(1)).Fit(KeyedMulticlass(t.Ml, rows));

    private static BinaryScore PredictBinary(Trained t, ITransformer model, string? text) =>
        t.Ml.Model.CreatePredictionEngine<TextOnly, BinaryScore>(model).Predict(new TextOnly { Text = text });

    private static float[] PredictMulticlass(Trained t, string? text) =>
        t.Ml.Model.CreatePredictionEngine<TextOnly, MulticlassScore>(t.Multiclass).Predict(new TextOnly { Text = text }).Score;
}
