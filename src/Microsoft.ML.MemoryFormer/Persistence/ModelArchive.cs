using System.Text;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Persistence;

/// <summary>
/// A trained model's payload, independent of ML.NET: a format version and named byte entries (config JSON,
/// TorchSharp weights from <c>module.save(Stream)</c>, tokenizer description, labels, generation defaults).
/// The same entries go to a standalone checkpoint file (<see cref="SaveAtomically"/>, <see cref="Load"/>) or
/// into an ML.NET model zip (<see cref="SaveTo"/>, <see cref="LoadFrom"/>), where each entry is a zip entry.
/// </summary>
/// <remarks>
/// Standalone file layout (little endian): magic <c>"MFARCHV\0"</c>, int32 format version, int32 entry count, then per
/// entry a length-prefixed UTF-8 name, an int64 byte count and the bytes; then the end magic <c>"MFEND\0\0\0"</c>.
/// In an ML.NET model the model block holds the format version and the entry names; the bytes are binary streams.
/// </remarks>
internal sealed class ModelArchive
{
    /// <summary>The format version this code writes and the only one it reads.</summary>
    public const int CurrentFormatVersion = 1;

    /// <summary>Architecture config (JSON).</summary>
    public const string ConfigEntry = "config.json";

    /// <summary>TorchSharp state dict written by <c>module.save(Stream)</c>.</summary>
    public const string WeightsEntry = "weights.bin";

    /// <summary>How to rebuild the tokenizer (JSON).</summary>
    public const string TokenizerEntry = "tokenizer.json";

    /// <summary>Class labels of a classification head (JSON).</summary>
    public const string LabelsEntry = "labels.json";

    /// <summary>Default generation options (JSON).</summary>
    public const string GenerationEntry = "generation.json";

    private static readonly byte[] Magic = "MFARCHV\0"u8.ToArray();
    private static readonly byte[] EndMagic = "MFEND\0\0\0"u8.ToArray();

    private readonly SortedDictionary<string, byte[]> _entries = new(StringComparer.Ordinal);

    /// <summary>The entry names, in ordinal order.</summary>
    public IReadOnlyCollection<string> EntryNames => _entries.Keys;

    /// <summary>Sets entry <paramref name="name"/> (letters, digits, '.', '_', '-') to <paramref name="bytes"/>.</summary>
    public ModelArchive Set(string name, byte[] bytes)
    {
        CheckName(name);
        _entries[name] = bytes ?? throw new ArgumentNullException(nameof(bytes));
        return this;
    }

    /// <summary>Sets entry <paramref name="name"/> to <paramref name="text"/> in UTF-8.</summary>
    public ModelArchive SetText(string name, string text) => Set(name, Encoding.UTF8.GetBytes(text));

    /// <summary>Whether entry <paramref name="name"/> exists.</summary>
    public bool Contains(string name) => _entries.ContainsKey(name);

    /// <summary>The bytes of entry <paramref name="name"/>; throws <see cref="InvalidDataException"/> naming it if absent.</summary>
    public byte[] Get(string name) => _entries.TryGetValue(name, out var bytes)
        ? bytes
        : throw new InvalidDataException($"The model archive has no entry '{name}' (it has: {string.Join(", ", _entries.Keys)}).");

    /// <summary>Entry <paramref name="name"/> decoded as UTF-8.</summary>
    public string GetText(string name) => Encoding.UTF8.GetString(Get(name));

    /// <summary>Writes the standalone format to <paramref name="stream"/>.</summary>
    public void WriteTo(Stream stream)
    {
        using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        writer.Write(Magic);
        writer.Write(CurrentFormatVersion);
        writer.Write(_entries.Count);
        foreach (var (name, bytes) in _entries)
        {
            writer.Write(name);
            writer.Write((long)bytes.Length);
            writer.Write(bytes);
        }
        writer.Write(EndMagic);
    }

