using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Persistence;

// In ML.NET's namespace so that `using Microsoft.ML;` is enough to see mlContext.Model.SaveAtomically.
namespace Microsoft.ML;

/// <summary>Adds <see cref="SaveAtomically"/> and <see cref="LoadChecked(ModelOperationsCatalog, string, out DataViewSchema)"/> to <c>mlContext.Model</c>.</summary>
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
    /// as usual. A process killed mid-save may leave a hidden <c>.{file}.{pid}.{guid}.tmp</c> file next to the model; it
    /// is never read as the model, and the next save to the same path deletes it. The model's entries are streamed
    /// (through ML.NET's temporary files), so its size is not limited by memory.
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
        // ML.NET's zip goes to a temporary file first (not memory: a model may exceed 2 GB), then is rewritten with fixed
        // time stamps into the target, atomically.
        var fullPath = Path.GetFullPath(filePath);
        if (Path.GetDirectoryName(fullPath) is { } folder && !Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Cannot save '{filePath}': its folder '{folder}' does not exist. Create it first " +
                "(Directory.CreateDirectory).");
        var raw = ModelArchive.TemporaryFileFor(fullPath);
        try
        {
            using (var stream = new FileStream(raw, FileMode.CreateNew, FileAccess.ReadWrite))
            {
                catalog.Save(model, inputSchema, stream);
                stream.Position = 0;
                ModelArchive.WriteFileAtomically(fullPath, target => DeterministicZip.Normalize(stream, target));
            }
        }
        finally
        {
            File.Delete(raw);
        }
    }

    /// <summary>
    /// Loads a model like <c>mlContext.Model.Load(filePath, out inputSchema)</c>, after registering the MemoryFormer
    /// loaders with the catalog's MLContext, and reports every kind of damaged or foreign file the same way: as an
    /// <see cref="InvalidDataException"/> whose message says what is wrong (the original exception is its inner one).
    /// </summary>
    /// <remarks>
    /// ML.NET's own <c>Load</c> reports a damaged file as one of several exceptions depending on where the damage is:
    /// <see cref="InvalidDataException"/> or <see cref="FormatException"/> (the zip or ML.NET's header),
    /// <see cref="InvalidOperationException"/> (an ML.NET entry is missing), or a
    /// <see cref="System.Reflection.TargetInvocationException"/> around the <see cref="InvalidDataException"/> that the
    /// MemoryFormer loader threw (a MemoryFormer entry is missing, damaged or inconsistent). This method unwraps them.
    /// A missing file still throws <see cref="FileNotFoundException"/>.
    /// </remarks>
    /// <param name="catalog"><c>mlContext.Model</c>.</param>
    /// <param name="filePath">A model saved by <see cref="SaveAtomically"/> or <c>mlContext.Model.Save</c>.</param>
    /// <param name="inputSchema">The input schema saved with the model.</param>
    /// <returns>The loaded model.</returns>
    /// <exception cref="InvalidDataException">The file is damaged, truncated, not an ML.NET model, or holds a
    /// MemoryFormer model whose entries are damaged or do not belong together.</exception>
    /// <exception cref="InvalidOperationException">The MLContext asks for a GPU (<c>GpuDeviceId</c>) that CUDA cannot give and
    /// <c>FallbackToCpu</c> is off: the file is fine.</exception>
    public static ITransformer LoadChecked(this ModelOperationsCatalog catalog, string filePath, out DataViewSchema inputSchema)
    {
        ArgumentException.ThrowIfNullOrEmpty(filePath);
        using var stream = File.OpenRead(filePath);
        return LoadChecked(catalog, stream, out inputSchema, filePath);
    }

    /// <summary>Loads a model from <paramref name="stream"/>; see <see cref="LoadChecked(ModelOperationsCatalog, string, out DataViewSchema)"/>.</summary>
    /// <param name="catalog"><c>mlContext.Model</c>.</param>
    /// <param name="stream">A readable, seekable stream holding the model zip.</param>
    /// <param name="inputSchema">The input schema saved with the model.</param>
    /// <returns>The loaded model.</returns>
    /// <exception cref="InvalidDataException">The bytes are not a loadable model (see the other overload).</exception>
    public static ITransformer LoadChecked(this ModelOperationsCatalog catalog, Stream stream, out DataViewSchema inputSchema) =>
        LoadChecked(catalog, stream, out inputSchema, "The model stream");

    private static ITransformer LoadChecked(ModelOperationsCatalog catalog, Stream stream, out DataViewSchema inputSchema, string what)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(stream);
        MLNetInternals.GetEnvironment(catalog).ComponentCatalog.RegisterMemoryFormer();
        try
        {
            return catalog.Load(stream, out inputSchema);
        }
        catch (Exception e) when (Causes(e).FirstOrDefault(x => x.Data.Contains(MemoryFormer.Runtime.TorchRuntime.DeviceNotAvailable)) is { } device)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(device);   // a setting to change, not a damaged file
            throw;
        }
        catch (Exception e) when (e is InvalidDataException or FormatException or InvalidOperationException
                                      or System.Reflection.TargetInvocationException or EndOfStreamException)
        {
            var cause = Causes(e).OfType<InvalidDataException>().FirstOrDefault() ?? e.GetBaseException();
            throw new InvalidDataException($"{what} is not a loadable model: {cause.Message}", e);
        }
    }

    private static IEnumerable<Exception> Causes(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
            yield return x;
    }
}
