using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>The wide branch (hashed n-gram bag) through the ML.NET trainer: options, training, saving.</summary>
public class MemoryFormerTextClassificationNgramTests
{
    [Theory]
    [InlineData(-1, 2, nameof(MemoryFormerTextClassificationOptions.NgramBuckets))]
    [InlineData((1 << 24) + 1, 2, nameof(MemoryFormerTextClassificationOptions.NgramBuckets))]
    [InlineData(1024, 0, nameof(MemoryFormerTextClassificationOptions.NgramLength))]
    [InlineData(1024, 4, nameof(MemoryFormerTextClassificationOptions.NgramLength))]
    public void Bad_ngram_settings_are_rejected_naming_the_option(int buckets, int length, string option)
    {
        var options = ClassificationRows.Options();
        options.NgramBuckets = buckets;
        options.NgramLength = length;
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new MLContext(1).BinaryClassification.Trainers.MemoryFormerTextClassification(options));
        Assert.Contains(option, error.Message);
    }

    [Fact]
    public void The_branch_trains_and_round_trips_through_an_ml_net_model_file()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(ClassificationRows.Binary());
        var options = ClassificationRows.Options(epochs: 3);
        options.NgramBuckets = 4096;
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTextClassification(options).Fit(data);
        var bag = model.Model.Network.NgramBag!;
        Assert.Equal(4096, bag.Buckets);
        Assert.True(bag.Table.abs().max().item<float>() > 0, "training moves the table away from its zero start");
        using var stream = new MemoryStream();
        ml.Model.Save(model, data.Schema, stream);
        stream.Position = 0;
        var loaded = (MemoryFormerTextClassificationTransformer)ml.Model.Load(stream, out _);
        Assert.Equal(4096, loaded.Model.Network.NgramBag!.Buckets);
        Assert.Equal(model.Transform(data).GetColumn<float>("Score"), loaded.Transform(data).GetColumn<float>("Score"));
    }

    [Fact]
    public void Scoring_reads_the_bag_the_model_trained_with()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(ClassificationRows.Binary());
        var options = ClassificationRows.Options(epochs: 3);
        options.NgramBuckets = 4096;
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTextClassification(options).Fit(data);
        var trained = model.Transform(data).GetColumn<float>("Score").ToArray();
        using (TorchSharp.torch.no_grad()) model.Model.Network.NgramBag!.Table.zero_();
        var withoutBag = model.Transform(data).GetColumn<float>("Score").ToArray();
        Assert.True(trained.Zip(withoutBag).Max(p => Math.Abs(p.First - p.Second)) > 1e-4,
            "zeroing the trained bag must change the scores, or scoring skips the wide branch");
    }

    [Fact]
    public void The_branch_is_off_by_default_and_then_the_classifier_has_no_bag()
    {
        Assert.Equal(0, new MemoryFormerTextClassificationOptions().NgramBuckets);
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(ClassificationRows.Binary());
        var options = ClassificationRows.Options(epochs: 1);
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTextClassification(options).Fit(data);
        Assert.Null(model.Model.Network.NgramBag);
    }
}
