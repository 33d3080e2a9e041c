using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Models;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// Scores buffered text rows with a <see cref="TextClassifierModel"/>: <see cref="BatchScoringDataView"/> hands it at least
/// <see cref="LookAheadRows"/> rows at a time, whose windows the model sorts by length into batches padded only to their
/// own longest window, so short rows are not padded to the longest row of a small batch.
/// </summary>
internal sealed class TextClassificationScorer : IBatchScorer
{
    /// <summary>Fewest rows read ahead per model call by Transform (more when the training batch size is larger).</summary>
    public const int LookAheadRows = 256;

    private readonly TextClassifierModel model;
    private readonly TextColumns texts;
    private readonly PredictionColumns columns;
    private readonly int batchSize;

    public TextClassificationScorer(TextClassifierModel model, TextColumns texts, PredictionColumns columns, DataViewSchema schema, int batchSize)
    {
        this.model = model;
        this.texts = texts;
        this.columns = columns;
        InputColumns = texts.In(schema);
        OutputColumns = columns.Columns();
        this.batchSize = batchSize;
    }

    public IReadOnlyList<DataViewSchema.Column> InputColumns { get; }
    public IReadOnlyList<DataViewSchema.DetachedColumn> OutputColumns { get; }

    /// <summary>Rows per model call: the training batch size on the reference path (as before length-sorted batches),
    /// at least <see cref="LookAheadRows"/> otherwise.</summary>
    public int BatchSize => model.UseReferenceScoring ? batchSize : Math.Max(batchSize, LookAheadRows);

    public IBatchReader CreateReader(DataViewRow row) => new Reader(this, texts.Reader(row));

    private sealed class Reader(TextClassificationScorer scorer, Func<(string Text, string? Second)> read) : IBatchReader
    {
        private readonly List<int[][]> rows = [];

        /// <summary>Keeps the row's token windows, not its text: a buffer of very long rows holds only what is scored.</summary>
        public void Read()
        {
            var (text, second) = read();
            rows.Add(scorer.model.Encode(text, second));
        }

        public Array[] Score()
        {
            var values = scorer.columns.Values(scorer.model.LogProbabilities(rows));
            rows.Clear();
            return values;
        }
    }
}
