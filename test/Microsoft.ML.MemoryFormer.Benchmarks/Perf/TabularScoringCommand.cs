using System.ComponentModel;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf tabular-scoring</c>: tabular scoring rows/s with the blocks in the fused inference encoder (the default,
/// <c>TabularModel.ForwardFused</c>) against the torch modules (the reference path), through <c>Transform</c> and through a
/// <c>PredictionEngine</c> (one row a call), timed interleaved.
/// </summary>
/// <remarks>The model is the trainer's default architecture, trained for one epoch on synthetic rows (scoring speed does not
/// depend on what it learned); the rows are uniform in [−2, 2) with a label from three of the features.</remarks>
internal sealed class TabularScoringCommand : Command<TabularScoringCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--rows")]
        [Description("Rows scored by each Transform pass. Default 20000.")]
        [DefaultValue(20000)]
        public int Rows { get; init; } = 20000;

        [CommandOption("--features")]
        [Description("Numeric features per row. Default 14 (adult's column count).")]
        [DefaultValue(14)]
        public int Features { get; init; } = 14;

        [CommandOption("--rounds")]
        [Description("Interleaved rounds after one untimed (medians). Default 7; --quick uses 3.")]
        [DefaultValue(7)]
        public int Rounds { get; init; } = 7;
    }

    private sealed class Row
    {
        public float[] Features { get; set; } = [];
        public bool Label { get; set; }
    }

    private sealed class Scored
    {
        public float Score { get; set; }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        string machine = MachineFigures.Measure(settings);
        int rounds = settings.Quick ? 3 : settings.Rounds, features = settings.Features;
        var table = new PerfTable("tabular-scoring", $"Tabular scoring rows/s, default architecture, {features} numeric features",
            "numeric embedding", "Transform: fused", "Transform: torch", "fused ÷ torch", "PredictionEngine: fused", "PredictionEngine: torch", "fused ÷ torch");
        foreach (var embedding in new[] { TabularNumericEmbedding.Linear, TabularNumericEmbedding.PiecewiseLinear })
        {
            var (transform, engine) = Measure(embedding, features, settings.Rows, rounds);
            table.AddRow(embedding.ToString(), transform[true], transform[false], transform[true] / transform[false],
                engine[true], engine[false], engine[true] / engine[false]);
        }
        table.AddNote($"rows/s, median of {rounds} interleaved rounds after one untimed; Transform: {settings.Rows:N0} rows a pass " +
            "(Score column read); PredictionEngine: 2,000 rows, one a call; fused: the blocks in the fused inference encoder (the " +
            "default); torch: TabularPredictor.UseFusedScoring off, the torch modules throughout");
        table.AddNote("model: the trainer's default architecture, one epoch on 2,000 synthetic rows, ensemble of 1");
        table.AddNote(machine);
        table.Publish(settings.Output);
        return 0;
    }

    private static (Dictionary<bool, double> Transform, Dictionary<bool, double> Engine) Measure(TabularNumericEmbedding embedding,
        int features, int rowCount, int rounds)
    {
        var ml = new MLContext(1);
        var random = new Random(1);
        Row Make()
        {
            var f = Enumerable.Range(0, features).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
            return new Row { Features = f, Label = f[0] + (f[1] * f[2]) > 0 };
        }
        var schema = SchemaDefinition.Create(typeof(Row));
        schema[nameof(Row.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, features);
        var train = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 2000).Select(_ => Make()).ToArray(), schema);
        var test = ml.Data.LoadFromEnumerable(Enumerable.Range(0, rowCount).Select(_ => Make()).ToArray(), schema);
        var single = Enumerable.Range(0, 2000).Select(_ => Make()).ToArray();
        var options = new MemoryFormerTabularOptions { Epochs = 1, EnsembleSize = 1, NumericEmbedding = embedding };
        using var model = ml.BinaryClassification.Trainers.MemoryFormerTabular(options).Fit(train);
        using var engine = ml.Model.CreatePredictionEngine<Row, Scored>(model, inputSchemaDefinition: schema);
        var transform = new Dictionary<bool, List<double>> { [true] = [], [false] = [] };
        var engines = new Dictionary<bool, List<double>> { [true] = [], [false] = [] };
        for (int round = 0; round <= rounds; round++)
            foreach (bool fused in round % 2 == 0 ? new[] { true, false } : new[] { false, true })
            {
                foreach (var member in model.Ensemble.Members) member.UseFusedScoring = fused;
                long start = System.Diagnostics.Stopwatch.GetTimestamp();
                int scored = model.Transform(test).GetColumn<float>("Score").Count();
                double transformSeconds = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
                start = System.Diagnostics.Stopwatch.GetTimestamp();
                foreach (var row in single) engine.Predict(row);
                double engineSeconds = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
                if (round == 0) continue;                                       // warm-up
                transform[fused].Add(scored / transformSeconds);
                engines[fused].Add(single.Length / engineSeconds);
            }
        return (transform.ToDictionary(p => p.Key, p => Timing.Median(p.Value)), engines.ToDictionary(p => p.Key, p => Timing.Median(p.Value)));
    }
}
