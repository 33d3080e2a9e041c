using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Interop;

/// <summary>
/// Reads and writes the safetensors format (an 8-byte little-endian header length, a JSON header naming each tensor's
/// dtype, shape and byte range, then the raw bytes). The header is validated completely before any tensor is
/// allocated: its length (at most <see cref="MaxHeaderBytes"/> and within the file), known dtypes only, shapes whose
/// element count × element size equals the byte range, ranges inside the file, in order, without overlap or holes,
/// unique names, and at most <see cref="MaxTensors"/> tensors.
/// </summary>
internal sealed class SafetensorsFile : IDisposable
{
    /// <summary>Largest header read (the format's reference reader uses the same 100 MB bound).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>Most tensors a file may name.</summary>
    public const int MaxTensors = 1 << 16;

    /// <summary>Highest tensor rank accepted.</summary>
    public const int MaxRank = 8;

    private readonly FileStream stream;
    private readonly long dataStart;

    /// <summary>One tensor's header entry: dtype, shape and byte range within the data section.</summary>
    public sealed record Entry(string Name, string Dtype, long[] Shape, long Begin, long End);

    private SafetensorsFile(FileStream stream, long dataStart, List<Entry> entries, Dictionary<string, string> metadata)
    {
        this.stream = stream;
        this.dataStart = dataStart;
        Entries = entries;
        Metadata = metadata;
    }

    /// <summary>The tensors, in file order.</summary>
    public IReadOnlyList<Entry> Entries { get; }

