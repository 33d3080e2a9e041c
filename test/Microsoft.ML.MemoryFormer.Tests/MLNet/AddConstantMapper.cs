using Microsoft.ML.Data;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>Row-to-row mapper of <see cref="AddConstantTransformer"/>: appends one float column to the input schema.</summary>
internal sealed class AddConstantMapper : IRowToRowMapper
{
    private readonly float _constant;
    private readonly DataViewSchema.Column _input;

    public AddConstantMapper(AddConstantTransformer transformer, DataViewSchema inputSchema)
    {
        _constant = transformer.Constant;
        _input = inputSchema.GetColumnOrNull(transformer.InputColumnName)
            ?? throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Input column '{transformer.InputColumnName}' not found.");
        if (_input.Type != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Column '{_input.Name}' must be Single, not {_input.Type}.");
        InputSchema = inputSchema;
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        builder.AddColumn(transformer.OutputColumnName, NumberDataViewType.Single);
        OutputSchema = builder.ToSchema();
    }

    public DataViewSchema InputSchema { get; }
    public DataViewSchema OutputSchema { get; }
    private int OutputIndex => InputSchema.Count;

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var indices = dependingColumns.Select(c => c.Index).ToHashSet();
        if (indices.Remove(OutputIndex))
            indices.Add(_input.Index);
        return InputSchema.Where(c => indices.Contains(c.Index));
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns) =>
        new Row(this, input, activeColumns.Any(c => c.Index == OutputIndex));

    private sealed class Row(AddConstantMapper mapper, DataViewRow input, bool outputActive) : DataViewRow
    {
        public override long Position => input.Position;
        public override long Batch => input.Batch;
        public override DataViewSchema Schema => mapper.OutputSchema;

        public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) => column.Index == mapper.OutputIndex
            ? outputActive
            : input.IsColumnActive(mapper.InputSchema[column.Index]);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (column.Index != mapper.OutputIndex)
                return input.GetGetter<TValue>(mapper.InputSchema[column.Index]);
            var source = input.GetGetter<float>(mapper._input);
            float constant = mapper._constant;
            ValueGetter<float> getter = (ref float value) =>
            {
                source(ref value);
                value += constant;
            };
            return (ValueGetter<TValue>)(Delegate)getter;
        }
    }
}
