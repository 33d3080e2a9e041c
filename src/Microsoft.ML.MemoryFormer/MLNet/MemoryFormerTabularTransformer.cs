using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Configuration;
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
    /// foreach (var feature in explanation.Top(5)) Console.WriteLine($"{feature.Name} = {feature.DisplayValue}: {feature.Contribution:F3}");
    /// </code></example>
    public IReadOnlyList<TabularExplanation> Explain(IDataView rows, IDataView background, int? classIndex = null, int maxBackgroundRows = 100) =>
        new TabularExplainer(model).Explain(rows, background, classIndex, maxBackgroundRows);

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
    public TabularExplanation Explain(float[] features, IDataView background, int? classIndex = null, int maxBackgroundRows = 100) =>
        new TabularExplainer(model).Explain(features, background, classIndex, maxBackgroundRows);

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
