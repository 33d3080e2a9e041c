namespace Microsoft.ML.MemoryFormer.Data;

/// <summary>
/// Labelled rows read into memory (text or tabular): what the supervised trainers' shared core needs to check the
/// classes and to hold rows out for validation.
/// </summary>
/// <typeparam name="TSelf">The data type itself.</typeparam>
internal interface ILabelledData<TSelf> where TSelf : ILabelledData<TSelf>
{
    /// <summary>Number of rows.</summary>
    int Count { get; }

    /// <summary>The label of row <paramref name="row"/> as a class index (classification).</summary>
    long ClassOf(int row);

    /// <summary>The rows <paramref name="rows"/>, in that order.</summary>
    TSelf Subset(int[] rows);
}
