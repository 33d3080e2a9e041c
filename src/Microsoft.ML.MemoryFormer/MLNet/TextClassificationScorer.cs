using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Models;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>Scores buffered text rows with a <see cref="TextClassifierModel"/>, one padded batch at a time.</summary>
internal sealed class TextClassificationScorer : IBatchScorer
{
    private readonly TextClassifierModel model;
    private readonly TextColumns texts;
    private readonly PredictionColumns columns;

    public TextClassificationScorer(TextClassifierModel model, TextColumns texts, PredictionColumns columns, DataViewSchema schema, int batchSize)
    {
        this.model = model;
        this.texts = texts;
        this.columns = columns;
        InputColumns = texts.In(schema);
        OutputColumns = columns.Columns();
        BatchSize = batchSize;
    }

    public IReadOnlyList<DataViewSchema.Column> InputColumns { get; }
    public IReadOnlyList<DataViewSchema.DetachedColumn> OutputColumns { get; }
    public int BatchSize { get; }

    public IBatchReader CreateReader(DataViewRow row) => new Reader(this, texts.Reader(row));

    private sealed class Reader(TextClassificationScorer scorer, Func<(string, string?)> read) : IBatchReader
    {
        private readonly List<(string, string?)> rows = [];

        public void Read() => rows.Add(read());

        public Array[] Score()
        {
            var values = scorer.columns.Values(scorer.model.LogProbabilities(rows));
            rows.Clear();
            return values;
        }
    }
}
