using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Tabular;

/// <summary>
/// <c>tabular</c>: MemoryFormer vs ML.NET's LightGBM, FastTree and SDCA on adult (binary), penguins (multiclass) and
/// housing (regression) with fixed splits; prints a table and writes it as Markdown (docs/benchmarks.md).
/// </summary>
internal sealed class TabularCommand : Command<TabularCommand.Settings>
{
    internal sealed class Settings : CommandSettings
    {
        [CommandOption("--data")]
        [Description("Folder with adult.txt, penguins.csv, housing.txt. Default ../shared/data/tabular.")]
        public string Data { get; init; } = Path.Combine("..", "shared", "data", "tabular");

        [CommandOption("--sets")]
        [Description("Comma-separated sets. Default adult,penguins,housing; diabetes, breast_cancer, wine and iris read the folder tools/sklearn-sets.sh fills, flights and randhie the one tools/large-sets.sh fills (pass it as --data).")]
        public string Sets { get; init; } = string.Join(',', TabularDataset.Names);

        [CommandOption("--preset")]
        [Description("MemoryFormer preset: small, medium or large. Default small.")]
        public string Preset { get; init; } = "small";

        [CommandOption("--epochs")]
        [Description("MemoryFormer max epochs; default 2 on sets of 2,000+ training rows, 100 below (with --trainer-defaults: the trainer's).")]
        public int? Epochs { get; init; }

        [CommandOption("--out")]
        [Description("Folder for tabular.md. Default artifacts/bench.")]
        public string Output { get; init; } = Path.Combine("artifacts", "bench");

        [CommandOption("--threads")]
        [Description("torch intra-op threads for MemoryFormer; 0 = torch's default (all cores). Default 0.")]
        public int Threads { get; init; }

        [CommandOption("--embedding")]
        [Description("MemoryFormer numeric embedding: linear, periodic (PLR), periodic-linear (PL) or piecewise-linear (PLE). Default linear; with --trainer-defaults the trainer's size rule.")]
        public string? Embedding { get; init; }

        [CommandOption("--periodic-scale")]
        [Description("σ of the periodic frequencies' initialisation. Default 0.1.")]
        public double PeriodicScale { get; init; } = 0.1;

        [CommandOption("--periodic-frequencies")]
        [Description("k, periodic frequencies per slot. Default 16.")]
        public int PeriodicFrequencies { get; init; } = 16;

        [CommandOption("--bins")]
        [Description("T, most piecewise-linear bins per slot. Default 16.")]
        public int Bins { get; init; } = 16;

        [CommandOption("--min-leaf")]
        [Description("Tree bins: MemoryFormer's PiecewiseLinearMinLeafRows, the fewest rows a bin may hold. Default the trainer's rule.")]
        public int? MinLeaf { get; init; }

        [CommandOption("--binning")]
        [Description("Piecewise-linear bin edges: tree (target-aware) or quantile. Default tree.")]
        public string Binning { get; init; } = "tree";

        [CommandOption("--group-onehot")]
        [Description("MemoryFormer's GroupOneHotSlots: one token per one-hot categorical column instead of one per slot.")]
        public bool GroupOneHot { get; init; }

        [CommandOption("--no-group-onehot")]
        [Description("GroupOneHotSlots off even where --trainer-defaults would turn it on (tables of 10,000+ rows).")]
        public bool NoGroupOneHot { get; init; }

        [CommandOption("--lr")]
        [Description("MemoryFormer learning rate; default the trainer's.")]
        public double? LearningRate { get; init; }

        [CommandOption("--table-lr")]
        [Description("MemoryFormer Memory Layer table learning rate; default the trainer's (3 × lr).")]
        public double? TableLearningRate { get; init; }

        [CommandOption("--weight-decay")]
        [Description("MemoryFormer weight decay of dense matrices; default the trainer's (1e-5).")]
        public double? WeightDecay { get; init; }

