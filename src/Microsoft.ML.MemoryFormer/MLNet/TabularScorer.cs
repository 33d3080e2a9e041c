using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Models;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>Scores buffered rows of a feature vector column with a <see cref="TabularEnsemblePredictor"/> (one forward pass per member and batch).</summary>
internal sealed class TabularScorer : IBatchScorer
{
    private readonly TabularEnsemblePredictor model;
    private readonly PredictionColumns columns;

    public TabularScorer(TabularEnsemblePredictor model, DataViewSchema inputSchema)
    {
        var info = model.Info;
        int f = FeatureColumnReader.CheckFeatures(inputSchema, info.FeatureColumnName);
        if (f != info.InputCount)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Feature column '{info.FeatureColumnName}' has " +
                $"{f} slots; the model was trained on {info.InputCount}. Featurize scoring data with the training pipeline.");
        this.model = model;
        columns = new PredictionColumns(info.Label, "Score", "PredictedLabel");
        InputColumns = [inputSchema[info.FeatureColumnName]];
        OutputColumns = columns.Columns();
    }

    public IReadOnlyList<DataViewSchema.Column> InputColumns { get; }
    public IReadOnlyList<DataViewSchema.DetachedColumn> OutputColumns { get; }
    public int BatchSize => 512;

    public IBatchReader CreateReader(DataViewRow row) => new Reader(this, row, row.GetGetter<VBuffer<float>>(InputColumns[0]));

    private sealed class Reader(TabularScorer scorer, DataViewRow row, ValueGetter<VBuffer<float>> getter) : IBatchReader
    {
        private readonly List<float> buffered = [];
        private VBuffer<float> buffer;
        private int rows;

        public void Read()
        {
            var info = scorer.model.Info;
            getter(ref buffer);
            var values = new float[info.InputCount];
            FeatureColumnReader.Dense(buffer, values, info.FeatureColumnName, row.Position);
            FeatureColumnReader.CheckFinite(values, info.FeatureColumnName, row.Position);
            buffered.AddRange(values);
            rows++;
        }

        public Array[] Score()
        {
            int n = rows;
            var outputs = n == 0 ? [] : scorer.model.Forward([.. buffered], n);
            buffered.Clear();
            rows = 0;
            return scorer.columns.Values(outputs);
        }
    }
}
