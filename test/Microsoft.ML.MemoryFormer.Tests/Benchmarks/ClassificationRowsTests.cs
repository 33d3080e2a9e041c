using Microsoft.ML.MemoryFormer.Benchmarks.Classification;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.Benchmarks;

/// <summary>
/// <c>bench classification</c> reports the rows a model trained on and those it held out for early stopping, not the whole
/// training set as rows trained on (<see cref="ClassificationResult.TrainingRows"/>, <see cref="ClassificationResult.RowsCell"/>;
/// linked from the benchmark program).
/// </summary>
public class ClassificationRowsTests
{
    [Fact]
    public void Early_stopping_rows_are_reported_as_held_out_not_trained_on()
    {
        var options = new MemoryFormerTextClassificationOptions { ValidationFraction = 0.1, EarlyStoppingPatience = 2 };
        Assert.Equal((900, 100), ClassificationResult.TrainingRows(1000, options));
        Assert.Equal((1000, 0), ClassificationResult.TrainingRows(1000, new MemoryFormerTextClassificationOptions { ValidationFraction = 0.1 }));
        Assert.Equal((1000, 0), ClassificationResult.TrainingRows(1000, null));          // SDCA: every row
        Assert.Equal((5, 0), ClassificationResult.TrainingRows(5, options));             // 10 % of 5 rows: none held out, as the trainer does
        Assert.Equal((1000, 0), ClassificationResult.TrainingRows(1000, new MemoryFormerTextClassificationOptions
        {
            ValidationFraction = 0.1, EarlyStoppingPatience = 2, ValidationSet = new MLContext().Data.LoadFromEnumerable(new[] { new { X = 1f } }),
        }));                                                                              // a validation set: nothing held out

        var result = new ClassificationResult("set", "model", 900, 100, 50, 0.5, 0.5, 1.0, TimeSpan.FromSeconds(1), 10, "");
        Assert.Equal("900 + 100 held out / 50", result.RowsCell);
        Assert.Equal("1,000 / 50", (result with { TrainRows = 1000, HeldOutRows = 0 }).RowsCell);
    }
}
