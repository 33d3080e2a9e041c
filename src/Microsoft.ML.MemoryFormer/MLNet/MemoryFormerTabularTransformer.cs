using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Training;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// A trained MemoryFormer on a Features vector (regression, binary or multiclass). Appends the same columns as
/// ML.NET's own trainers of the task, so <c>Evaluate</c>, <c>MapKeyToValue</c> and PredictionEngine work unchanged.
/// Transform scores rows in batches (through <c>Models/TabularEnsemblePredictor</c>, which knows nothing of ML.NET); an
/// ensemble (<see cref="EnsembleSize"/> &gt; 1) appends its members' mean value or mean class probabilities. Saved and
/// loaded with <c>mlContext.Model.Save/Load</c> (any MLContext, in any process, loads it with no registration call). Dispose to free the model.
/// As a single-feature prediction transformer (its model is itself), it works with ML.NET's
/// <c>PermutationFeatureImportance</c>, given the whole fitted chain or this transformer, and the data with the Features column.
/// </summary>
public sealed class MemoryFormerTabularTransformer : ITransformer, IDisposable, IModelLoadable<MemoryFormerTabularTransformer>,
    ISingleFeaturePredictionTransformer<MemoryFormerTabularTransformer>, ISingleFeaturePredictionTransformer
{
    private readonly TabularEnsemblePredictor model;

    internal MemoryFormerTabularTransformer(TabularEnsemblePredictor model, IReadOnlyList<TrainingResult>? trainingResults)
    {
        (this.model, MemberTrainingResults) = (model, trainingResults);
    }

    internal static ModelSignatureInfo Signature { get; } =
        ModelSignatureInfo.For(typeof(MemoryFormerTabularTransformer), "MFTABTRN", "MemoryFormerTabular");

    static ModelSignatureInfo IModelLoadable<MemoryFormerTabularTransformer>.Signature => Signature;

    /// <summary>The architecture of the model (context length = 1 + feature count).</summary>
    public MemoryFormerConfig Architecture => model.Config;

    /// <summary>k, the models this transformer averages (<see cref="MemoryFormerTabularOptions.EnsembleSize"/>); 1 for a
    /// single model and for every model saved before ensembles.</summary>
    public int EnsembleSize => model.Members.Count;

    /// <summary>The first member's network (the whole model when it is a single one).</summary>
    internal TabularModel Model => model.Members[0].Model;

    /// <summary>The members' predictors (tests switch their scoring path).</summary>
    internal TabularEnsemblePredictor Ensemble => model;

    /// <summary>Scaler, label and column settings (read by the ONNX export).</summary>
    internal TabularModelInfo Info => model.Info;

    /// <summary>The feature vector column the model reads.</summary>
    public string FeatureColumnName => model.Info.FeatureColumnName;

    /// <summary>The type the feature column must have: a vector of <see cref="Info"/>'s input slot count of Single.</summary>
    public DataViewType FeatureColumnType => new VectorDataViewType(NumberDataViewType.Single, model.Info.InputCount);

    /// <summary>This transformer: ML.NET's prediction transformers expose a model object; a MemoryFormer's is the transformer.</summary>
    MemoryFormerTabularTransformer IPredictionTransformer<MemoryFormerTabularTransformer>.Model => this;

    /// <summary>How the model turns numeric slots into tokens: the caller's <see cref="MemoryFormerTabularOptions.NumericEmbedding"/>,
    /// or what <see cref="MemoryFormerTabularOptions.SizeAwareDefaults"/> chose for the table's size.</summary>
    public Configuration.TabularNumericEmbedding NumericEmbedding => model.Info.NumericEmbedding;

    /// <summary>Tokens per row after [CLS]: one per feature slot, or one per slot group with
    /// <see cref="MemoryFormerTabularOptions.GroupOneHotSlots"/> (plus any appended value-category and target-encoding tokens).</summary>
    public int FeatureTokens => model.Info.TokenCount;

    /// <summary>The outcome of training (steps, losses, early stopping, time) of the first (or only) ensemble member; null
    /// for a loaded model.</summary>
    public TrainingResult? TrainingResult => MemberTrainingResults?[0];

    /// <summary>The outcome of training of each ensemble member, in seed order; null for a loaded model.</summary>
    public IReadOnlyList<TrainingResult>? MemberTrainingResults { get; }

    /// <summary>The former name of <see cref="TrainingResult"/>.</summary>
    [Obsolete("Use TrainingResult, the name every MemoryFormer transformer uses.")]
    public TrainingResult? Training => TrainingResult;

    /// <inheritdoc/>
    public bool IsRowToRowMapper => true;

    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Mapper(inputSchema).OutputSchema;

    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => Mapper(inputSchema);

    /// <inheritdoc/>
    public IDataView Transform(IDataView input) => new BatchScoringDataView(input, Mapper(input.Schema));

    /// <summary>
    /// Bucket health (the paper's Fig. 4): how often each row of each Memory Layer table is selected while the model scores
    /// <paramref name="data"/>, with the never-hit fraction and normalised entropy per table. Of an ensemble, the tables of the first member.
    /// </summary>
    /// <param name="data">Rows with the feature column the model was trained on.</param>
    /// <returns>One entry per Memory Layer, in module order; Q/K/V of one block share a hash and appear once.</returns>
    public IReadOnlyList<Diagnostics.BucketUsage> MeasureBucketUsage(IDataView data)
    {
        ArgumentNullException.ThrowIfNull(data);
        using var recorder = Diagnostics.BucketUsageRecorder.Attach(model.Members[0].Model);
        var scored = Transform(data);
        var score = scored.Schema["Score"];
        using var cursor = scored.GetRowCursor([score]);
        if (score.Type is VectorDataViewType)
        {
            var getter = cursor.GetGetter<VBuffer<float>>(score);
            VBuffer<float> value = default;
            while (cursor.MoveNext()) getter(ref value);
        }
        else
        {
            var getter = cursor.GetGetter<float>(score);
            float value = 0;
            while (cursor.MoveNext()) getter(ref value);
        }
        return recorder.Snapshot();
    }

    /// <summary>
    /// Explains each row of <paramref name="rows"/> by occlusion against background rows: the row is scored as it is and once
    /// per (feature, background row) with that feature's values taken from the background row, and a feature's contribution
    /// is how much the prediction falls on average without the row's own values. A one-hot column (its slots named
    /// <c>column.value</c>, as <c>OneHotEncoding</c> and <c>Concatenate</c> write them, or grouped by the model itself) is one
    /// feature, replaced whole. Deterministic: the background is a uniform sample of <paramref name="maxBackgroundRows"/> rows
    /// of <paramref name="background"/> drawn with a fixed seed in one pass (all of them when there are fewer); a row costs one
    /// scoring pass of 1 + (features + 1) × background rows.
    /// </summary>
    /// <param name="rows">The rows to explain, with the feature column the model was trained on (featurized by the same pipeline).</param>
    /// <param name="background">Typical rows to compare with (e.g. the training data, or a sample of it), with the same feature column.</param>
    /// <param name="classIndex">The class to explain (0-based; for binary classification 1 is true); null explains each row's
    /// predicted class. Must be null for regression.</param>
    /// <param name="maxBackgroundRows">Most background rows read (≥ 1): more give steadier contributions and cost proportionally more.</param>
    /// <returns>One explanation per row, in row order.</returns>
    /// <exception cref="ArgumentException">A data view lacks the feature column or has another slot count, the background is
    /// empty, a class index is outside the model's classes or given for regression, or <paramref name="maxBackgroundRows"/> is below 1.</exception>
    /// <example><code>
    /// var explanation = tabular.Explain(mlContext.Data.TakeRows(featurizedTest, 1), background: featurizedTrain)[0];
    /// foreach (var feature in explanation.Top(5)) Console.WriteLine($"{feature.Name}: {feature.Contribution:+0.000;-0.000}");
    /// </code></example>
    public IReadOnlyList<TabularExplanation> Explain(IDataView rows, IDataView background, int? classIndex = null, int maxBackgroundRows = 100)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var values = ReadFeatures(rows, "rows to explain", nameof(rows), long.MaxValue);
        return Explain(values, SlotNames(rows.Schema), background, classIndex, maxBackgroundRows);
    }

    /// <summary>
    /// Explains one row given as its feature vector (the values the feature column holds); see
    /// <see cref="Explain(IDataView, IDataView, int?, int)"/>. Slot names are read from the background's feature column.
    /// </summary>
    /// <param name="features">The row's feature vector: as many values as the feature column has slots (NaN: missing).</param>
    /// <param name="background">Typical rows to compare with, with the feature column the model was trained on.</param>
    /// <param name="classIndex">The class to explain; null explains the predicted class (must be null for regression).</param>
    /// <param name="maxBackgroundRows">Most background rows read (≥ 1).</param>
    /// <returns>The explanation.</returns>
    /// <exception cref="ArgumentException">The row has another length than the feature column or an infinite value; see the other overload.</exception>
    public TabularExplanation Explain(float[] features, IDataView background, int? classIndex = null, int maxBackgroundRows = 100)
    {
        ArgumentNullException.ThrowIfNull(features);
        var info = model.Info;
        if (features.Length != info.InputCount)
            throw new ArgumentException($"The row has {features.Length} values; the model's feature column '{info.FeatureColumnName}' " +
                $"has {info.InputCount} slots.", nameof(features));
        int infinite = Array.FindIndex(features, float.IsInfinity);
        if (infinite >= 0)
            throw new ArgumentException($"The row holds {features[infinite]} at slot {infinite}; expected finite values (NaN marks a missing value).", nameof(features));
        return Explain([(float[])features.Clone()], names: null, background, classIndex, maxBackgroundRows)[0];
    }

    private List<TabularExplanation> Explain(List<float[]> rows, string[]? names, IDataView background, int? classIndex, int maxBackgroundRows)
    {
        ArgumentNullException.ThrowIfNull(background);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBackgroundRows, 1);
        var info = model.Info;
        if (classIndex is int c && (info.Label.Kind == PredictionKind.Regression || c < 0 || c >= info.Label.Classes))
            throw new ArgumentOutOfRangeException(nameof(classIndex), c, info.Label.Kind == PredictionKind.Regression
                ? "A regression model has no classes; pass no class index."
                : $"The model has {info.Label.Classes} classes (0 to {info.Label.Classes - 1}).");
        var backgroundRows = ReadFeatures(background, "background data", nameof(background), maxBackgroundRows);
        if (backgroundRows.Count == 0)
            throw new ArgumentException($"The background data has no rows; pass typical rows with the '{info.FeatureColumnName}' " +
                "column, e.g. the training data.", nameof(background));
        names ??= SlotNames(background.Schema);
        var flat = backgroundRows.SelectMany(r => r).ToArray();
        var groups = TabularOcclusion.SlotGroups(info, flat, names);
        return [.. rows.Select(row => Describe(TabularOcclusion.Explain(model, row, flat, groups, classIndex), row, groups, names))];
    }

    private TabularExplanation Describe(TabularOcclusion.Result result, float[] row, int[] groups, string[]? names)
    {
        var features = new List<FeatureContribution>(result.Contributions.Length);
        for (int first = 0; first < groups.Length;)
        {
            int count = 1;
            while (first + count < groups.Length && groups[first + count] == groups[first]) count++;
            string name = GroupName(names, first, count);
            features.Add(new FeatureContribution(name, first, count, row[first..(first + count)],
                DisplayValue(row, names, name, first, count), result.Contributions[groups[first]]));
            first += count;
        }
        return new TabularExplanation(result.Class, result.Class is int c ? model.Info.Label.ClassName(c) : null,
            result.Prediction, result.BackgroundPrediction, features);
    }

    /// <summary>A feature's name: its slot name; the column name a one-hot group's slot names share before their last '.'
    /// in common; else the slot numbers.</summary>
    private static string GroupName(string[]? names, int first, int count)
    {
        string Slots() => count == 1 ? $"Slot {first}" : $"Slots {first}–{first + count - 1}";
        if (names is null || names.Skip(first).Take(count).Any(string.IsNullOrEmpty)) return Slots();
        if (count == 1) return names[first];
        int common = names[first].Length;
        for (int i = first + 1; i < first + count; i++)
            common = Math.Min(common, names[first].AsSpan().CommonPrefixLength(names[i]));
        int dot = names[first].LastIndexOf('.', Math.Max(common - 1, 0));
        return common > 0 && dot > 0 ? names[first][..dot] : Slots();
    }

    /// <summary>See <see cref="FeatureContribution.DisplayValue"/>.</summary>
    private static string DisplayValue(float[] row, string[]? names, string name, int first, int count)
    {
        static string Number(float v) => float.IsNaN(v) ? "missing" : v.ToString("G6", System.Globalization.CultureInfo.InvariantCulture);
        if (count == 1) return Number(row[first]);
        if (names is null || names[first].Length <= name.Length || !names[first].StartsWith(name + ".", StringComparison.Ordinal))
            return string.Join(", ", row[first..(first + count)].Select(Number));
        int hot = Array.IndexOf(row, 1f, first, count);
        return hot < 0 ? "none" : names[hot][(name.Length + 1)..];
    }

    /// <summary>The feature column's slot names, or null when it has none.</summary>
    private string[]? SlotNames(DataViewSchema schema)
    {
        var column = schema.GetColumnOrNull(model.Info.FeatureColumnName);
        if (column?.Annotations.Schema.GetColumnOrNull("SlotNames") is null) return null;
        VBuffer<ReadOnlyMemory<char>> names = default;
        column.Value.GetSlotNames(ref names);
        return names.Length == model.Info.InputCount ? [.. names.DenseValues().Select(n => n.ToString())] : null;
    }

    /// <summary>The feature column of <paramref name="data"/>'s rows, checked: all of them, or a uniform sample of
    /// <paramref name="maxRows"/> when there are more.</summary>
    private List<float[]> ReadFeatures(IDataView data, string what, string parameter, long maxRows)
    {
        ArgumentNullException.ThrowIfNull(data, parameter);
        var info = model.Info;
        if (data.Schema.GetColumnOrNull(info.FeatureColumnName) is not { } column)
            throw new ArgumentException($"The {what} has no column '{info.FeatureColumnName}', the feature column the model was trained on; " +
                "featurize it with the training pipeline.", parameter);
        int slots = FeatureColumnReader.CheckFeatures(data.Schema, info.FeatureColumnName);
        if (slots != info.InputCount)
            throw new ArgumentException($"The {what}'s feature column '{info.FeatureColumnName}' has {slots} slots; the model was trained " +
                $"on {info.InputCount}. Featurize it with the training pipeline.", parameter);
        // Every row, or a uniform sample of maxRows of them (reservoir sampling, fixed seed: deterministic, one pass, and
        // representative of data sorted by class, which the first rows would not be).
        var rows = new List<float[]>();
        var random = new Random(0);
        using var cursor = data.GetRowCursor([column]);
        var getter = cursor.GetGetter<VBuffer<float>>(column);
        VBuffer<float> buffer = default;
        for (long seen = 0; cursor.MoveNext(); seen++)
        {
            int slot = seen < maxRows ? rows.Count : (int)Math.Min(random.NextInt64(seen + 1), int.MaxValue);
            if (slot >= maxRows) continue;
            getter(ref buffer);
            var row = new float[slots];
            FeatureColumnReader.Dense(buffer, row, info.FeatureColumnName, cursor.Position);
            FeatureColumnReader.CheckFinite(row, info.FeatureColumnName, cursor.Position);
            if (slot == rows.Count) rows.Add(row);
            else rows[slot] = row;
        }
        return rows;
    }

    /// <summary>Frees the tensors of every member.</summary>
    public void Dispose() => model.Dispose();

    void ICanSaveModel.Save(ModelSaveContext ctx) => model.ToArchive().SaveTo(ctx, Signature);

    /// <summary>ML.NET's loader entry point (registered by <see cref="MemoryFormerRegistration"/>); the device follows the
    /// loading MLContext's <see cref="MLContext.GpuDeviceId"/> and <see cref="MLContext.FallbackToCpu"/>.</summary>
    internal static MemoryFormerTabularTransformer Create(IHostEnvironment env, object modelLoadContext)
    {
        TorchRuntime.EnsureAvailable();
        var device = MLContextDevice.Of(env);
        var archive = ModelArchive.LoadFrom(modelLoadContext, Signature);
        return new MemoryFormerTabularTransformer(TabularEnsemblePredictor.FromArchive(archive, device), trainingResults: null);
    }

    static MemoryFormerTabularTransformer IModelLoadable<MemoryFormerTabularTransformer>.Create(IHostEnvironment env,
        object modelLoadContext) => Create(env, modelLoadContext);

    private ScoringMapper Mapper(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        model.Info.Label.CheckSameClasses(inputSchema);   // a label with classes training never saw would be evaluated under the wrong names
        return new(new TabularScorer(model, inputSchema), inputSchema);
    }
}