    /// <summary>Reads the standalone format; throws <see cref="InvalidDataException"/> on a foreign, newer or truncated file.</summary>
    public static ModelArchive ReadFrom(Stream stream)
    {
        using var reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        try
        {
            if (!reader.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic))
                throw new InvalidDataException("Not a MemoryFormer model archive (bad magic bytes).");
            CheckFormatVersion(reader.ReadInt32());
            var archive = new ModelArchive();
            int count = reader.ReadInt32();
            for (int i = 0; i < count; i++)
            {
                string name = reader.ReadString();
                long length = reader.ReadInt64();
                if (length < 0 || length > Array.MaxLength)
                    throw new InvalidDataException($"Model archive entry '{name}' has an invalid length {length}.");
                var bytes = reader.ReadBytes((int)length);
                if (bytes.Length != length)
                    throw Truncated($"in entry '{name}'");
                archive.Set(name, bytes);
            }
            if (!reader.ReadBytes(EndMagic.Length).AsSpan().SequenceEqual(EndMagic))
                throw Truncated("at the end marker");
            return archive;
        }
        catch (EndOfStreamException e)
        {
            throw Truncated("unexpected end of data", e);
        }
    }

    /// <summary>Loads a checkpoint file written by <see cref="SaveAtomically"/>.</summary>
    public static ModelArchive Load(string path)
    {
        using var stream = File.OpenRead(path);
        return ReadFrom(stream);
    }

    /// <summary>Writes a checkpoint file such that <paramref name="path"/> is either the old file or the complete new one.</summary>
    public void SaveAtomically(string path) => WriteFileAtomically(path, WriteTo);

    /// <summary>
    /// Runs <paramref name="write"/> on a temporary file in the target folder, flushes it to disk and moves it over
    /// <paramref name="path"/>. If <paramref name="write"/> throws, the temporary file is deleted and the target is untouched.
    /// </summary>
    public static void WriteFileAtomically(string path, Action<Stream> write)
    {
        var fullPath = Path.GetFullPath(path);
        var temp = Path.Combine(Path.GetDirectoryName(fullPath)!, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, fullPath, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    /// <summary>Stores the archive in an ML.NET model (from <c>ICanSaveModel.Save</c>): one zip entry per archive entry.</summary>
    public void SaveTo(ModelSaveContext ctx, ModelSignatureInfo signature) =>
        MLNetInternals.SaveModel(ctx, signature, writer =>
        {
            writer.Write(CurrentFormatVersion);
            writer.Write(_entries.Count);
            foreach (var name in _entries.Keys)
                writer.Write(name);
        }, _entries);

    /// <summary>Reads what <see cref="SaveTo"/> stored (from a transformer's <c>Create(IHostEnvironment, object)</c> loader).</summary>
    public static ModelArchive LoadFrom(object modelLoadContext, ModelSignatureInfo signature)
    {
        var reader = MLNetInternals.BeginLoadModel(modelLoadContext, signature);
        CheckFormatVersion(reader.ReadInt32());
        var names = new string[reader.ReadInt32()];
        for (int i = 0; i < names.Length; i++)
            names[i] = reader.ReadString();

        var archive = new ModelArchive();
        foreach (var name in names)
            archive.Set(name, MLNetInternals.TryLoadBinaryStream(modelLoadContext, name)
                ?? throw new InvalidDataException($"The ML.NET model lacks the entry '{name}' of '{signature.LoaderSignature}'."));
        return archive;
    }

    private static void CheckFormatVersion(int version)
    {
        if (version != CurrentFormatVersion)
            throw new InvalidDataException(
                $"Unknown MemoryFormer model archive format version {version}; this library reads version {CurrentFormatVersion}.");
    }

    private static void CheckName(string name)
    {
        if (string.IsNullOrEmpty(name) || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            throw new ArgumentException($"Entry name '{name}' must be non-empty ASCII letters, digits, '.', '_' or '-'.", nameof(name));
    }

    private static InvalidDataException Truncated(string where, Exception? inner = null) =>
        new($"The MemoryFormer model archive is truncated ({where}).", inner);
}