        [CommandOption("--batch")]
        [Description("MemoryFormer rows per step; default 256 on sets of 2,000+ training rows, 32 below.")]
        public int? Batch { get; init; }

        [CommandOption("--patience")]
        [Description("MemoryFormer early-stopping patience in epochs; default 3 on sets of 2,000+ training rows, 15 below (with --trainer-defaults: the trainer's).")]
        public int? Patience { get; init; }

        [CommandOption("--validation-fraction")]
        [Description("MemoryFormer hold-out fraction for early stopping; 0 trains on every row for the whole schedule (default: 0.1 on sets of 2,000+ training rows, 0.15 below; with --trainer-defaults: the trainer's).")]
        public double? ValidationFraction { get; init; }

        [CommandOption("--width")]
        [Description("Override the preset's width d.")]
        public int? Width { get; init; }

        [CommandOption("--layers")]
        [Description("Override the preset's number of blocks.")]
        public int? Layers { get; init; }

        [CommandOption("--heads")]
        [Description("Override the preset's attention heads.")]
        public int? Heads { get; init; }

        [CommandOption("--tau")]
        [Description("Override the preset's τ, bits per hash chunk (K = d / τ tables of 2^τ rows).")]
        public int? Tau { get; init; }

        [CommandOption("--dropout")]
        [Description("Override the preset's dropout.")]
        public double? Dropout { get; init; }

        [CommandOption("--label-smoothing")]
        [Description("MemoryFormer's LabelSmoothing (classification). Default 0.")]
        public double LabelSmoothing { get; init; }

        [CommandOption("--ema")]
        [Description("MemoryFormer's WeightAveragingDecay: d in [[0, 1), an exponential moving average of the weights used for validation, early stopping and the trained model. Default off.")]
        public double? Ema { get; init; }

        [CommandOption("--min-lr-ratio")]
        [Description("MemoryFormer's MinLearningRateRatio: where the cosine schedule ends, as a fraction of the peak rates (1 = constant after warm-up). Default the trainer's (0.1).")]
        public double? MinLrRatio { get; init; }

        [CommandOption("--auto-value-categories")]
        [Description("MemoryFormer's AutomaticValueCategories: spike or few-valued numeric slots also get a categorical token, found on the training rows.")]
        public bool AutoValueCategories { get; init; }

        [CommandOption("--vc-max-distinct")]
        [Description("MemoryFormer's ValueCategoryMaxDistinct. Default the trainer's (16).")]
        public int? ValueCategoryMaxDistinct { get; init; }

        [CommandOption("--vc-min-rows")]
        [Description("MemoryFormer's ValueCategoryMinRows. Default the trainer's (8).")]
        public int? ValueCategoryMinRows { get; init; }

        [CommandOption("--target-encoding")]
        [Description("MemoryFormer's TargetEncodingFolds K: out-of-fold target encodings of the categorical groups as extra slots. Default 0 (off).")]
        public int TargetEncodingFolds { get; init; }

        [CommandOption("--te-smoothing")]
        [Description("MemoryFormer's TargetEncodingSmoothing m. Default the trainer's (10).")]
        public double? TargetEncodingSmoothing { get; init; }

        [CommandOption("--seed")]
        [Description("MemoryFormer seed. Default 0.")]
        public int Seed { get; init; }

        [CommandOption("--ensemble")]
        [Description("MemoryFormer's EnsembleSize: K models (seeds Seed..Seed+K−1) averaged by the trainer. Default: the trainer's size rule (5 below 2,000 training rows, else 1).")]
        public int? Ensemble { get; init; }

        [CommandOption("--seed-spread")]
        [Description("K > 1: instead of the comparison, train K single MemoryFormer models (seeds Seed..Seed+K−1) and report each, their spread and their averaged prediction.")]
        public int SeedSpread { get; init; } = 1;

        [CommandOption("--memoryformer-only")]
        [Description("Run MemoryFormer only (skip LightGBM, FastTree and SDCA).")]
        public bool MemoryFormerOnly { get; init; }

