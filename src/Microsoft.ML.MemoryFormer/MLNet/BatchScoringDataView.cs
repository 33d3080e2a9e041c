using Microsoft.ML.Data;
using Microsoft.ML.Model.OnnxConverter;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// Transform output that scores rows in batches: a look-ahead cursor reads the inputs of up to
/// <see cref="IBatchScorer.BatchSize"/> rows and scores them at once, while a second cursor over the same source
/// moves in step and serves the pass-through columns. Rows keep their order; shuffling is not supported.
/// </summary>
/// <remarks>
/// ML.NET's <c>ConvertToOnnx</c> (package Microsoft.ML.OnnxConverter) translates a transformed view by walking it back
/// through the transforms that can save themselves as ONNX (its internal <c>ITransformCanSaveOnnx</c>). A view it cannot
/// walk ends the walk without a word, and the file it then writes takes the scores as inputs and returns them unchanged.
/// So this view is one it can walk, and stops the conversion there with <see cref="NotSupportedException"/> naming the
/// route that works: the MemoryFormer transformer converted on its own (<c>Onnx/MemoryFormerOnnxExtensions.cs</c>).
/// </remarks>
internal sealed class BatchScoringDataView(IDataView source, ScoringMapper mapper) : IDataView, ITransformCanSaveOnnx
{
    /// <summary>Why a pipeline with a MemoryFormer model does not convert with ML.NET's converter, and what does.</summary>
    internal const string OnnxConversionMessage =
        "ML.NET's ConvertToOnnx (Microsoft.ML.OnnxConverter) has no translation for MemoryFormer models, which export as " +
        "opset 18 graphs of their own; without this stop it would write a file that returns its inputs unchanged. Export " +
        "the MemoryFormer transformer on its own: transformer.ExportToOnnx(path or stream), or " +
        "MemoryFormerOnnxExtensions.ConvertToOnnx(mlContext.Model, transformer, data, stream) (namespace " +
        "Microsoft.ML.MemoryFormer.Onnx). A call written mlContext.Model.ConvertToOnnx(transformer, data, stream) reaches " +
        "that method, except from code in a namespace inside Microsoft.ML, where C# binds ML.NET's first. In a fitted chain " +
        "the transformer is one of its elements (e.g. chain.LastTransformer); its graph takes the model's own inputs (the " +
        "features vector; token ids for text, see TokenizeForOnnx), so run the steps before it in ML.NET, or convert them " +
        "on their own with ML.NET's ConvertToOnnx.";

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

    IDataView IDataTransform.Source => source;

    bool ICanSaveOnnx.CanSaveOnnx(OnnxContext ctx) => throw new NotSupportedException(OnnxConversionMessage);

    void ISaveAsOnnx.SaveAsOnnx(OnnxContext ctx) => throw new NotSupportedException(OnnxConversionMessage);

    void ICanSaveModel.Save(ModelSaveContext ctx) => throw new NotSupportedException(
        "The scored view of a MemoryFormer transformer is not saved on its own: save the fitted transformer or chain with " +
        "mlContext.Model.Save(model, schema, path).");

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
