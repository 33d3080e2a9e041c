using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using Microsoft.ML.MemoryFormer.Training;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// Options of the MemoryFormer text classifiers (<c>mlContext.MulticlassClassification.Trainers.MemoryFormerTextClassification</c>
/// and <c>mlContext.BinaryClassification.Trainers.MemoryFormerTextClassification</c>). Every field has a default that
/// trains a small encoder from scratch on a CPU; the device follows <see cref="MLContext.GpuDeviceId"/> and
/// <see cref="MLContext.FallbackToCpu"/>. The options every trainer shares are in <see cref="MemoryFormerTrainerOptions"/>.
/// </summary>
public sealed class MemoryFormerTextClassificationOptions : MemoryFormerTrainerOptions
{
    /// <summary>
    /// Sets the text classifier's defaults: 5 epochs of 32 rows, weight decay 0.01, no validation unless a
    /// <see cref="MemoryFormerTrainerOptions.ValidationSet"/> is given or <see cref="MemoryFormerTrainerOptions.ValidationFraction"/>
    /// and <see cref="MemoryFormerTrainerOptions.EarlyStoppingPatience"/> are set, and a 10 % calibration hold-out
    /// (<see cref="CalibrationFraction"/>) that fits a softmax temperature before the model is trained again on every
    /// row. Chosen from measurements (docs/benchmarks.md, "Calibrated probabilities with the flat defaults"): on
    /// banking77 (2,000 rows), moby15, wikitext15 and sms_spam they keep accuracy above FeaturizeText + SDCA's and bring log-loss
    /// to SDCA's or below, where the earlier defaults (10 epochs, no calibration) gave 1.2–1.7× SDCA's log-loss.
    /// Set <c>Epochs = 10, CalibrationFraction = 0</c> for the earlier behaviour. Early stopping on a 10 % hold-out
    /// (ValidationFraction = 0.1, EarlyStoppingPatience = 2) also fits the temperature, but cost accuracy on the
    /// smallest set per class (banking77 cut to 2,000 rows: 75.5 % vs SDCA's 76.0 %).
    /// </summary>
    public MemoryFormerTextClassificationOptions()
    {
        Epochs = 5;
        BatchSize = 32;
        WeightDecay = 0.01;
    }

    /// <summary>The label column: a key (multiclass; apply MapValueToKey first) or a Boolean (binary). Default "Label".</summary>
    public string LabelColumnName = "Label";

    /// <summary>The text column to classify. Default "Text".</summary>
    public string TextColumnName = "Text";

    /// <summary>An optional second text column for sentence pairs; the two texts are joined with a separator token.</summary>
    public string? SecondTextColumnName;

    /// <summary>
    /// An optional Single column of example weights, as ML.NET's trainers take it: each training row's loss counts in
    /// proportion to its weight (Σ wᵢ·lossᵢ / Σ wᵢ over a batch, on top of any <see cref="ClassWeighting"/>), so a weight of
    /// 0 leaves a row out and 2 counts it twice. Weights must be finite and ≥ 0, with at least one above 0; a
    /// <see cref="MemoryFormerTrainerOptions.ValidationSet"/> needs the column too. Validation (its loss and accuracy, so
    /// early stopping) and the temperature fit weigh the rows the same way, unless every validation weight is 0; the
    /// hold-outs are drawn without them. Not saved with the model. Default null: every row counts once.
    /// </summary>
    public string? ExampleWeightColumnName;

    /// <summary>Name of the Score output column. Default "Score".</summary>
    public string ScoreColumnName = "Score";

    /// <summary>Name of the PredictedLabel output column. Default "PredictedLabel".</summary>
    public string PredictedLabelColumnName = "PredictedLabel";

    /// <summary>
    /// The encoder's architecture (width, blocks, heads, τ, MemoryFormer or dense); null = a small preset
    /// (d = 128, 2 blocks, 4 heads, τ = 8). Its vocabulary size and context length are set from the tokenizer and
    /// <see cref="MaxTokensPerRow"/>. Ignored with a pretrained backbone, whose architecture is kept.
    /// </summary>
    public MemoryFormerConfig? Architecture;

    /// <summary>The tokenizer; null = GPT-2's byte-pair encoding, or the pretrained checkpoint's tokenizer.</summary>
    public ITextTokenizer? Tokenizer;

    /// <summary>
    /// Longest token window, start and separator tokens included (default 128); a single text longer than one window
    /// is read as up to <see cref="MaxWindowsPerRow"/> windows. Truncation policy: each text keeps its first tokens;
    /// for sentence pairs (always one window) the longer text is shortened first. Only the head of a long text that
    /// the windows can hold is tokenized, so a 1 MB row costs about as much as a short one (docs/reliability.md, "Bad
    /// data"). Batches are padded to their longest window only.
    /// </summary>
    public int MaxTokensPerRow = 128;