        [CommandOption("--baselines-only")]
        [Description("Run LightGBM, FastTree and SDCA only (skip MemoryFormer), e.g. to save their predictions on a split whose MemoryFormer predictions a --seed-spread run wrote.")]
        public bool BaselinesOnly { get; init; }

        [CommandOption("--trainer-defaults")]
        [Description("Give MemoryFormer the trainer's own defaults (size-aware) instead of the benchmark's per-size settings.")]
        public bool TrainerDefaults { get; init; }

        [CommandOption("--dev-split")]
        [Description("F in (0, 1): select on the training rows only: train on a (1 − F) part of the training split and score the other F part (TrainTestSplit of the training split, seed 1) instead of the test split. Default 0 (the test split).")]
        public double DevSplit { get; init; }

        [CommandOption("--folds")]
        [Description("K ≥ 2: score fold --fold of a K-fold split of every row (CrossValidationSplit, seed 0) instead of the test split, training on the other folds. Default 0 (the test split).")]
        public int Folds { get; init; }

        [CommandOption("--fold")]
        [Description("With --folds: which fold (0 to K − 1) to score. Default 0.")]
        public int Fold { get; init; }

        [CommandOption("--value-categories")]
        [Description("Comma-separated numeric columns that every model also gets one-hot encoded by value (each distinct value a category, e.g. adult's capital-gain,capital-loss amounts).")]
        public string? ValueCategories { get; init; }

        [CommandOption("--save-predictions")]
        [Description("Binary sets: write every contender's scored probabilities (\"label probability\" lines, {set}-{model}.txt) and the scored rows' raw columns ({set}-rows.tsv) to the --out folder, for row-level comparisons.")]
        public bool SavePredictions { get; init; }

        [CommandOption("--verbose")]
        [Description("Print MemoryFormer's per-epoch log.")]
        public bool Verbose { get; init; }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        if (settings.Threads > 0) TorchSharp.torch.set_num_threads(settings.Threads);
        if (settings.Folds > 0 && settings.DevSplit > 0)
            throw new ArgumentException("--folds and --dev-split each choose the rows to score; give one of them.");
        var results = new List<TabularResult>();
        foreach (var name in settings.Sets.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var ml = new MLContext(seed: 0);
            var set = TabularDataset.Load(ml, settings.Data, name,
                settings.ValueCategories?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
            if (set is null)
            {
                AnsiConsole.MarkupLineInterpolated($"[yellow]Skipped {name}: not found in {Path.GetFullPath(settings.Data)} (developer data set, not part of the repository).[/]");
                continue;
            }
            if (settings.DevSplit > 0) set = set.Development(ml, settings.DevSplit);
            if (settings.Folds > 0) set = set.Fold(ml, settings.Fold, settings.Folds);
            AnsiConsole.MarkupLineInterpolated($"[bold]{set.Name}[/] ({set.Task}): {set.Description}");
            if (settings.SeedSpread > 1)
            {
                Console.WriteLine(TabularEnsemble.Measure(set, Options(settings, set), settings.SeedSpread, settings.Verbose ? Console.WriteLine : null, settings.Output));
                continue;
            }
            var options = Options(settings, set);
            foreach (var contender in TabularContender.All(options, settings.Verbose ? Console.WriteLine : null)
                .Where(c => settings.MemoryFormerOnly ? c.Name == "MemoryFormer" : !settings.BaselinesOnly || c.Name != "MemoryFormer"))
            {
                cancellationToken.ThrowIfCancellationRequested();
                var result = Run(ml, set, contender, options, settings.SavePredictions ? settings.Output : null);
                results.Add(result);
                AnsiConsole.MarkupLineInterpolated($"  {result.Model,-12} {Format(result.Metric1)} {Format(result.Metric2)} train {result.TrainSeconds:F1} s, {result.ScoreRowsPerSecond:N0} rows/s {result.Note}");
            }
        }
        var markdown = ToMarkdown(results, settings);
        Directory.CreateDirectory(settings.Output);
        File.WriteAllText(Path.Combine(settings.Output, "tabular.md"), markdown);
        AnsiConsole.WriteLine(markdown);
        return 0;
    }

