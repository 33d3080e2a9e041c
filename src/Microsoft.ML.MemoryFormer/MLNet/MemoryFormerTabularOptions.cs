using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// Options of the MemoryFormer trainers on a Features vector (<c>MemoryFormerTabular</c> on the regression, binary and
/// multiclass catalogs). Defaults suit a few thousand to a few hundred thousand rows of up to ~100 slots on a CPU (smaller
/// tables get a longer budget, see <see cref="SizeAwareDefaults"/>); the
/// options every trainer shares are in <see cref="MemoryFormerTrainerOptions"/>.
/// </summary>
public sealed class MemoryFormerTabularOptions : MemoryFormerTrainerOptions
{
    /// <summary>Sets the tabular defaults: at most 30 epochs of 256 rows, weight decay 1e-5, 10% of the rows held out
    /// for early stopping with patience 5; with <see cref="SizeAwareDefaults"/>, small tables get a longer budget.</summary>
    public MemoryFormerTabularOptions()
    {
        Epochs = DefaultEpochs;
        BatchSize = DefaultBatchSize;
        WeightDecay = 1e-5;
        ValidationFraction = DefaultValidationFraction;
        EarlyStoppingPatience = DefaultPatience;
    }

    private const int DefaultEpochs = 30;
    private const int DefaultBatchSize = 256;
    private const double DefaultValidationFraction = 0.1;
    private const int DefaultPatience = 5;

    /// <summary>Fewer training rows than this count as a small table for <see cref="SizeAwareDefaults"/>.</summary>
    public const int SmallTableRows = 2000;

    /// <summary>From this many input rows up a table counts as large for <see cref="SizeAwareDefaults"/>.</summary>
    public const int LargeTableRows = 10_000;

    /// <summary>
    /// When true (the default), Fit adapts the run to the number of input rows. Below <see cref="SmallTableRows"/> rows,
    /// each of <see cref="MemoryFormerTrainerOptions.BatchSize"/>, <see cref="MemoryFormerTrainerOptions.Epochs"/>,
    /// <see cref="MemoryFormerTrainerOptions.EarlyStoppingPatience"/> and <see cref="MemoryFormerTrainerOptions.ValidationFraction"/>
    /// still at its default becomes 32, 100, 15 and 0.15 (the settings of the tabular benchmarks on penguins and housing,
    /// docs/benchmarks.md): 256-row batches would leave a few hundred rows one or two steps per epoch, and 30 epochs
    /// stop such a run after well under a second. From <see cref="LargeTableRows"/> rows up, <see cref="NumericEmbedding"/>
    /// and <see cref="GroupOneHotSlots"/> left null become <see cref="TabularNumericEmbedding.PiecewiseLinear"/> and true
    /// (see <see cref="NumericEmbedding"/> for the measurements). Options you set yourself are kept.
    /// </summary>
    public bool SizeAwareDefaults = true;

    /// <summary>These options for <paramref name="rows"/> input rows: a copy (the caller's object is never modified) with
    /// <see cref="NumericEmbedding"/> and <see cref="GroupOneHotSlots"/> resolved and <see cref="SizeAwareDefaults"/> applied,
    /// and what the size changed, for the log (null when it changed nothing).</summary>
    internal (MemoryFormerTabularOptions Options, string? Note) ForRows(long rows)
    {
        var copy = Copy();
        bool large = SizeAwareDefaults && rows >= LargeTableRows;
        copy.NumericEmbedding ??= large ? TabularNumericEmbedding.PiecewiseLinear : TabularNumericEmbedding.Linear;
        copy.GroupOneHotSlots ??= large;
        if (large && (NumericEmbedding is null || GroupOneHotSlots is null))
            return (copy, $"large table: numeric embedding {copy.NumericEmbedding}, one token per one-hot column " +
                $"{(copy.GroupOneHotSlots == true ? "on" : "off")} (SizeAwareDefaults)");
        if (!SizeAwareDefaults || rows >= SmallTableRows) return (copy, null);
        if (BatchSize == DefaultBatchSize) copy.BatchSize = 32;
        if (Epochs == DefaultEpochs && MaxSteps is null) copy.Epochs = 100;
        if (EarlyStoppingPatience == DefaultPatience) copy.EarlyStoppingPatience = 15;
        if (ValidationFraction == DefaultValidationFraction && ValidationSet is null) copy.ValidationFraction = 0.15;
        return (copy, $"small table: batch {copy.BatchSize}, at most {copy.Epochs} epochs, patience {copy.EarlyStoppingPatience}, " +
            $"hold-out {copy.ValidationFraction:P0} (SizeAwareDefaults)");
    }

