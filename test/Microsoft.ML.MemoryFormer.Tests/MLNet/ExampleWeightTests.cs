using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary><see cref="MemoryFormerTabularOptions.ExampleWeightColumnName"/> and
/// <see cref="MemoryFormerTextClassificationOptions.ExampleWeightColumnName"/>: what the weights do to the loss and the
/// models, and the errors for a bad weight column.</summary>
public class ExampleWeightTests
{
    private sealed class WeightedText
    {
        public string Text { get; set; } = "";
        public bool Label { get; set; }
        public float Weight { get; set; }
    }

    private sealed class WeightedBinary
    {
        [Microsoft.ML.Data.VectorType(4)] public float[] Features { get; set; } = [];
        public bool Label { get; set; }
        public float Weight { get; set; }
    }

    private sealed class DoubleWeight
    {
        [Microsoft.ML.Data.VectorType(4)] public float[] Features { get; set; } = [];
        public bool Label { get; set; }
        public double Weight { get; set; }
    }

    /// <summary>The binary rows, each once with its label at <paramref name="kept"/> and once with the opposite label at
    /// <paramref name="flipped"/>.</summary>
    private static IEnumerable<WeightedBinary> Contradicted(float kept, float flipped) =>
        TabularRows.BinaryRows(256, 1).SelectMany(r => new[]
        {
            new WeightedBinary { Features = r.Features, Label = r.Label, Weight = kept },
            new WeightedBinary { Features = (float[])r.Features.Clone(), Label = !r.Label, Weight = flipped },
        });

    private static MemoryFormerTabularOptions Weighted(int epochs = 12)
    {
        var options = TabularRows.TinyOptions(epochs);
        options.ExampleWeightColumnName = "Weight";
        return options;
    }

    [Fact]
    public void Rows_of_weight_zero_leave_no_trace_and_equal_weights_change_nothing()
    {
        var ml = new MLContext(1);
        var test = ml.Data.LoadFromEnumerable(TabularRows.BinaryRows(200, 2));
        double Accuracy(float kept, float flipped)
        {
            using var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(Weighted())
                .Fit(ml.Data.LoadFromEnumerable(Contradicted(kept, flipped)));
            return ml.BinaryClassification.Evaluate(model.Transform(test)).Accuracy;
        }
        double ignoringFlipped = Accuracy(1, 0), equal = Accuracy(1, 1), preferringFlipped = Accuracy(0, 1);
        Assert.True(ignoringFlipped > 0.8, $"weight 0 on the flipped rows: accuracy {ignoringFlipped:F3}");
        Assert.True(preferringFlipped < 0.2, $"weight 0 on the true rows: accuracy {preferringFlipped:F3}");
        Assert.True(equal > preferringFlipped + 0.1 && equal < ignoringFlipped - 0.1, $"equal weights: accuracy {equal:F3}");
    }

    [Fact]
    public void The_text_classifier_follows_the_rows_that_carry_weight()
    {
        var ml = new MLContext(1);
        var truth = ml.Data.LoadFromEnumerable(ClassificationRows.Binary());
        double Accuracy(float kept, float flipped)
        {
            var rows = ClassificationRows.Binary().SelectMany(r => new[]
            {
                new WeightedText { Text = r.Text, Label = r.Label, Weight = kept },
                new WeightedText { Text = r.Text, Label = !r.Label, Weight = flipped },
            });
            var options = ClassificationRows.Options(epochs: 20);
            options.ExampleWeightColumnName = "Weight";
            using var model = ml.BinaryClassification.Trainers.MemoryFormerTextClassification(options).Fit(ml.Data.LoadFromEnumerable(rows));
            return ml.BinaryClassification.Evaluate(model.Transform(truth)).Accuracy;
        }
        double ignoringFlipped = Accuracy(1, 0), preferringFlipped = Accuracy(0, 1);
        Assert.True(ignoringFlipped > 0.9, $"weight 0 on the flipped rows: accuracy {ignoringFlipped:F3}");
        Assert.True(preferringFlipped < 0.1, $"weight 0 on the true rows: accuracy {preferringFlipped:F3}");
    }

    [Fact]
    public void A_text_weight_column_of_the_wrong_type_is_refused_by_name()
    {
        var ml = new MLContext(1);
        var options = ClassificationRows.Options(epochs: 1);
        options.ExampleWeightColumnName = "Label";                                // a Boolean column
        var e = Assert.Throws<ArgumentOutOfRangeException>(() =>
            ml.BinaryClassification.Trainers.MemoryFormerTextClassification(options).Fit(ml.Data.LoadFromEnumerable(ClassificationRows.Binary())));
        Assert.Contains("Example weight column 'Label' has type Boolean", e.Message);
    }

