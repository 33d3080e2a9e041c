using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Training;
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
        OutputColumns = PredictionColumns.For(info.Kind, info.ClassNames);
    }

    public IReadOnlyList<DataViewSchema.Column> InputColumns { get; }
    public IReadOnlyList<DataViewSchema.DetachedColumn> OutputColumns { get; }
    public int BatchSize => 512;

    public IBatchReader CreateReader(DataViewRow row) => new Reader(this, row, row.GetGetter<VBuffer<float>>(InputColumns[0]));

    /// <summary>Model outputs [n, outputs] of <paramref name="features"/> [n·F] (raw, row-major).</summary>
    public float[] Forward(float[] features, int rows)
    {
        info.Scaler.Apply(features);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = tensor(features, [rows, info.FeatureCount]).to(device);         // [n, F]
        return model.call(x).cpu().data<float>().ToArray();                     // [n·outputs]
    }

    /// <summary>The output columns' values for <paramref name="rows"/> rows of model outputs.</summary>
    public Array[] ToColumns(float[] outputs, int rows) => info.Kind switch
    {
        TabularTaskKind.Regression => [outputs.Select(o => o * info.LabelStd + info.LabelMean).ToArray()],
        TabularTaskKind.BinaryClassification =>
            [outputs, outputs.Select(o => 1f / (1f + MathF.Exp(-o))).ToArray(), outputs.Select(o => o > 0).ToArray()],
        _ => Multiclass(outputs, rows, info.ClassNames.Length),
    };

    private static Array[] Multiclass(float[] logits, int rows, int classes)
    {
        var scores = new VBuffer<float>[rows];
        var predicted = new uint[rows];
        for (int r = 0; r < rows; r++)
        {
            var row = logits.AsSpan(r * classes, classes);
            float max = float.NegativeInfinity;
            int best = 0;
            for (int c = 0; c < classes; c++) if (row[c] > max) (max, best) = (row[c], c);
            var p = new float[classes];
            float sum = 0;
            for (int c = 0; c < classes; c++) sum += p[c] = MathF.Exp(row[c] - max);
            for (int c = 0; c < classes; c++) p[c] /= sum;
            scores[r] = new VBuffer<float>(classes, p);
            predicted[r] = (uint)best + 1;
        }
        return [scores, predicted];
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
            return scorer.ToColumns(outputs, n);
        }
    }
}