    /// <summary>Members of a small table's ensemble when <see cref="EnsembleSize"/> is null.</summary>
    public const int SmallTableEnsembleSize = 5;

    /// <summary>Most members <see cref="EnsembleSize"/> may ask for.</summary>
    public const int MaxEnsembleSize = TabularEnsemblePredictor.MaxMembers;

    /// <summary>
    /// k, the models of a deep ensemble (Lakshminarayanan et al. 2017): Fit trains k models that differ only in their seed
    /// (<see cref="MemoryFormerTrainerOptions.Seed"/>, Seed + 1, …; member i is the model a single run with seed Seed + i
    /// would give, hold-out included), one after another through the same training loop, and the transformer predicts
    /// their mean (regression: the mean value; classification: the mean class probabilities). Null (the default) picks by
    /// size: <see cref="SmallTableEnsembleSize"/> members below <see cref="SmallTableRows"/> input rows when
    /// <see cref="SizeAwareDefaults"/> is on (there k fits stay short, and averaging 5 seeds took housing's test RMSE
    /// from 3.63 for the mean single model to 3.11, below LightGBM's 3.26, docs/benchmarks.md), 1 otherwise. Between 1 and <see cref="MaxEnsembleSize"/>. Training and
    /// scoring cost k times one model's; ONNX export writes every member into one graph that averages them. On a large table the gain is smaller: on
    /// adult (26k training rows) five members with every other option at its default gave 87.4–87.6 % test accuracy and AUC
    /// 0.930–0.931 against 87.0 % and 0.926 for a single model, and on the development split 86.9–87.0 % against 86.5 %,
    /// above FastTree's 86.6 % there (docs/benchmarks.md, "Tabular: adult, deep ensembles of the defaults"), so large
    /// tables keep one model unless five times the training and scoring time is worth about half a point. Members after the first write their
    /// checkpoints to <see cref="MemoryFormerTrainerOptions.CheckpointPath"/> + ".member{i}".
    /// </summary>
    public int? EnsembleSize;

    /// <summary>The number of ensemble members for <paramref name="rows"/> input rows (see <see cref="EnsembleSize"/>).</summary>
    internal int EnsembleSizeFor(long rows) =>
        EnsembleSize ?? (SizeAwareDefaults && rows < SmallTableRows ? SmallTableEnsembleSize : 1);

    /// <summary>A shallow copy of every field (including ones added later), for callers that vary a setting per run.</summary>
    internal MemoryFormerTabularOptions Copy() => (MemoryFormerTabularOptions)MemberwiseClone();

    /// <summary>These options for ensemble member <paramref name="member"/> (0-based) trained with <paramref name="seed"/>:
    /// a copy with that seed, one member, and its own checkpoint file.</summary>
    internal MemoryFormerTabularOptions ForMember(int member, int seed)
    {
        var copy = (MemoryFormerTabularOptions)MemberwiseClone();
        copy.Seed = seed;
        copy.EnsembleSize = 1;
        if (member > 0 && CheckpointPath is not null) copy.CheckpointPath = $"{CheckpointPath}.member{member}";
        return copy;
    }

    /// <summary>The known-size Single vector column to learn from (NaN = missing value). Default "Features".</summary>
    public string FeatureColumnName = "Features";

    /// <summary>The label: Single for regression, Boolean for binary, a UInt32 key for multiclass. Default "Label".</summary>
    public string LabelColumnName = "Label";

    /// <summary>
    /// An optional Single column of example weights, as ML.NET's trainers take it: each training row's loss counts in
    /// proportion to its weight (Σ wᵢ·lossᵢ / Σ wᵢ over a batch), so a weight of 0 leaves a row out and 2 counts it twice.
    /// Weights must be finite and ≥ 0, with at least one above 0; a <see cref="MemoryFormerTrainerOptions.ValidationSet"/>
    /// needs the column too. Validation (its loss and metric, so early stopping) weighs the rows the same way, unless every
    /// validation weight is 0, and so do target encodings (weighted means) and the tree bins of piecewise-linear embeddings
    /// (weighted impurities; quantile bins and the hold-out count rows). Not saved with the model (scoring never reads it). Default null: every row counts once.
    /// </summary>
    public string? ExampleWeightColumnName;

