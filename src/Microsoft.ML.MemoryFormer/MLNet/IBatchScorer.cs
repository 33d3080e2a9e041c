using Microsoft.ML.Data;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// A fitted model as the ML.NET layer sees it: which input columns it reads, which columns it appends, and how
/// it scores a buffered batch of rows at once. <see cref="ScoringMapper"/> (one row, for PredictionEngine) and
/// <see cref="BatchScoringDataView"/> (Transform over an IDataView) are built on it.
/// </summary>
internal interface IBatchScorer
{
    /// <summary>The columns the scorer reads.</summary>
    IReadOnlyList<DataViewSchema.Column> InputColumns { get; }

    /// <summary>The columns appended to the input schema, with their annotations.</summary>
    IReadOnlyList<DataViewSchema.DetachedColumn> OutputColumns { get; }

    /// <summary>Rows scored together by <see cref="BatchScoringDataView"/>.</summary>
    int BatchSize { get; }

    /// <summary>A reader whose getters are bound to <paramref name="row"/>.</summary>
    IBatchReader CreateReader(DataViewRow row);
}

/// <summary>Buffers the inputs of rows and scores them together.</summary>
internal interface IBatchReader
{
    /// <summary>Stores the inputs of the row the reader is bound to, at its current position.</summary>
    void Read();

    /// <summary>Scores every stored row and forgets them: one array per output column, one element per row.</summary>
    Array[] Score();
}
