using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Persistence;

/// <summary>
/// A trained model's payload, independent of ML.NET: a format version and named byte entries (config JSON,
/// TorchSharp weights from <c>module.save(Stream)</c>, tokenizer description, labels, generation defaults).
/// The same entries go to a standalone checkpoint file (<see cref="SaveAtomically"/>, <see cref="Load"/>) or
/// into an ML.NET model zip (<see cref="SaveTo"/>, <see cref="LoadFrom"/>), where each entry is a zip entry.
/// </summary>
/// <remarks>
/// <para>Standalone file layout (little endian): magic <c>"MFARCHV\0"</c>, int32 format version, int32 entry count,
/// then per entry a length-prefixed UTF-8 name, an int64 byte count, the 32-byte SHA-256 of the bytes and the bytes;
/// then the end magic <c>"MFEND\0\0\0"</c>. In an ML.NET model the model block holds the format version and each
/// entry's name, byte count and SHA-256; the bytes are binary streams (zip entries) next to it.</para>
/// <para>Reading trusts nothing in the file: the entry count, name lengths and byte counts are bounded by limits and
/// by the bytes actually present (no allocation larger than the data), names must be plain file names, and every
/// entry's SHA-256 is checked. Every problem is an <see cref="InvalidDataException"/> that says what is wrong.
/// Version 1 files (no checksums) are refused with a message asking to save the model again.</para>
/// </remarks>
internal sealed class ModelArchive
{
    /// <summary>The format version this code writes and the only one it reads (2: per-entry SHA-256).</summary>
    public const int CurrentFormatVersion = 2;

    /// <summary>Most entries an archive may hold (a model has about six).</summary>
    public const int MaxEntries = 64;

    /// <summary>Longest entry name, in UTF-8 bytes.</summary>
    public const int MaxNameLength = 64;

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

    private const int HashLength = 32;
    private static readonly byte[] Magic = "MFARCHV\0"u8.ToArray();
    private static readonly byte[] EndMagic = "MFEND\0\0\0"u8.ToArray();

    private readonly SortedDictionary<string, byte[]> _entries = new(StringComparer.Ordinal);

    /// <summary>The entry names, in ordinal order.</summary>
    public IReadOnlyCollection<string> EntryNames => _entries.Keys;

