using Microsoft.ML.Data;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// The row-to-row view of an <see cref="IBatchScorer"/>: the input schema plus the scorer's output columns. Used by
/// PredictionEngine (one row at a time) and as the schema of <see cref="BatchScoringDataView"/>.
/// </summary>
internal sealed class ScoringMapper : IRowToRowMapper
{
    public ScoringMapper(IBatchScorer scorer, DataViewSchema inputSchema)
    {
        Scorer = scorer;
        InputSchema = inputSchema;
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        foreach (var column in scorer.OutputColumns) builder.AddColumn(column.Name, column.Type, column.Annotations);
        OutputSchema = builder.ToSchema();
    }

    public IBatchScorer Scorer { get; }
    public DataViewSchema InputSchema { get; }
    public DataViewSchema OutputSchema { get; }

    /// <summary>Index of the first output column in <see cref="OutputSchema"/>.</summary>
    public int FirstOutput => InputSchema.Count;

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var indices = dependingColumns.Select(c => c.Index).ToHashSet();
        bool needsScore = indices.RemoveWhere(i => i >= FirstOutput) > 0;
        if (needsScore) indices.UnionWith(Scorer.InputColumns.Select(c => c.Index));
        return InputSchema.Where(c => indices.Contains(c.Index));
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns) =>
        new Row(this, input, activeColumns.Select(c => c.Index).ToHashSet());

    /// <summary>Returns output <paramref name="index"/> of a scored batch as a getter for row <paramref name="row"/>().</summary>
    internal static ValueGetter<TValue> Getter<TValue>(Func<Array[]> outputs, Func<int> row, int index)
    {
        if (typeof(TValue) == typeof(VBuffer<float>))
        {
            ValueGetter<VBuffer<float>> vector = (ref VBuffer<float> value) =>
                ((VBuffer<float>[])outputs()[index])[row()].CopyTo(ref value);
            return (ValueGetter<TValue>)(Delegate)vector;
        }
        return (ref TValue value) => value = ((TValue[])outputs()[index])[row()];
    }

    private sealed class Row(ScoringMapper mapper, DataViewRow input, HashSet<int> active) : DataViewRow
    {
        private readonly IBatchReader reader = mapper.Scorer.CreateReader(input);
        private long scoredPosition = -1;
        private Array[] outputs = [];

        public override long Position => input.Position;
        public override long Batch => input.Batch;
        public override DataViewSchema Schema => mapper.OutputSchema;
        public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) => column.Index >= mapper.FirstOutput
            ? active.Contains(column.Index)
            : input.IsColumnActive(mapper.InputSchema[column.Index]);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) =>
            column.Index < mapper.FirstOutput
                ? input.GetGetter<TValue>(mapper.InputSchema[column.Index])
                : Getter<TValue>(Current, () => 0, column.Index - mapper.FirstOutput);

        private Array[] Current()
        {
            if (scoredPosition != input.Position)
            {
                reader.Read();
                outputs = reader.Score();
                scoredPosition = input.Position;
            }
            return outputs;
        }
    }
}