    /// <summary>
    /// Most windows read from one long text (default 4, i.e. the first 4 × 127 = 508 tokens with the default window).
    /// A text longer than one window is cut into ⌈tokens ÷ (<see cref="MaxTokensPerRow"/> − 1)⌉ windows as
    /// <see cref="WindowLayout"/> says (by default windows of equal length, ± 1 token), each starting with the end-of-text
    /// token; the encoder scores every window and the row's logits are the mean of its
    /// windows' logits, in training and in scoring. Rows that fit one window, and sentence pairs, are scored exactly
    /// as with 1. Training and scoring cost grow with the windows read: a batch of long rows holds up to
    /// <see cref="MemoryFormerTrainerOptions.BatchSize"/> × this many windows. Saved with the model. The default reads
    /// paragraphs of up to about 2,000 characters whole; with it the classifier beat FeaturizeText + SDCA on accuracy on
    /// the long-document proxies of docs/benchmarks.md ("Long documents and flat defaults"); other counts were not measured.
    /// </summary>
    public int MaxWindowsPerRow = 4;

    /// <summary>
    /// How a text longer than one window is cut into its windows, in training and in scoring alike (saved with the model,
    /// so the two always match; models saved before this option load as <see cref="Configuration.WindowLayout.LastMovedBack"/>
    /// and score as before). Rows that fit one window and sentence pairs are cut the same way by every layout: on such data
    /// the trained model is the same bit for bit. <see cref="Configuration.WindowLayout.Even"/> (default since 2026-12-06):
    /// the windows a row needs, of equal length (± 1), no token read twice: on long paragraphs ≈ 0.79 of the window tokens
    /// and ≈ 0.70 of the attention work of <see cref="Configuration.WindowLayout.LastMovedBack"/>, ≈ 1.1× its scoring rows/s
    /// idle. Trained and scored with it at the flat defaults (5 epochs, every row, one thread; docs/benchmarks.md, "Scoring,
    /// sixth round") it was ahead on average on every long-document set: moby15 +1.56 points and −0.017 log-loss,
    /// wikitext15 +1.99 and −0.080 (three seeds each), mixed15 +1.16 and −0.011 (one seed); in a shorter setting (two
    /// seeds, 3 epochs, ≤ 2,000 rows) +1.17, +0.34 and −0.77 points. <see cref="Configuration.WindowLayout.LastMovedBack"/>
    /// (the default before): every window full, the last one moved back so that it repeats the end of its predecessor
    /// (≈ 21 % of the window tokens read twice). <see cref="Configuration.WindowLayout.ShortLast"/>: full windows and a
    /// shorter last one (scored with a model trained otherwise it raised the log-loss on every long-document set: a last
    /// window of a few tokens gets a full vote). Measurements: docs/benchmarks.md, "Windows in training too".
    /// A model trained with a layout other than <see cref="Configuration.WindowLayout.LastMovedBack"/> asks for a reader
    /// from 2026-12-06 on; older library versions score it with the old layout.
    /// </summary>
    public WindowLayout WindowLayout = WindowLayout.Even;

    /// <summary>
    /// The precision the trained model's fused CPU scoring encoder gathers its Memory Layer rows in, saved with the model
    /// (models saved before this option load as <see cref="InferencePrecision.Float32"/> and score exactly as before).
    /// <see cref="InferencePrecision.Float32"/> (default): the fp32 tables. <see cref="InferencePrecision.BFloat16"/>: bf16
    /// copies of the tables made when the model is built or loaded (half the bytes, fp32 accumulation; norms, hashes,
    /// attention and the head stay fp32), as <c>UseInferencePrecision(BFloat16)</c> on the transformer does; training and
    /// the calibration temperature are unchanged (fitted in fp32). <see cref="InferencePrecision.Int8"/> is not implemented
    /// for scoring. The transformer's <c>UseInferencePrecision</c> switches a loaded model either way without changing what
    /// is saved. Speed and accuracy cost: docs/benchmarks.md (issue 16, "Scoring, sixth round").
    /// </summary>
    public InferencePrecision ScoringPrecision = InferencePrecision.Float32;

    /// <summary>
    /// After training, fit a softmax temperature on the validation rows (<see cref="MemoryFormerTrainerOptions.ValidationSet"/>,
    /// or the hold-out of <see cref="MemoryFormerTrainerOptions.ValidationFraction"/> when early stopping is on) to
    /// minimise their log-loss, and divide the logits by it when scoring (temperature scaling, Guo et al. 2017).
    /// Predicted labels do not change; probabilities get better calibrated. Without validation rows the temperature is
    /// fitted on the <see cref="CalibrationFraction"/> hold-out instead (none when that is 0 or too small). Default true.
    /// </summary>
    public bool CalibrateTemperature = true;