    private static MemoryFormerTabularOptions Options(Settings settings, TabularDataset set)
    {
        bool small = CountRows(set.Train) < 2000;
        TabularNumericEmbedding? embedding = settings.Embedding?.ToLowerInvariant() switch
        {
            null => settings.TrainerDefaults ? null : TabularNumericEmbedding.Linear,
            "periodic" => TabularNumericEmbedding.Periodic,
            "periodic-linear" => TabularNumericEmbedding.PeriodicLinear,
            "piecewise-linear" => TabularNumericEmbedding.PiecewiseLinear,
            _ => TabularNumericEmbedding.Linear,
        };
        var options = Base(settings, small, embedding);
        options.GroupOneHotSlots = settings.GroupOneHot ? true : settings.NoGroupOneHot ? false : settings.TrainerDefaults ? null : false;
        if (settings.LearningRate is { } lr) options.LearningRate = lr;
        if (settings.TableLearningRate is { } tableLr) options.TableLearningRate = tableLr;
        if (settings.WeightDecay is { } decay) options.WeightDecay = decay;
        options.LabelSmoothing = settings.LabelSmoothing;
        options.WeightAveragingDecay = settings.Ema;
        options.MinLearningRateRatio = settings.MinLrRatio;
        options.AutomaticValueCategories = settings.AutoValueCategories;
        if (settings.ValueCategoryMaxDistinct is { } distinct) options.ValueCategoryMaxDistinct = distinct;
        if (settings.ValueCategoryMinRows is { } least) options.ValueCategoryMinRows = least;
        options.TargetEncodingFolds = settings.TargetEncodingFolds;
        if (settings.TargetEncodingSmoothing is { } m) options.TargetEncodingSmoothing = m;
        if (settings.Batch is { } batch) options.BatchSize = batch;
        if (settings.Epochs is { } epochs) options.Epochs = epochs;
        if (settings.Patience is { } patience) options.EarlyStoppingPatience = patience;
        if (settings.ValidationFraction is { } fraction) options.ValidationFraction = fraction;
        options.Architecture = options.Architecture with
        {
            Width = settings.Width ?? options.Architecture.Width,
            Layers = settings.Layers ?? options.Architecture.Layers,
            Heads = settings.Heads ?? options.Architecture.Heads,
            BitsPerChunk = settings.Tau ?? options.Architecture.BitsPerChunk,
            Dropout = settings.Dropout ?? options.Architecture.Dropout,
        };
        return options;
    }

    private static MemoryFormerTabularOptions Base(Settings settings, bool small, TabularNumericEmbedding? embedding)
    {
        if (settings.TrainerDefaults)
            return new MemoryFormerTabularOptions
            {
                Architecture = Preset(settings), Seed = settings.Seed, NumericEmbedding = embedding,
                PeriodicScale = settings.PeriodicScale, PeriodicFrequencies = settings.PeriodicFrequencies,
                PiecewiseLinearBins = settings.Bins, PiecewiseLinearBinning = Binning(settings), PiecewiseLinearMinLeafRows = settings.MinLeaf, EnsembleSize = settings.Ensemble,
            };
        return new MemoryFormerTabularOptions
        {
            NumericEmbedding = embedding, PeriodicScale = settings.PeriodicScale, PeriodicFrequencies = settings.PeriodicFrequencies,
            PiecewiseLinearBins = settings.Bins, PiecewiseLinearBinning = Binning(settings), PiecewiseLinearMinLeafRows = settings.MinLeaf,
            Architecture = Preset(settings),
            BatchSize = small ? 32 : 256,
            Epochs = small ? 100 : 2,                                            // --epochs is applied in Options, as for the trainer's defaults
            EarlyStoppingPatience = small ? 15 : 3,
            ValidationFraction = small ? 0.15 : 0.1,
            Seed = settings.Seed,
            EnsembleSize = settings.Ensemble,
        };
    }

