using Microsoft.ML.Data;
namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>An <see cref="IDataView"/> that runs every row of <paramref name="source"/> through <paramref name="mapper"/>.</summary>
internal sealed class RowMapperDataView(IDataView source, IRowToRowMapper mapper) : IDataView
{
    public bool CanShuffle => source.CanShuffle;
    public DataViewSchema Schema => mapper.OutputSchema;

    public long? GetRowCount() => source.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var columns = columnsNeeded.ToArray();
        var input = source.GetRowCursor(mapper.GetDependencies(columns), rand);
        return new Cursor(input, mapper.GetRow(input, columns));
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    private sealed class Cursor(DataViewRowCursor input, DataViewRow mapped) : DataViewRowCursor
    {
        public override long Position => input.Position;
        public override long Batch => input.Batch;
        public override DataViewSchema Schema => mapped.Schema;

        public override bool MoveNext() => input.MoveNext();
        public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();
        public override bool IsColumnActive(DataViewSchema.Column column) => mapped.IsColumnActive(column);
        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) => mapped.GetGetter<TValue>(column);

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                mapped.Dispose();
                input.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