    /// <summary>Sets entry <paramref name="name"/> (a letter or digit, then letters, digits, '.', '_', '-') to <paramref name="bytes"/>.</summary>
    public ModelArchive Set(string name, byte[] bytes)
    {
        if (!IsPlainName(name))
            throw new ArgumentException($"Entry name '{name}' must start with an ASCII letter or digit and hold only letters, digits, '.', '_' or '-' (at most {MaxNameLength}).", nameof(name));
        if (_entries.Count >= MaxEntries && !_entries.ContainsKey(name))
            throw new ArgumentException($"A model archive holds at most {MaxEntries} entries.", nameof(name));
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

    /// <summary>
    /// Parses entry <paramref name="name"/> with <paramref name="parse"/>; any parse or validation error
    /// (<see cref="JsonException"/>, <see cref="ArgumentException"/>, ...) becomes an <see cref="InvalidDataException"/>
    /// that names the entry.
    /// </summary>
    public T GetJson<T>(string name, Func<string, T?> parse) where T : class
    {
        var text = GetText(name);
        try
        {
            return parse(text) ?? throw new InvalidDataException($"The model archive entry '{name}' is empty (JSON null).");
        }
        catch (Exception e) when (e is JsonException or ArgumentException or FormatException or NotSupportedException or OverflowException)
        {
            throw new InvalidDataException($"The model archive entry '{name}' is invalid: {e.Message}", e);
        }
    }

    /// <summary>Entry <paramref name="name"/> as a JSON record of type <typeparamref name="T"/> (see <see cref="GetJson{T}(string, Func{string, T})"/>).</summary>
    public T GetJson<T>(string name, JsonSerializerOptions? options = null) where T : class =>
        GetJson(name, text => JsonSerializer.Deserialize<T>(text, options));

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
            writer.Write(SHA256.HashData(bytes));
            writer.Write(bytes);
        }
        writer.Write(EndMagic);
    }

    /// <summary>Reads the standalone format; throws <see cref="InvalidDataException"/> on a foreign, older, newer, damaged or truncated file.</summary>
    public static ModelArchive ReadFrom(Stream stream)
    {
        using var reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        try
        {
            if (!reader.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic))
                throw new InvalidDataException("Not a MemoryFormer model archive (bad magic bytes).");
            CheckFormatVersion(reader.ReadInt32());
            var archive = new ModelArchive();
            int count = ReadEntryCount(reader);
            for (int i = 0; i < count; i++)
            {
                string name = ReadName(reader);
                long length = reader.ReadInt64();
                var hash = ReadExactly(reader, HashLength, name);
                if (length < 0 || length > Array.MaxLength || (stream.CanSeek && length > stream.Length - stream.Position))
                    throw new InvalidDataException($"Model archive entry '{name}' declares {length} bytes, more than the file holds (truncated or damaged).");
                archive.Add(name, ReadExactly(reader, (int)length, name), hash);
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
    /// Runs <paramref name="write"/> on a temporary file in the target folder (named <c>.{file}.{guid}.tmp</c>), flushes
    /// it to disk and renames it over <paramref name="path"/>. If <paramref name="write"/> throws, the temporary file is
    /// deleted and the target is untouched; if the process dies, the target is untouched and the temporary file stays.
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
            foreach (var (name, bytes) in _entries)
            {
                writer.Write(name);
                writer.Write((long)bytes.Length);
                writer.Write(SHA256.HashData(bytes));
            }
        }, _entries);

    /// <summary>
    /// Reads what <see cref="SaveTo"/> stored (from a transformer's <c>Create(IHostEnvironment, object)</c> loader);
    /// throws <see cref="InvalidDataException"/> when an entry is missing, longer than recorded or damaged.
    /// </summary>
    public static ModelArchive LoadFrom(object modelLoadContext, ModelSignatureInfo signature)
    {
        var reader = MLNetInternals.BeginLoadModel(modelLoadContext, signature);
        var archive = new ModelArchive();
        try
        {
            CheckFormatVersion(reader.ReadInt32());
            int count = ReadEntryCount(reader);
            var expected = new (string Name, long Length, byte[] Hash)[count];
            for (int i = 0; i < count; i++)
            {
                string name = ReadName(reader);
                long length = reader.ReadInt64();
                if (length < 0 || length > Array.MaxLength)
                    throw new InvalidDataException($"Model entry '{name}' of '{signature.LoaderSignature}' declares an invalid length {length}.");
                expected[i] = (name, length, ReadExactly(reader, HashLength, name));
            }
            foreach (var (name, length, hash) in expected)
            {
                var bytes = MLNetInternals.TryLoadBinaryStream(modelLoadContext, name, maxBytes: length)
                    ?? throw new InvalidDataException($"The ML.NET model lacks the entry '{name}' of '{signature.LoaderSignature}'.");
                if (bytes.Length != length)
                    throw new InvalidDataException($"Model entry '{name}' of '{signature.LoaderSignature}' holds {(bytes.Length > length ? "more" : "fewer")} bytes than the {length} recorded (damaged).");
                archive.Add(name, bytes, hash);
            }
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"The model block of '{signature.LoaderSignature}' is truncated.", e);
        }
        return archive;
    }

    private void Add(string name, byte[] bytes, byte[] hash)
    {
        if (_entries.ContainsKey(name))
            throw new InvalidDataException($"The model archive holds entry '{name}' twice.");
        if (!SHA256.HashData(bytes).AsSpan().SequenceEqual(hash))
            throw new InvalidDataException($"The model archive entry '{name}' is damaged: its SHA-256 does not match the one recorded when it was saved.");
        _entries[name] = bytes;
    }

    private static int ReadEntryCount(BinaryReader reader)
    {
        int count = reader.ReadInt32();
        if (count is < 0 or > MaxEntries)
            throw new InvalidDataException($"The model archive declares {count} entries; at most {MaxEntries} are allowed (damaged file?).");
        return count;
    }

    /// <summary>Reads a BinaryWriter string (7-bit length + UTF-8) of at most <see cref="MaxNameLength"/> bytes that is a plain name.</summary>
    private static string ReadName(BinaryReader reader)
    {
        int length;
        try
        {
            length = reader.Read7BitEncodedInt();
        }
        catch (FormatException e)
        {
            throw new InvalidDataException("A model archive entry name has a damaged length.", e);
        }
        if (length is < 1 or > MaxNameLength)
            throw new InvalidDataException($"A model archive entry name is {length} bytes long; names are 1 to {MaxNameLength} bytes.");
        var bytes = reader.ReadBytes(length);
        if (bytes.Length != length) throw new EndOfStreamException();
        var name = Encoding.UTF8.GetString(bytes);
        if (!IsPlainName(name))
            throw new InvalidDataException($"The model archive holds an entry named '{name}'; names must be plain file names (letters, digits, '.', '_', '-'; no folders).");
        return name;
    }

    /// <summary>Reads exactly <paramref name="count"/> bytes, in chunks, so a false length cannot allocate more than the data present.</summary>
    private static byte[] ReadExactly(BinaryReader reader, int count, string name)
    {
        const int chunk = 1 << 20;
        if (count <= chunk)
        {
            var small = reader.ReadBytes(count);
            return small.Length == count ? small : throw Truncated($"in entry '{name}'");
        }
        using var buffer = new MemoryStream();
        var block = new byte[chunk];
        while (buffer.Length < count)
        {
            int read = reader.Read(block, 0, (int)Math.Min(chunk, count - buffer.Length));
            if (read == 0) throw Truncated($"in entry '{name}'");
            buffer.Write(block, 0, read);
        }
        return buffer.ToArray();
    }

    private static void CheckFormatVersion(int version)
    {
        if (version == 1)
            throw new InvalidDataException(
                "This model was saved in MemoryFormer archive format version 1, which has no checksums; this library reads " +
                $"version {CurrentFormatVersion} only. Load it with the library version that saved it and save it again.");
        if (version != CurrentFormatVersion)
            throw new InvalidDataException(
                $"Unknown MemoryFormer model archive format version {version}; this library reads version {CurrentFormatVersion}.");
    }

    private static bool IsPlainName(string? name) =>
        !string.IsNullOrEmpty(name) && name.Length <= MaxNameLength && char.IsAsciiLetterOrDigit(name[0])
        && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    private static InvalidDataException Truncated(string where, Exception? inner = null) =>
        new($"The MemoryFormer model archive is truncated ({where}).", inner);
}
