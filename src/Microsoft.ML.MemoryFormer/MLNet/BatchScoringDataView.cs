using Microsoft.ML.Data;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// Transform output that scores rows in batches: a look-ahead cursor reads the inputs of up to
/// <see cref="IBatchScorer.BatchSize"/> rows and scores them at once, while a second cursor over the same source
/// moves in step and serves the pass-through columns. Rows keep their order; shuffling is not supported.
/// </summary>
internal sealed class BatchScoringDataView(IDataView source, ScoringMapper mapper) : IDataView
{
    public bool CanShuffle => false;
    public DataViewSchema Schema => mapper.OutputSchema;
    public long? GetRowCount() => source.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.ToArray();
        var passThrough = source.GetRowCursor(mapper.InputSchema.Where(c => needed.Any(n => n.Index == c.Index)));
        var scored = needed.Where(c => c.Index >= mapper.FirstOutput).Select(c => c.Index).ToHashSet();
        var lookAhead = scored.Count > 0 ? source.GetRowCursor(mapper.Scorer.InputColumns) : null;
        return new Cursor(mapper, passThrough, lookAhead, scored);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly ScoringMapper mapper;
        private readonly DataViewRowCursor passThrough;
        private readonly DataViewRowCursor? lookAhead;
        private readonly IBatchReader? reader;
        private readonly HashSet<int> scored;
        private Array[] outputs = [];
        private int count;
        private int index;

        public Cursor(ScoringMapper mapper, DataViewRowCursor passThrough, DataViewRowCursor? lookAhead, HashSet<int> scored)
        {
            this.mapper = mapper;
            this.passThrough = passThrough;
            this.lookAhead = lookAhead;
            this.scored = scored;
            reader = lookAhead is null ? null : mapper.Scorer.CreateReader(lookAhead);
        }

        public override long Position => passThrough.Position;
        public override long Batch => passThrough.Batch;
        public override DataViewSchema Schema => mapper.OutputSchema;
        public override ValueGetter<DataViewRowId> GetIdGetter() => passThrough.GetIdGetter();

        public override bool MoveNext()
        {
            if (!passThrough.MoveNext()) return false;
            if (reader is not null && ++index >= count) FillBatch();
            return true;
        }

        private void FillBatch()
        {
            count = 0;
            while (count < mapper.Scorer.BatchSize && lookAhead!.MoveNext())
            {
                reader!.Read();
                count++;
            }
            outputs = reader!.Score();
            index = 0;
        }

        public override bool IsColumnActive(DataViewSchema.Column column) => column.Index >= mapper.FirstOutput
            ? scored.Contains(column.Index)
            : passThrough.IsColumnActive(mapper.InputSchema[column.Index]);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) =>
            column.Index < mapper.FirstOutput
                ? passThrough.GetGetter<TValue>(mapper.InputSchema[column.Index])
                : ScoringMapper.Getter<TValue>(() => outputs, () => index, column.Index - mapper.FirstOutput);

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                passThrough.Dispose();
                lookAhead?.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
