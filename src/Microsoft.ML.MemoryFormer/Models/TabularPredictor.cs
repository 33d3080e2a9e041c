using System.Text.Json;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// A trained tabular model, independent of ML.NET: standardises raw feature rows with the saved statistics, runs the
/// <see cref="TabularModel"/> in eval mode and returns regression values or class log-probabilities; saves to and
/// loads from a <see cref="ModelArchive"/> (<c>config.json</c>, <c>tabular.json</c>, weights).
/// </summary>
internal sealed class TabularPredictor : IDisposable
{
    private readonly TabularModel model;
    private readonly Device device;

    public TabularPredictor(TabularModel model, TabularModelInfo info, Device device)
    {
        (this.model, Info, this.device) = (model, info, device);
        model.to(device).eval();
    }

    /// <summary>Score with the fused inference encoder where the model allows it (<see cref="TabularModel.TakesFusedForward"/>);
    /// false: the torch modules throughout, the reference path.</summary>
    public bool UseFusedScoring { get; set; } = true;

    /// <summary>The feature column, label, standardisation and output count.</summary>
    public TabularModelInfo Info { get; }

    /// <summary>The architecture (context length = 1 + feature count).</summary>
    public MemoryFormerConfig Config => model.Config;

    /// <summary>The network (read by the ONNX export).</summary>
    public TabularModel Model => model;

    /// <summary>
    /// Per row, the value in label units (regression) or the class log-probabilities (classification) of
    /// <paramref name="features"/> [n·F] (raw, row-major; standardised in place, or expanded into a new array).
    /// </summary>
    public float[][] Forward(float[] features, int rows)
    {
        if (Info.Expansion is { } expansion) features = expansion.Apply(features, rows);   // [n, F] → [n, F']
        Info.Scaler.Apply(features);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = tensor(features, [rows, Info.FeatureCount]).to(device);         // [n, F]
        var outputs = UseFusedScoring && model.TakesFusedForward ? model.ForwardFused(x) : model.call(x); // [n, C]
        if (Info.Label.Kind != PredictionKind.Regression) outputs = outputs.log_softmax(1);
        else
        {
            using Scalar std = Info.LabelStd, mean = Info.LabelMean;            // disposed after use, not left to a finalizer
            outputs = outputs.mul(std).add(mean, LiveScalars.One);
        }
        var flat = outputs.cpu().data<float>().ToArray();                       // [n·C]
        return Enumerable.Range(0, rows).Select(r => flat.AsSpan(r * Info.OutputCount, Info.OutputCount).ToArray()).ToArray();
    }

    /// <summary>The model as archive entries: config, <see cref="TabularModelInfo.Entry"/> and weights.</summary>
    public ModelArchive ToArchive() => new ModelArchive()
        .SetText(ModelArchive.ConfigEntry, model.Config.ToJson())
        .SetText(TabularModelInfo.Entry, JsonSerializer.Serialize(Info, MemoryFormerConfig.JsonOptions))
        .WithWeights(model);

    /// <summary>Rebuilds a model written by <see cref="ToArchive"/> on <paramref name="device"/>.</summary>
    /// <exception cref="InvalidDataException">The entries are damaged or do not agree with each other.</exception>
    public static TabularPredictor FromArchive(ModelArchive archive, Device device)
    {
        var config = archive.GetJson(ModelArchive.ConfigEntry, MemoryFormerConfig.FromJson);
        var info = archive.GetJson<TabularModelInfo>(TabularModelInfo.Entry, MemoryFormerConfig.JsonOptions);
        if (info.Scaler?.Means is null || info.Scaler.Stds?.Length != info.Scaler.Means.Length || info.Label is null
            || !Enum.IsDefined(info.Label.Kind) || (info.Label.ClassNames is not null && info.Label.ClassNames.Length != info.Label.Classes)
            || (info.Label.ClassValueKind is { } kind && !LabelColumn.KeyValueTypes.ContainsKey(kind))
            || info.FeatureCount < 1 || info.OutputCount < 1
            || (info.SlotTokens is not null && !OneHotGroups.IsValid(info.SlotTokens, info.FeatureCount))
            || (info.Expansion is { } expansion && !expansion.IsValid(info.FeatureCount, info.EncodedOutputs))
            || info.TokenCount + 1 != config.ContextLength
            || !Enum.IsDefined(info.NumericEmbedding) || info.PeriodicFrequencies is < 0 or > MaxPeriodicFrequencies
            || (info.NumericEmbedding is TabularNumericEmbedding.Periodic or TabularNumericEmbedding.PeriodicLinear) != (info.PeriodicFrequencies > 0)
            || (info.NumericEmbedding == TabularNumericEmbedding.PiecewiseLinear) != (info.BinEdges is not null)
            || (info.BinEdges is { } edges && (edges.Length != info.FeatureCount
                || edges.Any(e => e is null || e.Length is < 2 or > MaxBins + 1))))
            throw new InvalidDataException($"The model's '{TabularModelInfo.Entry}' is inconsistent: its scaler, label and feature " +
                $"count must agree with each other and with the config (ContextLength = {config.ContextLength} = 1 + feature tokens).");
        // The tokenizer's bias and missing embeddings [F, d] each, a linear embedding's weight [F, d] (periodic and piecewise-linear
        // ones have their projections instead, counted below), and the output head.
        double tokenMatrices = info.NumericEmbedding == TabularNumericEmbedding.Linear ? 3 : 2;
        ModuleWeights.CheckSizeFits(config, archive, headParameters: (tokenMatrices * info.FeatureCount + info.OutputCount) * config.Width
            + (double)info.FeatureCount * info.PeriodicFrequencies * (2.0 * config.Width + 1)
            + (double)info.FeatureCount * (info.BinEdges?.Max(e => e.Length - 1) ?? 0) * config.Width);
        return ModuleLoader.Load(archive, config, () => new TabularModel(config, info.FeatureCount, info.OutputCount,
            info.NumericEmbedding, info.PeriodicFrequencies, periodicScale: 1, info.BinEdges, info.SlotTokens), device,
            model => new TabularPredictor(model, info, device));
    }

    /// <summary>Largest number of periodic frequencies a saved model may declare (a bound against hostile files).</summary>
    internal const int MaxPeriodicFrequencies = 1024;

    /// <summary>Most bins per slot of piecewise-linear embeddings (an option bound, and a bound against hostile files).</summary>
    internal const int MaxBins = 256;

    /// <summary>Frees the model's tensors.</summary>
    public void Dispose() => model.Dispose();
}