    /// <summary>The architecture (width, blocks, heads, τ, dropout); its context length is set from the feature count.
    /// Default <see cref="TabularPresets.Small"/>.</summary>
    public MemoryFormerConfig Architecture = TabularPresets.Small;

    /// <summary>
    /// How numeric slots become tokens: <see cref="TabularNumericEmbedding.Linear"/> (FT-Transformer),
    /// <see cref="TabularNumericEmbedding.Periodic"/>, <see cref="TabularNumericEmbedding.PeriodicLinear"/> or
    /// <see cref="TabularNumericEmbedding.PiecewiseLinear"/> (Gorishniy et al. 2022). Saved with the model; every kind exports
    /// to ONNX. Null (the default) picks by size: piecewise-linear with <see cref="TabularBinning.Tree"/> bins, together with
    /// <see cref="GroupOneHotSlots"/>, from <see cref="LargeTableRows"/> input rows up when <see cref="SizeAwareDefaults"/> is on,
    /// linear otherwise. Measured with the trainer's defaults on adult (docs/benchmarks.md, "Tabular: size-aware numeric
    /// embeddings"): on 20,825 training rows the pair gave 0.861–0.868 development accuracy against linear tokens' 0.853 and
    /// trained 2.3–3.4 times faster (on the test split 87.0 ± 0.2 % over three seeds with today's code, against 85.3 %); on ≈ 10,400 rows it was level and 7–11 times
    /// faster; on ≈ 2,600 rows it was no better than linear (one seed ahead, one behind, lower AUC on both), and on 400-row
    /// housing piecewise-linear tokens overfit (RMSE 4.18 against 3.70).
    /// </summary>
    public TabularNumericEmbedding? NumericEmbedding;

    /// <summary>k, learned frequencies per slot of periodic embeddings. Default 16.</summary>
    public int PeriodicFrequencies = 16;

    /// <summary>σ of the N(0, σ²) initialisation of the periodic frequencies, on standardised features (the paper tunes it;
    /// small values start close to a smooth function of the value). Default 0.1.</summary>
    public double PeriodicScale = 0.1;

    /// <summary>T, the most bins per slot of <see cref="TabularNumericEmbedding.PiecewiseLinear"/> embeddings (a slot gets
    /// fewer when it has fewer distinct values or the tree finds fewer useful splits; one-hot slots get one). Between 1 and
    /// 256. Default 16.</summary>
    public int PiecewiseLinearBins = 16;

    /// <summary>How the bin edges of <see cref="TabularNumericEmbedding.PiecewiseLinear"/> embeddings are chosen on the
    /// training rows: <see cref="TabularBinning.Tree"/> (target-aware, the default) or <see cref="TabularBinning.Quantile"/>.</summary>
    public TabularBinning PiecewiseLinearBinning = TabularBinning.Tree;

    /// <summary>
    /// <see cref="TabularBinning.Tree"/> bins: the fewest training rows a bin may hold. Null (the default) takes a quarter
    /// of an equal share of the rows per bin, between 1 and 64 (64 from 16,384 rows up at 16 bins). Smaller values let
    /// the tree isolate rare values that carry the label on their own (on adult, single capital-gain amounts of a few
    /// dozen rows), at the risk of bins fitted to noise. Measured on adult (docs/benchmarks.md, "Tabular: adult, round 6"):
    /// 8 rows a bin, with 16 or 64 bins, moved development-split accuracy by +0.2 points at most (within the seed noise)
    /// and did not teach the model those amounts; one-hot encoding such code-like columns by value in the featurization
    /// did better. At least 1; read only by tree binning (it changes the edges, which are saved with the model, and
    /// nothing else).
    /// </summary>
    public int? PiecewiseLinearMinLeafRows;