    private static TabularBinning Binning(Settings settings) =>
        settings.Binning.Equals("quantile", StringComparison.OrdinalIgnoreCase) ? TabularBinning.Quantile : TabularBinning.Tree;

    private static MemoryFormerConfig Preset(Settings settings) => settings.Preset switch
    {
        "medium" => TabularPresets.Medium,
        "large" => TabularPresets.Large,
        _ => TabularPresets.Small,
    };

    private static TabularResult Run(MLContext ml, TabularDataset set, TabularContender contender, MemoryFormerTabularOptions options,
        string? predictionsFolder)
    {
        var pipeline = set.Featurize.Append(contender.Trainer(ml, set.Task));
        var clock = Stopwatch.StartNew();
        var model = pipeline.Fit(set.Train);
        double trainSeconds = clock.Elapsed.TotalSeconds;
        var scored = model.Transform(set.Test);
        var (m1, m2) = set.Task switch
        {
            TabularTask.Binary => ml.BinaryClassification.Evaluate(scored) is var b ? (b.Accuracy, b.AreaUnderRocCurve) : default,
            TabularTask.Multiclass => ml.MulticlassClassification.Evaluate(scored) is var c ? (c.MacroAccuracy, c.MicroAccuracy) : default,
            _ => ml.Regression.Evaluate(scored) is var r ? (r.RootMeanSquaredError, r.RSquared) : default,
        };
        if (predictionsFolder is not null && set.Task == TabularTask.Binary) TabularPredictions.Save(predictionsFolder, set.Name, contender.Name, scored);
        double rowsPerSecond = ScoringSpeed(model, set.Test);
        string note = (model as TransformerChain<ITransformer>)?.LastTransformer is MemoryFormerTabularTransformer { TrainingResult: { } t }
            ? $"{t.Steps} steps{(t.StoppedEarly ? ", stopped early" : "")}" +
              (t.BestValidationMetric is { } best ? string.Create(CultureInfo.InvariantCulture, $", best validation metric {best:F4}") : "")
            : "";
        if ((model as TransformerChain<ITransformer>)?.LastTransformer is MemoryFormerTabularTransformer { EnsembleSize: > 1 } ensemble)
            note = $"ensemble of {ensemble.EnsembleSize}; first member {note}";
        else if (contender.Name == "MemoryFormer" && set.Task == TabularTask.Binary)
            note += "; " + TabularThreshold.Measure(model, set.Train, scored, options.ValidationFraction, options.Seed ?? 0);
        (model as IDisposable)?.Dispose();
        return new TabularResult(set.Name, set.Task, contender.Name, m1, m2, trainSeconds, rowsPerSecond, note);
    }

    /// <summary>Rows per second of Transform (featurization + model) over the test set, repeated to ≥ 5,000 rows.</summary>
    private static double ScoringSpeed(ITransformer model, IDataView test)
    {
        long rows = 0;
        var clock = Stopwatch.StartNew();
        while (rows < 5000)
        {
            rows += Consume(model.Transform(test));
        }
        return rows / clock.Elapsed.TotalSeconds;
    }

    private static long Consume(IDataView scored)
    {
        var score = scored.Schema["Score"];
        using var cursor = scored.GetRowCursor([score]);
        long n = 0;
        if (score.Type is VectorDataViewType)
        {
            var get = cursor.GetGetter<VBuffer<float>>(score);
            VBuffer<float> v = default;
            while (cursor.MoveNext()) { get(ref v); n++; }
        }
        else
        {
            var get = cursor.GetGetter<float>(score);
            float v = 0;
            while (cursor.MoveNext()) { get(ref v); n++; }
        }
        return n;
    }

