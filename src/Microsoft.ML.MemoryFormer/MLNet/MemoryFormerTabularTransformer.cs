using System.Text.Json;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Training;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// A trained MemoryFormer on a Features vector (regression, binary or multiclass). Appends the same columns as
/// ML.NET's own trainers of the task, so <c>Evaluate</c>, <c>MapKeyToValue</c> and PredictionEngine work unchanged.
/// Transform scores rows in batches. Saved and loaded with <c>mlContext.Model.Save/Load</c> (a fresh MLContext
/// calls <c>mlContext.ComponentCatalog.RegisterMemoryFormer()</c> once first). Dispose to free the model.
/// </summary>
public sealed class MemoryFormerTabularTransformer : ITransformer, IDisposable, IModelLoadable<MemoryFormerTabularTransformer>
{
    private readonly TabularModel model;
    private readonly TabularModelInfo info;
    private readonly Device device;

    internal MemoryFormerTabularTransformer(TabularModel model, TabularModelInfo info, Device device, TrainingResult? training)
    {
        (this.model, this.info, this.device, Training) = (model, info, device, training);
        model.eval();
    }

    internal static ModelSignatureInfo Signature { get; } =
        ModelSignatureInfo.For(typeof(MemoryFormerTabularTransformer), "MFTABTRN", "MemoryFormerTabular");

    static ModelSignatureInfo IModelLoadable<MemoryFormerTabularTransformer>.Signature => Signature;

    /// <summary>The architecture of the model (context length = 1 + feature count).</summary>
    public MemoryFormerConfig Architecture => model.Config;

    /// <summary>The network (read by the ONNX export).</summary>
    internal TabularModel Model => model;

    /// <summary>Scaler, label and column settings (read by the ONNX export).</summary>
    internal TabularModelInfo Info => info;

    /// <summary>The feature vector column the model reads.</summary>
    public string FeatureColumnName => info.FeatureColumnName;

    /// <summary>The outcome of training (steps, losses, early stopping, time); null for a loaded model.</summary>
    public TrainingResult? Training { get; }

    /// <inheritdoc/>
    public bool IsRowToRowMapper => true;

    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Mapper(inputSchema).OutputSchema;

    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => Mapper(inputSchema);

    /// <inheritdoc/>
    public IDataView Transform(IDataView input) => new BatchScoringDataView(input, Mapper(input.Schema));

    /// <summary>Frees the model's tensors.</summary>
    public void Dispose() => model.Dispose();

    void ICanSaveModel.Save(ModelSaveContext ctx) => new ModelArchive()
        .SetText(ModelArchive.ConfigEntry, model.Config.ToJson())
        .SetText(TabularModelInfo.Entry, JsonSerializer.Serialize(info, MemoryFormerConfig.JsonOptions))
        .WithWeights(model)
        .SaveTo(ctx, Signature);

    /// <summary>ML.NET's loader entry point (registered by <see cref="MemoryFormerRegistration"/>).</summary>
    internal static MemoryFormerTabularTransformer Create(IHostEnvironment env, object modelLoadContext)
    {
        TorchRuntime.EnsureAvailable();
        var archive = ModelArchive.LoadFrom(modelLoadContext, Signature);
        var config = archive.GetJson(ModelArchive.ConfigEntry, MemoryFormerConfig.FromJson);
        var info = archive.GetJson<TabularModelInfo>(TabularModelInfo.Entry, MemoryFormerConfig.JsonOptions);
        if (info.Scaler?.Means is null || info.Scaler.Stds?.Length != info.Scaler.Means.Length || info.Label is null
            || !Enum.IsDefined(info.Label.Kind) || (info.Label.ClassNames is not null && info.Label.ClassNames.Length != info.Label.Classes)
            || info.FeatureCount < 1 || info.OutputCount < 1 || info.FeatureCount + 1 != config.ContextLength)
            throw new InvalidDataException($"The model's '{TabularModelInfo.Entry}' is inconsistent: its scaler, label and feature " +
                $"count must agree with each other and with the config (ContextLength = {config.ContextLength} = 1 + features).");
        ModuleWeights.CheckSizeFits(config, archive, headParameters: (3.0 * info.FeatureCount + info.OutputCount) * config.Width);
        var model = new TabularModel(config, info.FeatureCount, info.OutputCount);
        try
        {
            ModuleWeights.Load(model, archive, config);
            var device = MLContextDevice.Of(env);
            model.to(device);
            return new MemoryFormerTabularTransformer(model, info, device, training: null);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    static MemoryFormerTabularTransformer IModelLoadable<MemoryFormerTabularTransformer>.Create(IHostEnvironment env,
        object modelLoadContext) => Create(env, modelLoadContext);

    private ScoringMapper Mapper(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        info.Label.CheckSameClasses(inputSchema);   // a label with classes training never saw would be evaluated under the wrong names
        return new(new TabularScorer(model, info, device, inputSchema), inputSchema);
    }
}