    /// <summary>
    /// When true, each categorical column one-hot encoded into the Features vector becomes ONE token with a learned
    /// embedding per category (FT-Transformer's categorical tokenizer, Gorishniy et al. 2021) instead of one token per
    /// one-hot slot: Fit finds the groups on the training rows (runs of adjacent slots that are all 0 or 1 with at most
    /// one 1 per row, as <c>OneHotEncoding</c> + <c>Concatenate</c> write them), keeps their slots raw and sums their
    /// tokens. Fewer tokens make each step cheaper (adult: 14 instead of 108). Adjacent 0/1 flags that are never 1 together
    /// in the training rows are grouped too (their summed token still tells them apart). With
    /// <see cref="TabularNumericEmbedding.PiecewiseLinear"/> it took adult from 86.45 % to 87.0 % accuracy; with linear
    /// tokens it changed nothing measurable (docs/benchmarks.md). Saved with the model and in ONNX exports. Null (the default)
    /// picks by size as <see cref="NumericEmbedding"/> does: on from <see cref="LargeTableRows"/> input rows up with
    /// <see cref="SizeAwareDefaults"/>, off otherwise.
    /// </summary>
    public bool? GroupOneHotSlots;

    /// <summary>
    /// Label smoothing of the training cross-entropy of the classification trainers (Szegedy et al. 2016): the target puts
    /// this share of its mass uniformly over all classes. Validation and early stopping use the plain metric. Training only
    /// (nothing is saved with the model); the regression trainer refuses a non-zero value. In [0, 1). Default 0 (off): 0.1
    /// left adult's accuracy where it was (0.8699 vs 0.8703, AUC 0.9256 vs 0.9257; docs/benchmarks.md, "Tabular: adult,
    /// round 4"); it softens the probabilities, which may help calibration more than accuracy.
    /// </summary>
    public double LabelSmoothing;

    /// <summary>
    /// When true, every numeric slot with few distinct values (at most <see cref="ValueCategoryMaxDistinct"/>) or a spike
    /// (one value in at least half of the non-missing training rows, as adult's capital-gain, 0 in 92 % of the rows) also
    /// gets a categorical token: each of its values held by at least <see cref="ValueCategoryMinRows"/> training rows (at
    /// most 256, the most frequent) gets a learned embedding, every other value and NaN share one. The slot keeps its numeric
    /// token too. Found on the training rows only (the hold-out excluded) and saved with the model; slots that are all 0/1
    /// never qualify. It does inside the trainer what one-hot encoding such a column by value in the featurization does:
    /// on adult's development split (Medium, four seeds; docs/benchmarks.md, "Tabular: adult, round 9") it found
    /// capital-gain, capital-loss and education-num, got the rare-amount rows right as often as FastTree or more, and left
    /// accuracy level with the featurization's (86.8 % against 86.7 %, within the seed noise).
    /// Exports to ONNX. Default false.
    /// </summary>
    public bool AutomaticValueCategories;

    /// <summary><see cref="AutomaticValueCategories"/>: a numeric slot with at most this many distinct training values
    /// qualifies (a spike qualifies whatever its count). At least 2. Default 16.</summary>
    public int ValueCategoryMaxDistinct = 16;

    /// <summary><see cref="AutomaticValueCategories"/>: the fewest training rows a value needs to get its own category.
    /// At least 1. Default 8.</summary>
    public int ValueCategoryMinRows = 8;

    /// <summary>
    /// K ≥ 2: each categorical group of slots (a one-hot encoded column found as <see cref="GroupOneHotSlots"/> finds it,
    /// whether or not that option is on, and each slot's <see cref="AutomaticValueCategories"/>) gets extra numeric slots
    /// holding the smoothed mean of the label over the training rows of the row's category (target encoding,
    /// Micci-Barreca 2001; one slot for regression and binary, one per class for multiclass), with
    /// <see cref="TargetEncodingSmoothing"/> rows of the overall mean mixed in. The training rows are encoded out of fold: they
    /// are dealt into K folds by the seed, and each fold gets the statistics of the other K − 1, so no row sees its own label;
    /// the hold-out and scored rows get the statistics of every training row, which are saved with the model. The new slots
    /// are embedded like any numeric slot. On adult's development split (Medium, four seeds; docs/benchmarks.md, "Tabular:
    /// adult, round 9") K = 5 raised AUC by 0.003 and lowered log-loss by 0.005 but left accuracy where it was (86.6 %
    /// against 86.7 %); it adds a token per categorical column. Exports to ONNX. 0 (the default) is off.
    /// </summary>
    public int TargetEncodingFolds;

