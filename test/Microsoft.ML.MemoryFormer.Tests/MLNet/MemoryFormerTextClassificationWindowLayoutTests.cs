using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>The <see cref="MemoryFormerTextClassificationOptions.WindowLayout"/> option: training and scoring cut long
/// rows the same way, the layout is saved with the model, and rows that fit one window train the same bits.</summary>
public class MemoryFormerTextClassificationWindowLayoutTests
{
    /// <summary>12 rows of 37–42 bytes: two windows of ≤ 31 text bytes each (the last one moved back by default).</summary>
    private static ClassificationRows.BinaryRow[] LongRows()
    {
        string head = "this opening is shared by rows.";                         // 31 bytes
        string[] yes = ["prize", "win cash", "free prize", "cash win", "win free", "prize cash"];
        string[] no = ["lunch", "see you", "call me", "thanks", "at noon", "ok lunch"];
        return [.. yes.Select(t => new ClassificationRows.BinaryRow { Text = head + " " + t, Label = true }),
            .. no.Select(t => new ClassificationRows.BinaryRow { Text = head + " " + t, Label = false })];
    }

    private static MemoryFormerTextClassificationTransformer Train(MLContext ml, IDataView data, WindowLayout layout)
    {
        var options = ClassificationRows.Options(epochs: 3);
        options.MaxWindowsPerRow = 3;
        options.WindowLayout = layout;
        return ml.BinaryClassification.Trainers.MemoryFormerTextClassification(options).Fit(data);
    }

    private static float[] Scores(ITransformer model, IDataView data) => model.Transform(data).GetColumn<float>("Score").ToArray();

    [Fact]
    public void Training_reads_the_layout_and_the_model_saves_and_scores_with_it()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(LongRows());
        using var even = Train(ml, data, WindowLayout.Even);
        using var movedBack = Train(ml, data, WindowLayout.LastMovedBack);
        Assert.Equal(WindowLayout.Even, even.Model.WindowLayout);
        Assert.Equal(WindowLayout.Even, even.Model.ScoringWindowLayout);                    // scoring matches training
        Assert.Equal(WindowLayout.LastMovedBack, movedBack.Model.WindowLayout);
        var trainedEven = Scores(even, data);
        even.Model.ScoringWindowLayout = WindowLayout.LastMovedBack;
        var mismatched = Scores(even, data);
        even.Model.ScoringWindowLayout = WindowLayout.Even;
        Assert.NotEqual(trainedEven, mismatched);                                             // scoring reads the layout
        movedBack.Model.ScoringWindowLayout = WindowLayout.Even;
        Assert.NotEqual(trainedEven, Scores(movedBack, data));                                // so does training

        using var stream = new MemoryStream();
        ml.Model.Save(even, data.Schema, stream);
        stream.Position = 0;
        var loaded = (MemoryFormerTextClassificationTransformer)ml.Model.Load(stream, out _);
        Assert.Equal(WindowLayout.Even, loaded.Model.WindowLayout);
        Assert.Equal(WindowLayout.Even, loaded.Model.ScoringWindowLayout);
        Assert.Equal(trainedEven, Scores(loaded, data));
    }

    [Fact]
    public void Rows_that_fit_one_window_train_the_same_bits_with_every_layout()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(ClassificationRows.Binary());                 // ≤ 20 bytes: one window
        using var reference = Train(ml, data, WindowLayout.LastMovedBack);
        var expected = Scores(reference, data);
        foreach (var layout in new[] { WindowLayout.ShortLast, WindowLayout.Even })
        {
            using var model = Train(ml, data, layout);
            Assert.Equal(expected, Scores(model, data));
            Assert.Equal(reference.Model.Network.parameters().Select(p => p.data<float>().ToArray()),
                model.Model.Network.parameters().Select(p => p.data<float>().ToArray()));
        }
    }

    [Fact]
    public void An_unknown_layout_is_rejected()
    {
        var options = ClassificationRows.Options();
        options.WindowLayout = (WindowLayout)7;
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new MLContext(seed: 1).BinaryClassification.Trainers.MemoryFormerTextClassification(options));
        Assert.Contains(nameof(MemoryFormerTextClassificationOptions.WindowLayout), error.Message);
    }
}
