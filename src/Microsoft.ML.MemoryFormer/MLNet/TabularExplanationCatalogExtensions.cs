namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>Adds <see cref="ExplainTabular"/> to <c>mlContext.Model</c>: per-row explanations from a whole fitted pipeline.</summary>
public static class TabularExplanationCatalogExtensions
{
    /// <summary>
    /// Explains rows of raw data through a fitted pipeline that holds a tabular MemoryFormer: the rows and the background
    /// are featurized by the pipeline's transformers before the model (the last <see cref="MemoryFormerTabularTransformer"/>
    /// in it, chains inside chains included), then explained by
    /// <see cref="MemoryFormerTabularTransformer.Explain(IDataView, IDataView, int?, int)"/>; features are named by the
    /// featurized column's slot names (<c>Concatenate</c>'s input columns, one-hot columns by their own name).
    /// </summary>
    /// <param name="catalog"><c>mlContext.Model</c>.</param>
    /// <param name="model">The fitted pipeline (e.g. <c>MapValueToKey</c> → <c>OneHotEncoding</c> → <c>Concatenate</c> →
    /// <c>MemoryFormerTabular</c> → <c>MapKeyToValue</c>), or the tabular transformer itself.</param>
    /// <param name="rows">Raw rows to explain, with the columns the pipeline reads.</param>
    /// <param name="background">Typical raw rows to compare with, e.g. the training data.</param>
    /// <param name="classIndex">The class to explain (0-based; binary: 1 is true); null explains each row's predicted class.</param>
    /// <param name="maxBackgroundRows">Most background rows read (≥ 1).</param>
    /// <returns>One explanation per row, in row order.</returns>
    /// <exception cref="ArgumentException">The pipeline holds no tabular MemoryFormer; see the transformer's method for the rest.</exception>
    public static IReadOnlyList<TabularExplanation> ExplainTabular(this ModelOperationsCatalog catalog, ITransformer model,
        IDataView rows, IDataView background, int? classIndex = null, int maxBackgroundRows = 100)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(background);
        var leaves = Leaves(model).ToList();
        int at = leaves.FindLastIndex(t => t is MemoryFormerTabularTransformer);
        if (at < 0)
            throw new ArgumentException($"The pipeline ({string.Join(" → ", leaves.Select(t => t.GetType().Name))}) holds no " +
                "MemoryFormerTabularTransformer; pass a pipeline fitted with a MemoryFormerTabular trainer.", nameof(model));
        IDataView Featurize(IDataView data) => leaves.Take(at).Aggregate(data, (d, t) => t.Transform(d));
        return ((MemoryFormerTabularTransformer)leaves[at]).Explain(Featurize(rows), Featurize(background), classIndex, maxBackgroundRows);
    }

    /// <summary>The transformers of <paramref name="model"/> in the order they run, chains flattened.</summary>
    private static IEnumerable<ITransformer> Leaves(ITransformer model) =>
        model is IEnumerable<ITransformer> chain ? chain.SelectMany(Leaves) : [model];
}
