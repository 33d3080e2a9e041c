using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

public class BatchScoringDataViewTests
{
    private sealed class Row
    {
        public float X { get; set; }
        public string Name { get; set; } = "";
    }

    /// <summary>Scores Y = 2X and a vector [X, −X], counting how many batches it scored.</summary>
    private sealed class DoublingScorer(DataViewSchema schema, int batchSize) : IBatchScorer
    {
        public int Batches;
        public List<int> BatchSizes { get; } = [];
        public IReadOnlyList<DataViewSchema.Column> InputColumns { get; } = [schema["X"]];
        public IReadOnlyList<DataViewSchema.DetachedColumn> OutputColumns { get; } =
        [
            new("Y", NumberDataViewType.Single),
            new("V", new VectorDataViewType(NumberDataViewType.Single, 2)),
        ];
        public int BatchSize => batchSize;

        public IBatchReader CreateReader(DataViewRow row) => new Reader(this, row.GetGetter<float>(InputColumns[0]));

        private sealed class Reader(DoublingScorer owner, ValueGetter<float> x) : IBatchReader
        {
            private readonly List<float> buffered = [];
            public void Read() { float v = 0; x(ref v); buffered.Add(v); }
            public Array[] Score()
            {
                owner.Batches++;
                owner.BatchSizes.Add(buffered.Count);
                var y = buffered.Select(v => 2 * v).ToArray();
                var vectors = buffered.Select(v => new VBuffer<float>(2, [v, -v])).ToArray();
                buffered.Clear();
                return [y, vectors];
            }
        }
    }

    [Fact]
    public void Transform_scores_in_batches_and_keeps_pass_through_columns_aligned()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 7).Select(i => new Row { X = i, Name = $"r{i}" }));
        var scorer = new DoublingScorer(data.Schema, batchSize: 3);
        var view = new BatchScoringDataView(data, new ScoringMapper(scorer, data.Schema));
        var names = view.GetColumn<string>("Name").ToArray();
        var y = view.GetColumn<float>("Y").ToArray();
        var v = view.GetColumn<float[]>("V").ToArray();
        Assert.Equal(Enumerable.Range(0, 7).Select(i => $"r{i}"), names);
        Assert.Equal(Enumerable.Range(0, 7).Select(i => 2f * i), y);
        Assert.Equal(Enumerable.Range(0, 7).Select(i => new[] { (float)i, -i }), v);
        Assert.Equal([3, 3, 1, 3, 3, 1], scorer.BatchSizes);        // two passes (Y, then V), three batches each
    }

    [Fact]
    public void Row_mapper_scores_single_rows_for_prediction_engines()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(new[] { new Row { X = 5 } });
        var mapper = new ScoringMapper(new DoublingScorer(data.Schema, 8), data.Schema);
        using var cursor = data.GetRowCursor(data.Schema);
        var row = mapper.GetRow(cursor, mapper.OutputSchema);
        var getter = row.GetGetter<float>(mapper.OutputSchema["Y"]);
        Assert.True(cursor.MoveNext());
        float y = 0;
        getter(ref y);
        Assert.Equal(10f, y);
        Assert.Equal(["X"], mapper.GetDependencies([mapper.OutputSchema["Y"]]).Select(c => c.Name));
    }
}