    [Fact]
    public void The_weighted_loss_is_the_weighted_mean_of_the_row_losses()
    {
        using var scope = NewDisposeScope();
        var logits = tensor(new float[] { 2, -1, 0.5f, 0.5f, -3, 1 }, [3, 2]);
        var classes = tensor(new long[] { 0, 1, 1 });
        var weights = tensor(new float[] { 1, 0, 3 });
        var rows = nn.functional.cross_entropy(logits, classes, reduction: nn.Reduction.None);
        float expected = (rows[0].item<float>() + 3 * rows[2].item<float>()) / 4;
        Assert.Equal(expected, new ClassificationObjective().Loss(logits, classes, weights).item<float>(), 5);
        Assert.Equal(new ClassificationObjective().Loss(logits, classes).item<float>(),
            new ClassificationObjective().Loss(logits, classes, ones(3)).item<float>(), 5);
        var perClass = tensor(new float[] { 1, 2 });
        float withClasses = (rows[0].item<float>() * 1 + 3 * 2 * rows[2].item<float>()) / (1 * 1 + 3 * 2);
        Assert.Equal(withClasses, new ClassificationObjective(perClass).Loss(logits, classes, weights).item<float>(), 5);
        var predictions = tensor(new float[] { 1, 2, 4 }, [3, 1]);
        var values = tensor(new float[] { 0, 0, 0 });
        Assert.Equal((1 * 1 + 3 * 16) / 4f, new RegressionObjective().Loss(predictions, values, weights).item<float>(), 5);
        Assert.Equal(0f, new RegressionObjective().Loss(predictions, values, zeros(3)).item<float>());
    }

    [Fact]
    public void A_missing_or_mistyped_weight_column_is_refused_by_name()
    {
        var ml = new MLContext(1);
        var noWeights = ml.Data.LoadFromEnumerable(TabularRows.BinaryRows(32, 1));
        var trainer = ml.BinaryClassification.Trainers.MemoryFormerTabular(Weighted(1));
        var missing = Assert.Throws<ArgumentOutOfRangeException>(() => trainer.Fit(noWeights));
        Assert.Contains("Example weight column 'Weight' was not found", missing.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => trainer.GetOutputSchema(Microsoft.ML.MemoryFormer.MLNet.MLNetInternals.ShapeOf(noWeights.Schema)));
        var doubles = ml.Data.LoadFromEnumerable(TabularRows.BinaryRows(32, 1)
            .Select(r => new DoubleWeight { Features = r.Features, Label = r.Label, Weight = 1 }));
        var typed = Assert.Throws<ArgumentOutOfRangeException>(() => trainer.Fit(doubles));
        Assert.Contains("expected Single", typed.Message);
    }

    [Theory]
    [InlineData(-1f)]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    public void A_negative_or_non_finite_weight_is_refused_with_its_row(float bad)
    {
        var ml = new MLContext(1);
        var rows = Contradicted(1, 1).ToArray();
        rows[5].Weight = bad;
        var e = Assert.Throws<InvalidOperationException>(() =>
            ml.BinaryClassification.Trainers.MemoryFormerTabular(Weighted(1)).Fit(ml.Data.LoadFromEnumerable(rows)));
        Assert.Contains("Example weight column 'Weight'", e.Message);
        Assert.Contains("at row 5", e.Message);
    }

    [Fact]
    public void Weights_that_are_all_zero_are_refused()
    {
        var ml = new MLContext(1);
        var e = Assert.Throws<InvalidOperationException>(() =>
            ml.BinaryClassification.Trainers.MemoryFormerTabular(Weighted(1)).Fit(ml.Data.LoadFromEnumerable(Contradicted(0, 0))));
        Assert.Contains("0 on every labelled row", e.Message);
    }

    /// <summary>Fixed outputs for a validation pass: row i scores <c>outputs[i]</c> against <c>targets[i]</c>.</summary>
    private sealed class FixedRows(float[,] outputs, long[] targets, float[]? weights) : ILabelledRows
    {
        public int Count => targets.Length;

        public (Tensor Outputs, Tensor Targets) Run(int[] rows) =>
            (tensor(rows.SelectMany(r => Enumerable.Range(0, outputs.GetLength(1)).Select(c => outputs[r, c])).ToArray(), [rows.Length, outputs.GetLength(1)]),
             tensor(rows.Select(r => targets[r]).ToArray()));

        public Tensor? Weights(int[] rows) => weights is null ? null : tensor(rows.Select(r => weights[r]).ToArray());
    }

    [Fact]
    public void Validation_weighs_each_row_as_training_does_unless_every_weight_is_zero()
    {
        using var scope = NewDisposeScope();
        var outputs = new float[,] { { 3, 0 }, { 0, 3 }, { 3, 0 }, { 1, 0 }, { 0, 2 } };
        long[] targets = [0, 1, 1, 1, 0];                                            // rows 2, 3 and 4 are wrong
        double Accuracy(float[]? weights) => new SupervisedTask(new ClassificationObjective(), new FixedRows(outputs, targets, null),
            new FixedRows(outputs, targets, weights), batchSize: 2, seed: 1).Validate()!.Value.Metric!.Value;
        Assert.Equal(2 / 5.0, Accuracy(null), 6);
        Assert.Equal(1.0, Accuracy([1, 1, 0, 0, 0]), 6);                             // the wrong rows weigh nothing
        Assert.Equal(2 / 9.0, Accuracy([1, 1, 1, 2, 4]), 6);
        Assert.Equal(2 / 5.0, Accuracy([0, 0, 0, 0, 0]), 6);                         // no weight anywhere: each row once

        var rows = nn.functional.cross_entropy(tensor(new float[] { 3, 0, 0, 3, 3, 0, 1, 0, 0, 2 }, [5, 2]), tensor(targets),
            reduction: nn.Reduction.None).data<float>().ToArray();
        var loss = new SupervisedTask(new ClassificationObjective(), new FixedRows(outputs, targets, null),
            new FixedRows(outputs, targets, [1, 1, 1, 2, 4]), batchSize: 2, seed: 1).Validate()!.Value.Loss;
        Assert.Equal((rows[0] + rows[1] + rows[2] + 2 * rows[3] + 4 * rows[4]) / 9.0, loss, 5);
    }

