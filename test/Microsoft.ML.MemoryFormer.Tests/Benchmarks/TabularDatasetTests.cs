using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Benchmarks.Tabular;

namespace Microsoft.ML.MemoryFormer.Tests.Benchmarks;

/// <summary>The tabular benchmark's development split, cross-validation folds, value categories and saved predictions (linked from the benchmark program).</summary>
public sealed class TabularDatasetTests : IDisposable
{
    private readonly string folder = Path.Combine(Path.GetTempPath(), $"mf-tab-set-{Guid.NewGuid():N}");

    /// <summary>A 400-row file in adult's format: capital-gain takes the values 0, 500 and 900.</summary>
    public TabularDatasetTests()
    {
        Directory.CreateDirectory(folder);
        var random = new Random(3);
        var lines = new List<string> { "age, workclass, fnlwgt, education, education-num, marital-status, occupation, relationship, ethnicity, sex, capital-gain, capital-loss, hours-per-week, native-country, label" };
        for (int r = 0; r < 400; r++)
            lines.Add($"{20 + random.Next(50)}, W{random.Next(3)}, {random.Next(100000)}, E{random.Next(4)}, {random.Next(16)}, M{random.Next(2)}, " +
                $"O{random.Next(5)}, R{random.Next(3)}, X, {(random.Next(2) == 0 ? "Male" : "Female")}, {new[] { 0, 500, 900 }[random.Next(3)]}, 0, " +
                $"{random.Next(20, 60)}, C{random.Next(2)}, {random.Next(2)}");
        File.WriteAllLines(Path.Combine(folder, "adult.txt"), lines);
    }

    public void Dispose() => Directory.Delete(folder, recursive: true);

    private static int Rows(IDataView data) => data.GetColumn<bool>("label").Count();

    private static int Slots(TabularDataset set) =>
        ((VectorDataViewType)set.Featurize.Fit(set.Train).Transform(set.Train).Schema["Features"].Type).Size;

    [Fact]
    public void The_development_split_cuts_the_training_rows_and_leaves_the_test_rows_out()
    {
        var ml = new MLContext(0);
        var set = TabularDataset.Load(ml, folder, "adult")!;
        var development = set.Development(ml, 0.25);
        Assert.Equal(Rows(set.Train), Rows(development.Train) + Rows(development.Test));
        Assert.InRange(Rows(development.Test), Rows(set.Train) / 8, Rows(set.Train) / 2);
        var trainWeights = set.Train.GetColumn<float>("fnlwgt").ToHashSet();
        Assert.All(development.Test.GetColumn<float>("fnlwgt"), w => Assert.Contains(w, trainWeights));
    }

    [Fact]
    public void The_folds_test_sets_partition_every_row_and_each_fold_trains_on_the_rest()
    {
        var ml = new MLContext(0);
        var set = TabularDataset.Load(ml, folder, "adult")!;
        var all = set.All.GetColumn<float>("fnlwgt").Order().ToArray();
        Assert.Equal(400, all.Length);
        var folds = Enumerable.Range(0, 4).Select(i => set.Fold(ml, i, 4)).ToArray();
        Assert.Equal(all, folds.SelectMany(f => f.Test.GetColumn<float>("fnlwgt")).Order());
        Assert.All(folds, f => Assert.Equal(all, f.Train.GetColumn<float>("fnlwgt").Concat(f.Test.GetColumn<float>("fnlwgt")).Order()));
        Assert.All(folds, f => Assert.InRange(Rows(f.Test), 50, 150));
        Assert.Throws<ArgumentOutOfRangeException>(() => set.Fold(ml, 4, 4));
    }

    [Fact]
    public void Value_categories_add_one_slot_per_distinct_value_and_refuse_unknown_columns()
    {
        var ml = new MLContext(0);
        int plain = Slots(TabularDataset.Load(ml, folder, "adult")!);
        int coded = Slots(TabularDataset.Load(ml, folder, "adult", ["capital-gain"])!);
        Assert.Equal(plain + 3, coded);                           // the values 0, 500 and 900
        Assert.Throws<ArgumentException>(() => TabularDataset.Load(ml, folder, "adult", ["workclass"]));
    }

    [Fact]
    public void Saved_predictions_hold_a_label_and_probability_per_row_and_the_raw_columns_once()
    {
        var ml = new MLContext(0);
        var set = TabularDataset.Load(ml, folder, "adult")!;
        var model = set.Featurize.Append(ml.BinaryClassification.Trainers.SdcaLogisticRegression(maximumNumberOfIterations: 2)).Fit(set.Train);
        var scored = model.Transform(set.Test);
        var output = Path.Combine(folder, "out");
        TabularPredictions.Save(output, "adult", "SDCA", scored);
        var lines = File.ReadAllLines(Path.Combine(output, "adult-SDCA.txt"));
        var labels = scored.GetColumn<bool>("Label").ToArray();
        Assert.Equal(labels.Length, lines.Length);
        Assert.All(lines.Zip(labels), p => Assert.StartsWith(p.Second ? "1 " : "0 ", p.First));
        Assert.All(lines, l => Assert.InRange(float.Parse(l.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture), 0f, 1f));
        var rows = File.ReadAllLines(Path.Combine(output, "adult-rows.tsv"));
        Assert.Equal(labels.Length + 1, rows.Length);
        Assert.Contains("capital-gain", rows[0].Split('\t'));
        Assert.Contains("workclass", rows[0].Split('\t'));
        Assert.DoesNotContain("Probability", rows[0].Split('\t'));
    }
}
