using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Microsoft.ML.MemoryFormer.Persistence;

/// <summary>
/// A trained model's payload, independent of ML.NET: a format version and named byte entries (config JSON,
/// TorchSharp weights from <c>module.save(Stream)</c>, tokenizer description, labels, generation defaults).
/// The same entries go to a standalone checkpoint file (<see cref="SaveAtomically"/>, <see cref="Load"/>) or
/// into an ML.NET model zip (<see cref="SaveTo"/>, <see cref="LoadFrom"/>), where each entry is a zip entry.
/// </summary>
/// <remarks>
/// <para>Large entries (weights, optimizer moments) need not pass through memory: <see cref="SetStreamed"/> entries are
/// written straight into the file or the ML.NET zip entry when saved, and <see cref="Load"/> and <see cref="LoadFrom"/>
/// leave entries above <see cref="DefaultInMemoryLimit"/> where they are, read through <see cref="ReadEntry"/> (or
/// <see cref="OpenRead"/> for a file). So a model or checkpoint of any size is written and read with memory for one
/// tensor at a time, and no entry is limited to the 2 GB of a .NET array. A loaded archive keeps its file open until
/// disposed.</para>
/// <para>Standalone file layout (little endian): magic <c>"MFARCHV\0"</c>, int32 format version, int32 entry count,
/// then per entry a length-prefixed UTF-8 name, an int64 byte count, the 32-byte SHA-256 of the bytes and the bytes;
/// then the end magic <c>"MFEND\0\0\0"</c>. In an ML.NET model the model block holds the format version and each
/// entry's name, byte count and SHA-256; the bytes are binary streams (zip entries) next to it.</para>
/// <para>Reading trusts nothing in the file: the entry count, name lengths and byte counts are bounded by limits and
/// by the bytes actually present (no allocation larger than the data), names must be plain file names, and every
/// entry's SHA-256 is checked. Every problem is an <see cref="InvalidDataException"/> that says what is wrong.
/// Version 1 files (no checksums) are refused with a message asking to save the model again.</para>
/// </remarks>
internal sealed partial class ModelArchive : IDisposable
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

    /// <summary>
    /// Entries up to this many bytes are read into memory by <see cref="Load"/> and <see cref="LoadFrom"/>; larger ones
    /// (weights, optimizer state) are read in place, as streams.
    /// </summary>
    public const long DefaultInMemoryLimit = 64L << 10;

    private const int HashLength = 32;
    private static readonly byte[] Magic = "MFARCHV\0"u8.ToArray();
    private static readonly byte[] EndMagic = "MFEND\0\0\0"u8.ToArray();

    private readonly SortedDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private Stream? _file;
    private bool _borrowsFile;

    /// <summary>The entry names, in ordinal order.</summary>
    public IReadOnlyCollection<string> EntryNames => _entries.Keys;

    /// <summary>Sets entry <paramref name="name"/> (a letter or digit, then letters, digits, '.', '_', '-') to <paramref name="bytes"/>.</summary>
    public ModelArchive Set(string name, byte[] bytes) =>
        Put(name, new Entry { Bytes = bytes ?? throw new ArgumentNullException(nameof(bytes)), Length = bytes.Length });

    /// <summary>
    /// Sets entry <paramref name="name"/> to what <paramref name="write"/> writes when the archive is saved to a file
    /// (<see cref="WriteTo"/> on a seekable stream): its bytes go straight to the file and are never held in memory.
    /// The stream given to <paramref name="write"/> may be disposed by it.
    /// </summary>
    public ModelArchive SetStreamed(string name, Action<Stream> write) =>
        Put(name, new Entry { Write = write ?? throw new ArgumentNullException(nameof(write)), Length = -1 });

    private ModelArchive Put(string name, Entry entry)
    {
        if (!IsPlainName(name))
            throw new ArgumentException($"Entry name '{name}' must start with an ASCII letter or digit and hold only letters, digits, '.', '_' or '-' (at most {MaxNameLength}).", nameof(name));
        if (_entries.Count >= MaxEntries && !_entries.ContainsKey(name))
            throw new ArgumentException($"A model archive holds at most {MaxEntries} entries.", nameof(name));
        _entries[name] = entry;
        return this;
    }

    /// <summary>Sets every entry of <paramref name="part"/> here, named <paramref name="prefix"/> + its name (the entries of
    /// one model of several, e.g. an ensemble member); bytes and streamed writers are shared, not copied.</summary>
    public ModelArchive SetAll(string prefix, ModelArchive part)
    {
        ArgumentNullException.ThrowIfNull(part);
        foreach (var (name, entry) in part._entries) Put(prefix + name, entry);
        return this;
    }

    /// <summary>The entries named <paramref name="prefix"/> + name, as an archive of the names without the prefix (the
    /// inverse of <see cref="SetAll"/>). It reads through this archive's file and ML.NET streams; disposing it closes nothing.</summary>
    public ModelArchive Part(string prefix)
    {
        var part = new ModelArchive { _file = _file, _borrowsFile = true };
        foreach (var (name, entry) in _entries)
            if (name.Length > prefix.Length && name.StartsWith(prefix, StringComparison.Ordinal))
                part._entries[name[prefix.Length..]] = entry;
        return part;
    }

    /// <summary>Sets entry <paramref name="name"/> to <paramref name="text"/> in UTF-8.</summary>
    public ModelArchive SetText(string name, string text) => Set(name, Encoding.UTF8.GetBytes(text));

    /// <summary>Whether entry <paramref name="name"/> exists.</summary>
    public bool Contains(string name) => _entries.ContainsKey(name);

    /// <summary>The bytes of entry <paramref name="name"/>; throws <see cref="InvalidDataException"/> naming it if absent.</summary>
    /// <exception cref="NotSupportedException">The entry is larger than a .NET array (2 GB); read it with <see cref="ReadEntry"/>.</exception>
    public byte[] Get(string name)
    {
        var entry = Find(name);
        if (entry.Bytes is { } bytes)
            return bytes;
        NotSupportedException TooLarge(Exception? inner) => new($"The model archive entry '{name}' is larger than one .NET array can " +
            "hold (2 GB); it can only be read or written as a stream.", inner);
        if (entry.Length > Array.MaxLength)
            throw TooLarge(null);
        var stream = new MemoryStream();
        try
        {
            WriteEntry(name, stream);                                      // a streamed entry's writer may dispose it
        }
        catch (IOException e) when (!stream.CanSeek || stream.Length >= Array.MaxLength / 2)
        {
            throw TooLarge(e);
        }
        return stream.ToArray();
    }

    /// <summary>
    /// The bytes of entry <paramref name="name"/> as a read-only stream, in memory or read in place from the archive's
    /// file. An entry of an ML.NET model (<see cref="LoadFrom"/>) is read with <see cref="ReadEntry"/> instead.
    /// </summary>
    public Stream OpenRead(string name)
    {
        var entry = Find(name);
        if (entry.Bytes is { } bytes)
            return new MemoryStream(bytes, writable: false);
        if (entry.Write is not null)
            throw new InvalidOperationException($"The model archive entry '{name}' is written when the archive is saved; it cannot be read before.");
        if (entry.Source is not null)
            throw new InvalidOperationException($"The model archive entry '{name}' is read from the ML.NET model while it loads; use ReadEntry.");
        ObjectDisposedException.ThrowIf(_file is null, this);
        return new EntryReadStream(_file, entry.Offset, entry.Length);
    }

    /// <summary>
    /// Runs <paramref name="read"/> on the bytes of entry <paramref name="name"/>: a seekable stream of exactly the
    /// entry's bytes, valid during the call, wherever the entry is (memory, the archive's file, an ML.NET model).
    /// </summary>
    public void ReadEntry(string name, Action<Stream> read)
    {
        var entry = Find(name);
        if (entry.Source is { } source)
        {
            source(stream => read(stream.CanSeek ? new EntryReadStream(stream, 0, entry.Length) : stream));
            return;
        }
        using var opened = OpenRead(name);
        read(opened);
    }

    /// <summary>Writes entry <paramref name="name"/>'s bytes to <paramref name="target"/>, wherever they are.</summary>
    private void WriteEntry(string name, Stream target)
    {
        var entry = Find(name);
        if (entry.Bytes is { } bytes)
            target.Write(bytes);
        else if (entry.Write is { } write)
            write(target);
        else
            ReadEntry(name, source => source.CopyTo(target));
    }

    /// <summary>
    /// The SHA-256 of <paramref name="stream"/>'s bytes up to <paramref name="limit"/>; <paramref name="count"/> is how
    /// many it held, <paramref name="limit"/> + 1 meaning more (the rest is not read).
    /// </summary>
    private static byte[] Sha256(Stream stream, long limit, out long count)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var block = new byte[1 << 20];
        count = 0;
        while (count <= limit)
        {
            int read = stream.Read(block, 0, (int)Math.Min(block.Length, limit + 1 - count));
            if (read == 0) break;
            sha.AppendData(block, 0, (int)Math.Min(read, limit - count));
            count += read;
        }
        return sha.GetHashAndReset();
    }

    /// <summary>The byte count of entry <paramref name="name"/> (-1 for a streamed entry not yet written).</summary>
    public long LengthOf(string name) => Find(name).Length;

    private Entry Find(string name) => _entries.TryGetValue(name, out var entry)
        ? entry
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

    /// <summary>Throws <see cref="InvalidDataException"/> when a file being read holds entry <paramref name="name"/> a second time.</summary>
    private void CheckNotRead(string name)
    {
        if (_entries.ContainsKey(name))
            throw new InvalidDataException($"The model archive holds entry '{name}' twice.");
    }

    private void Add(string name, byte[] bytes, byte[] hash)
    {
        CheckNotRead(name);
        if (!SHA256.HashData(bytes).AsSpan().SequenceEqual(hash))
            throw Damaged(name);
        _entries[name] = new Entry { Bytes = bytes, Length = bytes.Length };
    }

    private static InvalidDataException Damaged(string name) =>
        new($"The model archive entry '{name}' is damaged: its SHA-256 does not match the one recorded when it was saved.");

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

    /// <summary>An entry's bytes: in memory, written by a callback when saved, at an offset of the loaded file, or in an ML.NET model.</summary>
    private sealed class Entry
    {
        public byte[]? Bytes { get; init; }

        public Action<Stream>? Write { get; init; }

        /// <summary>Runs a reader on the entry's stream in the ML.NET model being loaded.</summary>
        public Action<Action<Stream>>? Source { get; init; }

        public long Offset { get; init; } = -1;

        public long Length { get; init; }
    }
}