    /// <summary>The <c>__metadata__</c> strings.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Opens <paramref name="path"/> and validates its header.</summary>
    /// <exception cref="InvalidDataException">The header breaks a rule; the message names it.</exception>
    public static SafetensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"The safetensors file '{path}' does not exist.", path);
        var stream = File.OpenRead(path);
        try
        {
            var (entries, metadata, dataStart) = ReadHeader(stream, path);
            return new SafetensorsFile(stream, dataStart, entries, metadata);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    private static (List<Entry>, Dictionary<string, string>, long) ReadHeader(Stream stream, string path)
    {
        try
        {
            return ParseHeader(stream, path);
        }
        catch (InvalidOperationException e)                                         // e.g. a name that is not valid UTF-8
        {
            throw Bad(path, $"its header cannot be read ({e.Message})");
        }
    }

    private static (List<Entry>, Dictionary<string, string>, long) ParseHeader(Stream stream, string path)
    {
        Span<byte> lengthBytes = stackalloc byte[8];
        if (stream.Length < 8 || stream.ReadAtLeast(lengthBytes, 8, throwOnEndOfStream: false) < 8)
            throw Bad(path, "it is shorter than the 8-byte header length");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength < 2 || headerLength > MaxHeaderBytes || headerLength > (ulong)(stream.Length - 8))
            throw Bad(path, $"its header declares {headerLength} bytes (the file has {stream.Length - 8} after the length; at most {MaxHeaderBytes})");
        var header = new byte[headerLength];
        stream.ReadExactly(header);
        long dataLength = stream.Length - 8 - (long)headerLength;
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw Bad(path, $"its header is not valid JSON ({e.Message})");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad(path, "its header is not a JSON object");
            var entries = new List<Entry>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (!names.Add(property.Name)) throw Bad(path, $"it names '{Printable(property.Name)}' twice");
                if (property.Name == "__metadata__")
                {
                    if (property.Value.ValueKind != JsonValueKind.Object) throw Bad(path, "__metadata__ is not an object");
                    foreach (var m in property.Value.EnumerateObject())
                        metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : throw Bad(path, $"__metadata__.{Printable(m.Name)} is not a string");
                    continue;
                }
                if (entries.Count >= MaxTensors) throw Bad(path, $"it names more than {MaxTensors} tensors");
                entries.Add(ParseEntry(property, path, dataLength));
            }
            long expected = 0;
            foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
            {
                if (e.Begin != expected)
                    throw Bad(path, e.Begin < expected
                        ? $"tensor '{Printable(e.Name)}' overlaps the one before it (bytes {e.Begin}–{e.End})"
                        : $"there is a hole of {e.Begin - expected} bytes before tensor '{Printable(e.Name)}'");
                expected = e.End;
            }
            if (expected != dataLength) throw Bad(path, $"its tensors cover {expected} bytes of a {dataLength}-byte data section");
            return (entries, metadata, 8 + (long)headerLength);
        }
    }

    private static Entry ParseEntry(JsonProperty property, string path, long dataLength)
    {
        var name = property.Name;
        var v = property.Value;
        if (v.ValueKind != JsonValueKind.Object
            || !v.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String
            || !v.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array
            || !v.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2)
            throw Bad(path, $"tensor '{Printable(name)}' lacks dtype, shape or data_offsets [begin, end]");
        var dtype = dtypeElement.GetString()!;
        if (!TensorDtypes.Sizes.TryGetValue(dtype, out int size))
            throw Bad(path, $"tensor '{Printable(name)}' has the unknown dtype '{Printable(dtype)}' (known: {string.Join(", ", TensorDtypes.Sizes.Keys)})");
        if (shapeElement.GetArrayLength() > MaxRank) throw Bad(path, $"tensor '{Printable(name)}' has rank {shapeElement.GetArrayLength()} (at most {MaxRank})");
        var shape = new long[shapeElement.GetArrayLength()];
        int i = 0;
        foreach (var d in shapeElement.EnumerateArray())
            shape[i++] = d.ValueKind == JsonValueKind.Number && d.TryGetInt64(out long n) && n >= 0 ? n
                : throw Bad(path, $"tensor '{Printable(name)}' has a shape entry that is not a non-negative integer");
        long[] range = new long[2];
        i = 0;
        foreach (var o in offsets.EnumerateArray())
            range[i++] = o.ValueKind == JsonValueKind.Number && o.TryGetInt64(out long n) && n >= 0 ? n
                : throw Bad(path, $"tensor '{Printable(name)}' has a data offset that is not a non-negative integer");
        long count = TensorDtypes.Count(shape);
        if (count < 0 || count > long.MaxValue / size) throw Bad(path, $"tensor '{Printable(name)}' has shape [{string.Join(", ", shape)}], too many elements");
        if (range[0] > range[1] || range[1] > dataLength)
            throw Bad(path, $"tensor '{Printable(name)}' spans bytes {range[0]}–{range[1]} of a {dataLength}-byte data section");
        if (range[1] - range[0] != count * size)
            throw Bad(path, $"tensor '{Printable(name)}' has shape [{string.Join(", ", shape)}] × {size} bytes = {count * size}, but its range holds {range[1] - range[0]}");
        return new Entry(name, dtype, shape, range[0], range[1]);
    }

    /// <summary>Reads a tensor as a contiguous float32 CPU tensor (F16, BF16 and F64 are converted).</summary>
    /// <exception cref="InvalidDataException">The tensor is not floating point or is larger than one tensor may be.</exception>
    public torch.Tensor ReadFloat32(Entry entry)
    {
        var type = TensorDtypes.FloatingType(entry.Dtype)
            ?? throw new InvalidDataException($"Tensor '{entry.Name}' is stored as {entry.Dtype}; model weights must be F32, F16, BF16 or F64.");
        if (entry.End - entry.Begin > int.MaxValue) throw new InvalidDataException($"Tensor '{entry.Name}' holds more than 2 GiB; split it.");
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("Reading safetensors needs a little-endian machine.");
        var raw = torch.empty(entry.Shape, dtype: type);
        try
        {
            stream.Position = dataStart + entry.Begin;
            stream.ReadExactly(raw.bytes);
            if (type == torch.ScalarType.Float32) return raw;
            using (raw) return raw.to_type(torch.ScalarType.Float32);
        }
        catch (EndOfStreamException e)
        {
            raw.Dispose();
            throw new InvalidDataException($"Tensor '{entry.Name}' is truncated.", e);
        }
    }

    /// <summary>The <c>__metadata__</c> key under which <see cref="Write"/> records the SHA-256 of the data section.</summary>
    public const string ChecksumKey = "memoryformer.data_sha256";

    /// <summary>
    /// When the file records a <see cref="ChecksumKey"/> (files written by this library do; safetensors itself has no
    /// checksum), reads the data section once and compares its SHA-256, so damaged values are refused instead of loaded.
    /// </summary>
    /// <exception cref="InvalidDataException">The data section does not have the recorded checksum.</exception>
    public void VerifyChecksum()
    {
        if (!Metadata.TryGetValue(ChecksumKey, out var recorded)) return;
        stream.Position = dataStart;
        var actual = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(stream));
        if (!string.Equals(actual, recorded, StringComparison.Ordinal))
            throw new InvalidDataException($"The safetensors data section does not match its recorded SHA-256 ({ChecksumKey}): the file is damaged.");
    }

    /// <summary>
    /// Writes <paramref name="tensors"/> (as float32) and <paramref name="metadata"/> to <paramref name="path"/>, replacing
    /// it; the SHA-256 of the data section is added to the metadata under <see cref="ChecksumKey"/>.
    /// </summary>
    public static void Write(string path, IReadOnlyList<(string Name, torch.Tensor Tensor)> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var (_, tensor) in tensors)
        {
            using var t = tensor.detach().cpu().to_type(torch.ScalarType.Float32).contiguous();
            sha.AppendData(t.bytes);
        }
        var withChecksum = new Dictionary<string, string>(metadata, StringComparer.Ordinal) { [ChecksumKey] = Convert.ToHexStringLower(sha.GetHashAndReset()) };
        var header = new Dictionary<string, object>(StringComparer.Ordinal) { ["__metadata__"] = withChecksum };
        long offset = 0;
        foreach (var (name, tensor) in tensors)
        {
            long bytes = tensor.NumberOfElements * 4;
            header[name] = new { dtype = "F32", shape = tensor.shape, data_offsets = new[] { offset, offset + bytes } };
            offset += bytes;
        }
        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        int padded = (json.Length + 7) / 8 * 8;                                     // data starts 8-byte aligned, as the reference writer does
        var tmp = path + ".tmp";
        using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
            file.Write(length);
            file.Write(json);
            for (int i = json.Length; i < padded; i++) file.WriteByte((byte)' ');
            foreach (var (_, tensor) in tensors)
            {
                using var t = tensor.detach().cpu().to_type(torch.ScalarType.Float32).contiguous();
                file.Write(t.bytes);
            }
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <inheritdoc />
    public void Dispose() => stream.Dispose();

    private static string Printable(string s) => s.Length > 80 ? s[..80] + "…" : s;

    private static InvalidDataException Bad(string path, string what) =>
        new($"The safetensors file '{path}' is refused before any tensor is read: {what}.");
}