    private static long CountRows(IDataView data)
    {
        using var cursor = data.GetRowCursor([]);
        long n = 0;
        while (cursor.MoveNext()) n++;
        return n;
    }

    /// <summary>The knobs set on the command line beyond preset, embedding, seed and lr, for the write-up's footer.</summary>
    private static string Overrides(Settings s) => string.Concat(
        new (string Name, object? Value)[]
        {
            ("table lr", s.TableLearningRate), ("weight decay", s.WeightDecay), ("batch", s.Batch), ("patience", s.Patience),
            ("width", s.Width), ("blocks", s.Layers), ("heads", s.Heads), ("τ", s.Tau), ("dropout", s.Dropout),
            ("label smoothing", s.LabelSmoothing != 0 ? s.LabelSmoothing : null), ("weight averaging decay", s.Ema),
            ("automatic value categories", s.AutoValueCategories ? "on" : null), ("value-category max distinct", s.ValueCategoryMaxDistinct),
            ("value-category min rows", s.ValueCategoryMinRows),
            ("target-encoding folds", s.TargetEncodingFolds != 0 ? s.TargetEncodingFolds : null), ("target-encoding smoothing", s.TargetEncodingSmoothing),
        }.Where(o => o.Value is not null).Select(o => string.Create(CultureInfo.InvariantCulture, $", {o.Name} {o.Value}")));

    private static string Format(double value) => value.ToString("F4", CultureInfo.InvariantCulture);

    private static string ToMarkdown(List<TabularResult> results, Settings settings)
    {
        var text = new StringBuilder();
        foreach (var group in results.GroupBy(r => (r.Set, r.Task)))
        {
            var (first, second) = TabularResult.MetricNames(group.Key.Task);
            text.AppendLine($"**{group.Key.Set}** ({group.Key.Task})").AppendLine();
            text.AppendLine($"| model | {first} | {second} | train s | score rows/s | note |").AppendLine("|---|---|---|---|---|---|");
            foreach (var r in group)
                text.AppendLine(CultureInfo.InvariantCulture, $"| {r.Model} | {Format(r.Metric1)} | {Format(r.Metric2)} | {r.TrainSeconds:F1} | {r.ScoreRowsPerSecond:N0} | {r.Note} |");
            text.AppendLine();
        }
        text.AppendLine($"Machine at the start of the write-up: {Perf.MachineFigures.Measure()}.");
        var embedding = settings.Embedding ?? (settings.TrainerDefaults ? "by table size" : "linear");
        text.AppendLine($"MemoryFormer preset {settings.Preset}, numeric embedding {embedding}" +
            (embedding is "piecewise-linear" or "by table size" ? $" ({settings.Bins} {settings.Binning} bins{(settings.MinLeaf is { } m ? $", at least {m} rows a bin" : "")})"
                : embedding != "linear" ? $" (k = {settings.PeriodicFrequencies}, σ = {settings.PeriodicScale})" : "") +
            $", seed {settings.Seed}" + (settings.DevSplit > 0 ? $", scored on a {settings.DevSplit} development split of the training rows" : "") + (settings.Folds > 0 ? $", scored on fold {settings.Fold} of {settings.Folds}" : "") + (settings.Ensemble is { } k ? $", EnsembleSize {k}" : ", EnsembleSize by size") +
            (settings.ValueCategories is { } values ? $", value categories {values}" : "") + (settings.TrainerDefaults ? ", trainer defaults" : "") + (settings.GroupOneHot ? ", one-hot groups" : settings.NoGroupOneHot ? ", no one-hot groups" : "") +
            (settings.LearningRate is { } lr ? $", lr {lr}" : "") + Overrides(settings) + $", torch threads {(settings.Threads > 0 ? settings.Threads : TorchSharp.torch.get_num_threads())}; splits: TrainTestSplit(testFraction 0.2, seed 0); MLContext(seed 0).");
        return text.ToString();
    }
}
