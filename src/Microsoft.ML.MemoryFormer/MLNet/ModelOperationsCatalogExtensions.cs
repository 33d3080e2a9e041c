using Microsoft.ML.MemoryFormer.Persistence;

// In ML.NET's namespace so that `using Microsoft.ML;` is enough to see mlContext.Model.SaveAtomically.
namespace Microsoft.ML;

/// <summary>Adds <see cref="SaveAtomically"/> to <c>mlContext.Model</c>.</summary>
public static class ModelOperationsCatalogExtensions
{
    /// <summary>
    /// Saves <paramref name="model"/> like <c>mlContext.Model.Save(model, inputSchema, filePath)</c>, but crash-safe and
    /// reproducible: the zip is written to a temporary file in the same folder, flushed to disk and renamed over
    /// <paramref name="filePath"/>, so the file is always either the previous model or the complete new one; and every
    /// zip entry gets a fixed time stamp, so the same model saved twice gives byte-identical files.
    /// </summary>
    /// <remarks>
    /// Prefer it to <c>Model.Save(..., filePath)</c>, which writes the path in place (a crash or a full disk mid-save
    /// leaves a damaged model where the good one was) and stamps entries with the current time (equal models, different
    /// bytes, so checksums and caches cannot tell that nothing changed). <c>mlContext.Model.Load</c> reads the result
    /// as usual. A process killed mid-save may leave a hidden <c>.{file}.{guid}.tmp</c> file next to the model; it is
    /// never read as the model and can be deleted.
    /// </remarks>
    /// <param name="catalog"><c>mlContext.Model</c>.</param>
    /// <param name="model">The trained pipeline.</param>
    /// <param name="inputSchema">The schema of the data the model was trained on (may be null, as for <c>Save</c>).</param>
    /// <param name="filePath">The model file to write or replace.</param>
    public static void SaveAtomically(this ModelOperationsCatalog catalog, ITransformer model, DataViewSchema? inputSchema, string filePath)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(filePath);
        using var buffer = new MemoryStream();
        catalog.Save(model, inputSchema, buffer);
        var zip = new MemoryStream(buffer.ToArray(), writable: false);
        ModelArchive.WriteFileAtomically(filePath, stream => DeterministicZip.Normalize(zip, stream));
    }
}