    /// <summary>
    /// Share of the training rows held out only to fit the temperature when there are no validation rows (no
    /// <see cref="MemoryFormerTrainerOptions.ValidationSet"/>, no early-stopping hold-out): stratified per class and
    /// seeded, never a class's last row; the model trains on the rest with no early stopping, then the temperature is
    /// fitted on the held-out rows (see <see cref="CalibrationRefit"/>). No rows are held out when that would give
    /// fewer than 2 per class on average (tiny data sets train on every row, uncalibrated). 0 turns it off (the
    /// behaviour before this option: uncalibrated probabilities without validation rows). Ignored when
    /// <see cref="CalibrateTemperature"/> is false or validation rows exist (the temperature is then fitted on them).
    /// Default 0.1; in [0, 0.5].
    /// </summary>
    public double CalibrationFraction = 0.1;

    /// <summary>
    /// With <see cref="CalibrationFraction"/> &gt; 0: after fitting the temperature on the held-out rows, train the
    /// model again from the same seed on every row and keep that temperature ("fit T, then refit"). The predictions are
    /// then exactly those of a run without calibration, at about (2 − <see cref="CalibrationFraction"/>) × its training
    /// time (with the default 5 epochs, about the time 10 epochs took before); false keeps the model trained without the
    /// held-out rows (cheaper, sees fewer rows). Default true.
    /// </summary>
    public bool CalibrationRefit = true;

    /// <summary>
    /// Label smoothing of the training cross-entropy (Szegedy et al. 2016): the target puts this share of its mass
    /// uniformly over all classes, which discourages over-confident logits. Validation log-loss is always the plain
    /// one. Default 0 (off): 0.1 lowered accuracy on banking77 with 2,000 rows (76.5 vs 77.6 %) and did not lower
    /// log-loss more than the temperature does (docs/benchmarks.md). In [0, 1).
    /// </summary>
    public double LabelSmoothing;

    /// <summary>How the row's hidden states are pooled before the linear head (default mean over real tokens).</summary>
    public PoolingKind Pooling = PoolingKind.Mean;

    /// <summary>
    /// Rows of the optional wide branch's hash table (default 0 = off): each window's token n-grams (up to
    /// <see cref="NgramLength"/>) are hashed into this many rows of a [buckets, d] table, averaged, and added to the
    /// pooled encoder output in front of the head's linear layer (a fastText-style bag of n-grams, Joulin et al. 2017),
    /// in training, scoring and the ONNX export. It costs buckets × d parameters (8.4 M for 65,536 buckets at d = 128),
    /// saved with the model. Off by default because it did not help where it was measured: with 65,536 buckets it
    /// lowered accuracy on wikitext15 (86.2 vs 87.9 %) and banking77 (2,000 rows: 77.1 vs 77.6 %) and trained longer
    /// (docs/benchmarks.md, "Long documents and flat defaults"). Allowed in [0, 16,777,216]. Models saved before
    /// this option existed load with the branch off.
    /// </summary>
    public int NgramBuckets;

    /// <summary>Longest token n-gram the wide branch hashes (default 2: token unigrams and bigrams); in [1, 3].
    /// Ignored when <see cref="NgramBuckets"/> is 0. Saved with the model.</summary>
    public int NgramLength = 2;

    /// <summary>Fraction of all steps spent warming the learning rates up linearly, before a cosine decay. Default 0.1.</summary>
    public double WarmupFraction = 0.1;

    /// <summary>Dropout in the blocks and before the head. Default 0.1.</summary>
    public double Dropout = 0.1;

    /// <summary>How classes are weighted in the loss (default none; <see cref="ClassWeighting.Balanced"/> for imbalanced labels).</summary>
    public ClassWeighting ClassWeighting;

    /// <summary>Explicit loss weight per class (index = key − 1; binary: [false, true]); overrides <see cref="ClassWeighting"/>.</summary>
    public float[]? ClassWeights;

    /// <summary>
    /// A checkpoint file saved by the MemoryFormer language-model trainer (config, tokenizer, weights): its backbone
    /// and tokenizer are fine-tuned with a new head.
    /// </summary>
    public string? PretrainedCheckpointPath;

    /// <summary>A language model in memory whose backbone is fine-tuned (set <see cref="Tokenizer"/> to its tokenizer).</summary>
    public LanguageModel? PretrainedModel;

