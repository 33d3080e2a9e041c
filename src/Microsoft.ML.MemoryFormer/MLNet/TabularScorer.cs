using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>Scores buffered rows of a feature vector column with a <see cref="TabularModel"/> (one forward pass per batch).</summary>
internal sealed class TabularScorer : IBatchScorer
{
    private readonly TabularModel model;
    private readonly TabularModelInfo info;
    private readonly Device device;

    public TabularScorer(TabularModel model, TabularModelInfo info, Device device, DataViewSchema inputSchema)
    {
        int f = FeatureColumnReader.CheckFeatures(inputSchema, info.FeatureColumnName);
        if (f != info.FeatureCount)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Feature column '{info.FeatureColumnName}' has " +
                $"{f} slots; the model was trained on {info.FeatureCount}. Featurize scoring data with the training pipeline.");
        (this.model, this.info, this.device) = (model, info, device);
        InputColumns = [inputSchema[info.FeatureColumnName]];
        OutputColumns = info.Columns.Columns();
    }

    public IReadOnlyList<DataViewSchema.Column> InputColumns { get; }
    public IReadOnlyList<DataViewSchema.DetachedColumn> OutputColumns { get; }
    public int BatchSize => 512;

    public IBatchReader CreateReader(DataViewRow row) => new Reader(this, row, row.GetGetter<VBuffer<float>>(InputColumns[0]));

    /// <summary>
    /// Per row, the standardised-back value (regression) or class log-probabilities (classification) of
    /// <paramref name="features"/> [n·F] (raw, row-major), as <see cref="PredictionColumns.Values"/> takes them.
    /// </summary>
    public float[][] Forward(float[] features, int rows)
    {
        info.Scaler.Apply(features);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = tensor(features, [rows, info.FeatureCount]).to(device);         // [n, F]
        var outputs = model.call(x);                                             // [n, C]
        if (info.Label.Kind != PredictionKind.Regression) outputs = outputs.log_softmax(1);
        else
        {
            using Scalar std = info.LabelStd, mean = info.LabelMean;            // disposed after use, not left to a finalizer
            outputs = outputs.mul(std).add(mean, Runtime.LiveScalars.One);
        }
        var flat = outputs.cpu().data<float>().ToArray();                       // [n·C]
        return Enumerable.Range(0, rows).Select(r => flat.AsSpan(r * info.OutputCount, info.OutputCount).ToArray()).ToArray();
    }

    private sealed class Reader(TabularScorer scorer, DataViewRow row, ValueGetter<VBuffer<float>> getter) : IBatchReader
    {
        private readonly List<float> buffered = [];
        private VBuffer<float> buffer;
        private int rows;

        public void Read()
        {
            getter(ref buffer);
            var values = new float[scorer.info.FeatureCount];
            FeatureColumnReader.Dense(buffer, values, scorer.info.FeatureColumnName, row.Position);
            FeatureColumnReader.CheckFinite(values, scorer.info.FeatureColumnName, row.Position);
            buffered.AddRange(values);
            rows++;
        }

        public Array[] Score()
        {
            int n = rows;
            var outputs = n == 0 ? [] : scorer.Forward([.. buffered], n);
            buffered.Clear();
            rows = 0;
            return scorer.info.Columns.Values(outputs);
        }
    }
}