    [Fact]
    public void The_weighted_validation_rmse_counts_a_row_of_weight_two_twice()
    {
        using var scope = NewDisposeScope();
        var predictions = tensor(new float[] { 1, 2, 4 }, [3, 1]);
        var values = tensor(new float[] { 0, 0, 0 });
        var objective = new RegressionObjective();
        var (_, weighted) = objective.Sums(predictions, values, tensor(new float[] { 2, 0, 1 }));
        var (_, repeated) = objective.Sums(tensor(new float[] { 1, 1, 4 }, [3, 1]), values);
        Assert.Equal(repeated, weighted, 5);
        Assert.Equal(-Math.Sqrt(18 / 3.0), objective.Metric(weighted, 3), 5);
    }

    [Fact]
    public void The_temperature_fit_counts_a_row_of_weight_two_twice_and_one_of_weight_zero_not_at_all()
    {
        float[][] logits = [[2, -1], [0.5f, 0.5f], [-3, 1], [4, 0]];
        long[] labels = [0, 1, 1, 1];
        foreach (double beta in new[] { 0.3, 1, 2.5 })
        {
            double weighted = TextClassifierCalibration.LogLoss(logits, labels, beta, [2, 1, 1, 0]);
            double repeated = TextClassifierCalibration.LogLoss([logits[0], logits[0], logits[1], logits[2]], [0, 0, 1, 1], beta);
            Assert.Equal(repeated, weighted, 12);
            Assert.NotEqual(TextClassifierCalibration.LogLoss(logits, labels, beta), weighted, 3);
        }
    }

    [Fact]
    public void The_flat_overloads_take_the_weight_column()
    {
        var ml = new MLContext(1);
        var rows = ml.Data.LoadFromEnumerable(TabularRows.BinaryRows(32, 1));
        var tabular = Assert.Throws<ArgumentOutOfRangeException>(() =>
            ml.BinaryClassification.Trainers.MemoryFormerTabular(epochs: 1, exampleWeightColumnName: "Importance").Fit(rows));
        Assert.Contains("Example weight column 'Importance' was not found", tabular.Message);
        var shape = Microsoft.ML.MemoryFormer.MLNet.MLNetInternals.ShapeOf(rows.Schema);
        Assert.Contains("'Importance' was not found", Assert.Throws<ArgumentOutOfRangeException>(() =>
            ml.Regression.Trainers.MemoryFormerTabular(exampleWeightColumnName: "Importance").GetOutputSchema(shape)).Message);
        Assert.Contains("'Importance' was not found", Assert.Throws<ArgumentOutOfRangeException>(() =>
            ml.MulticlassClassification.Trainers.MemoryFormerTabular(exampleWeightColumnName: "Importance").GetOutputSchema(shape)).Message);
        var texts = ml.Data.LoadFromEnumerable(ClassificationRows.Binary());
        var text = Assert.Throws<ArgumentOutOfRangeException>(() =>
            ml.BinaryClassification.Trainers.MemoryFormerTextClassification(epochs: 1, exampleWeightColumnName: "Importance").Fit(texts));
        Assert.Contains("Example weight column 'Importance' was not found", text.Message);
        Assert.Contains("'Importance' was not found", Assert.Throws<ArgumentOutOfRangeException>(() =>
            ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(exampleWeightColumnName: "Importance")
                .GetOutputSchema(Microsoft.ML.MemoryFormer.MLNet.MLNetInternals.ShapeOf(texts.Schema))).Message);
    }

    [Fact]
    public void The_tree_bins_of_piecewise_linear_tokens_follow_the_weights()
    {
        var ml = new MLContext(1);
        float[][] Edges(float kept, float flipped)
        {
            var options = Weighted(1);
            options.NumericEmbedding = Microsoft.ML.MemoryFormer.Configuration.TabularNumericEmbedding.PiecewiseLinear;
            options.PiecewiseLinearBinning = Microsoft.ML.MemoryFormer.Configuration.TabularBinning.Tree;
            options.PiecewiseLinearBins = 8;
            using var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(options).Fit(ml.Data.LoadFromEnumerable(Contradicted(kept, flipped)));
            return model.Info.BinEdges!;
        }
        var truth = Edges(1, 0);
        Assert.True(truth[0].Length > 2, "the label's slots get split points when only the true rows weigh");
        Assert.NotEqual(Edges(1, 1)[0], truth[0]);                                  // contradicted labels: nothing to gain
    }
}