    /// <summary><see cref="TargetEncodingFolds"/>: m, the weight in rows of the overall label mean in each category's
    /// encoding, (Σ y + m · mean) / (n + m). Positive. Default 10.</summary>
    public double TargetEncodingSmoothing = 10;

    /// <summary>The expansion these options ask for.</summary>
    internal Data.ExpansionSettings Expansion => new(AutomaticValueCategories, ValueCategoryMaxDistinct, ValueCategoryMinRows,
        TargetEncodingFolds, TargetEncodingSmoothing);

    /// <summary>The former name of <see cref="MemoryFormerTrainerOptions.Epochs"/>.</summary>
    [Obsolete("Use Epochs: every MemoryFormer trainer names the passes over the data Epochs.")]
    public int MaxEpochs
    {
        get => Epochs;
        set => Epochs = value;
    }

    private protected override string OptionsName => nameof(MemoryFormerTabularOptions);

    internal override void Validate()
    {
        base.Validate();
        Check(Architecture is not null, nameof(Architecture), "must not be null");
        Architecture!.Validate();
        Check(!string.IsNullOrEmpty(FeatureColumnName), nameof(FeatureColumnName), "must name a column");
        Check(!string.IsNullOrEmpty(LabelColumnName), nameof(LabelColumnName), "must name a column");
        Check(ExampleWeightColumnName is null || ExampleWeightColumnName.Length > 0, nameof(ExampleWeightColumnName),
            "must be null (no weights) or name a column");
        Check(NumericEmbedding is not { } embedding || Enum.IsDefined(embedding), nameof(NumericEmbedding),
            $"must be null (by table size) or one of {string.Join(", ", Enum.GetNames<TabularNumericEmbedding>())}");
        Check(PeriodicFrequencies is >= 1 and <= TabularPredictor.MaxPeriodicFrequencies, nameof(PeriodicFrequencies),
            $"must be between 1 and {TabularPredictor.MaxPeriodicFrequencies}");
        Check(PeriodicScale > 0 && double.IsFinite(PeriodicScale), nameof(PeriodicScale), "must be a positive number");
        Check(PiecewiseLinearBins is >= 1 and <= TabularPredictor.MaxBins, nameof(PiecewiseLinearBins),
            $"must be between 1 and {TabularPredictor.MaxBins}");
        Check(Enum.IsDefined(PiecewiseLinearBinning), nameof(PiecewiseLinearBinning),
            $"must be one of {string.Join(", ", Enum.GetNames<TabularBinning>())}");
        Check(PiecewiseLinearMinLeafRows is null or >= 1, nameof(PiecewiseLinearMinLeafRows), "must be null (the default rule) or at least 1");
        Check(ValueCategoryMaxDistinct >= 2, nameof(ValueCategoryMaxDistinct), "must be at least 2");
        Check(ValueCategoryMinRows >= 1, nameof(ValueCategoryMinRows), "must be at least 1");
        Check(TargetEncodingFolds is 0 or (>= 2 and <= 100), nameof(TargetEncodingFolds), "must be 0 (off) or between 2 and 100");
        Check(TargetEncodingSmoothing > 0 && double.IsFinite(TargetEncodingSmoothing), nameof(TargetEncodingSmoothing),
            "must be a positive number");
        Check(LabelSmoothing is >= 0 and < 1, nameof(LabelSmoothing), "must be in [0, 1) (0 = plain cross-entropy)");
        Check(EnsembleSize is null or (>= 1 and <= MaxEnsembleSize), nameof(EnsembleSize),
            $"must be null (by table size) or between 1 and {MaxEnsembleSize}; set 1 for a single model");
    }

    private protected override int WarmupStepsOf(int stepsPerEpoch, int steps) => TabularTraining.WarmupSteps(stepsPerEpoch, steps);

    /// <summary>Tables without weight decay and Adam β₂ = 0.999: the settings the tabular benchmarks were tuned with.</summary>
    private protected override TrainingOptions TaskDefaults(TrainingOptions options) =>
        options with { TableWeightDecay = 0, Beta2 = 0.999 };
}