    /// <summary>
    /// Optional rows of text that belong to none of the classes: general sentences, or queries known to be out of scope.
    /// They are trained to give every class the same probability (outlier exposure: the cross-entropy to the uniform
    /// distribution, weighted by <see cref="OutlierLossWeight"/>, Hendrycks et al. 2019), so that the model's confidence
    /// falls on text unlike its classes' and a threshold on it (<see cref="OutOfScopeCatalogExtensions.FitOutOfScopeThreshold"/>)
    /// rejects more of it. Read from the same text column(s) as the training rows; any label column is ignored. Each epoch
    /// passes over these rows too; nothing of them is saved with the model. On CLINC150, 8,174 general-text sentences raised
    /// the out-of-scope recall at 95 % in-scope recall from 48 to 57 % (two seeds; SDCA on n-grams: 58 %) and kept the accuracy
    /// (docs/benchmarks.md, <i>Out-of-scope queries</i>).
    /// </summary>
    public IDataView? OutlierSet;

    /// <summary>Weight of the <see cref="OutlierSet"/> rows' mean loss against the labelled rows' (default 0.5); ≥ 0.</summary>
    public double OutlierLossWeight = 0.5;

    private protected override string OptionsName => nameof(MemoryFormerTextClassificationOptions);

    internal override void Validate()
    {
        base.Validate();
        Check(!string.IsNullOrEmpty(LabelColumnName) && !string.IsNullOrEmpty(TextColumnName), nameof(TextColumnName), "and LabelColumnName must be set");
        Check(ExampleWeightColumnName is null || ExampleWeightColumnName.Length > 0, nameof(ExampleWeightColumnName),
            "must be null (no weights) or name a column");
        Check(MaxTokensPerRow >= 3, nameof(MaxTokensPerRow), "must be at least 3");
        Check(MaxWindowsPerRow is >= 1 and <= 4096, nameof(MaxWindowsPerRow), "must be in [1, 4096]");
        Check(Enum.IsDefined(WindowLayout), nameof(WindowLayout), $"must be one of {string.Join(", ", Enum.GetNames<WindowLayout>())}");
        Check(ScoringPrecision is InferencePrecision.Float32 or InferencePrecision.BFloat16, nameof(ScoringPrecision), "must be Float32 or BFloat16 (Int8 scoring is not implemented)");
        Check(NgramBuckets is >= 0 and <= 1 << 24, nameof(NgramBuckets), "must be in [0, 16777216] (0 = no n-gram bag)");
        Check(NgramLength is >= 1 and <= 3, nameof(NgramLength), "must be in [1, 3]");
        Check(WarmupFraction is >= 0 and < 1, nameof(WarmupFraction), "must be in [0, 1)");
        Check(Dropout is >= 0 and < 1, nameof(Dropout), "must be in [0, 1)");
        Check(CalibrationFraction is >= 0 and <= 0.5, nameof(CalibrationFraction), "must be in [0, 0.5] (0 = no calibration hold-out)");
        Check(LabelSmoothing is >= 0 and < 1, nameof(LabelSmoothing), "must be in [0, 1) (0 = plain cross-entropy)");
        Check(EarlyStoppingPatience == 0 || ValidationSet is not null || ValidationFraction > 0, nameof(EarlyStoppingPatience),
            "needs a ValidationSet or a ValidationFraction");
        Check(PretrainedModel is null || PretrainedCheckpointPath is null, nameof(PretrainedModel), "and PretrainedCheckpointPath cannot both be set");
        Check(OutlierLossWeight >= 0 && double.IsFinite(OutlierLossWeight), nameof(OutlierLossWeight), "must be a finite number ≥ 0");
    }

    private protected override int WarmupStepsOf(int stepsPerEpoch, int steps) => (int)(WarmupFraction * steps);

    internal TextClassifierSettings ToSettings() => new()
    {
        Architecture = Architecture, Tokenizer = Tokenizer, MaxTokensPerRow = MaxTokensPerRow,
        MaxWindowsPerRow = MaxWindowsPerRow, WindowLayout = WindowLayout, ScoringPrecision = ScoringPrecision, CalibrateTemperature = CalibrateTemperature, CalibrationFraction = CalibrationFraction,
        CalibrationRefit = CalibrationRefit, LabelSmoothing = LabelSmoothing, Pooling = Pooling,
        NgramBuckets = NgramBuckets, NgramLength = NgramLength,
        BatchSize = BatchSize, Dropout = Dropout, ClassWeighting = ClassWeighting, ClassWeights = ClassWeights,
        PretrainedCheckpointPath = PretrainedCheckpointPath, PretrainedModel = PretrainedModel, OutlierLossWeight = OutlierLossWeight,
    };
}
