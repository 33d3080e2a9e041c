using System.IO.Compression;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Interop;

/// <summary>
/// Reads a PyTorch <c>torch.save</c> file (a zip holding <c>{name}/data.pkl</c> and one record <c>{name}/data/{key}</c>
/// per storage) without executing code: the pickle goes through <see cref="SafePickleReader"/>, and a tensor's bytes
/// are read only after its storage type, size, offset and stride have been checked against the record's length.
/// </summary>
internal sealed class TorchCheckpointFile : IDisposable
{
    /// <summary>Largest <c>data.pkl</c> read (a model's pickle is a few hundred bytes per tensor).</summary>
    public const long MaxPickleBytes = 64L << 20;

    /// <summary>Most zip entries a checkpoint may hold.</summary>
    public const int MaxEntries = 1 << 16;

    /// <summary>Deflate expands at most about 1032:1; a record declaring more is damaged or hostile.</summary>
    private const long MaxDeflateRatio = 1032;

    private readonly ZipArchive zip;
    private readonly string prefix;
    private readonly long archiveLength;

    private TorchCheckpointFile(ZipArchive zip, string prefix, object? root, long archiveLength)
    {
        this.zip = zip;
        this.prefix = prefix;
        this.archiveLength = archiveLength;
        Root = root;
    }

    /// <summary>The unpickled object (dicts, lists, <see cref="PickleTensor"/> views not yet read).</summary>
    public object? Root { get; }

    /// <summary>Opens <paramref name="path"/>; the pickle is read and checked, the tensors are read on demand.</summary>
    /// <exception cref="InvalidDataException">Not a torch.save zip, or its pickle is refused.</exception>
    public static TorchCheckpointFile Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"The PyTorch checkpoint '{path}' does not exist.", path);
        var stream = File.OpenRead(path);
        ZipArchive zip;
        try
        {
            zip = new ZipArchive(stream, ZipArchiveMode.Read);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or ArgumentException)
        {
            stream.Dispose();
            throw new InvalidDataException(
                $"'{path}' is not a PyTorch checkpoint in the zip format of torch.save (PyTorch ≥ 1.6): {e.Message} " +
                "Files saved with _use_new_zipfile_serialization=False (the legacy tar/pickle format) are not read; re-save them with a current torch.", e);
        }
        try
        {
            if (zip.Entries.Count > MaxEntries) throw new InvalidDataException($"'{path}' holds {zip.Entries.Count} zip entries (at most {MaxEntries}).");
            var pkl = zip.Entries.Where(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1).ToList();
            if (pkl.Count != 1)
                throw new InvalidDataException($"'{path}' holds {pkl.Count} '<name>/data.pkl' records; a torch.save file holds exactly one.");
            if (pkl[0].Length > MaxPickleBytes || pkl[0].CompressedLength > stream.Length || pkl[0].Length > Math.Max(pkl[0].CompressedLength, 1) * MaxDeflateRatio)
                throw new InvalidDataException($"The pickle of '{path}' declares {pkl[0].Length} bytes (at most {MaxPickleBytes}).");
            var bytes = ReadAll(pkl[0], pkl[0].Length);
            var prefix = pkl[0].FullName[..^"data.pkl".Length];
            object? root;
            try
            {
                root = SafePickleReader.Read(bytes);
            }
            catch (InvalidDataException e)
            {
                throw new InvalidDataException($"'{path}': {e.Message}", e);
            }
            return new TorchCheckpointFile(zip, prefix, root, stream.Length);
        }
        catch
        {
            zip.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Checks a tensor view without reading it: floating-point storage, element count, every element it touches inside
    /// its storage, and the storage record present and as long as it declares. Call it for every tensor before building
    /// anything from their shapes, so the shapes are bounded by the bytes actually in the file.
    /// </summary>
    /// <exception cref="InvalidDataException">The view does not fit; the message names the tensor.</exception>
    public void CheckFits(PickleTensor view, string name) => Check(view, name);

    private (torch.ScalarType Type, long Count, long Last, ZipArchiveEntry Entry) Check(PickleTensor view, string name)
    {
        var dtype = view.Storage.Type.Dtype;
        var type = TensorDtypes.FloatingType(dtype)
            ?? throw new InvalidDataException($"Tensor '{name}' is stored as {view.Storage.Type.Name}; model weights must be float32, float16, bfloat16 or float64.");
        int size = TensorDtypes.Sizes[dtype];
        long count = TensorDtypes.Count(view.Shape);
        if (count < 0 || count > int.MaxValue) throw new InvalidDataException($"Tensor '{name}' declares shape [{string.Join(", ", view.Shape)}], too many elements.");
        long last = view.Offset;                                                   // highest element index the view touches
        for (int d = 0; d < view.Shape.Length; d++)
            if (view.Shape[d] > 0)
            {
                if (view.Stride[d] > (long.MaxValue - last) / view.Shape[d]) throw new InvalidDataException($"Tensor '{name}' declares an overflowing stride.");
                last += (view.Shape[d] - 1) * view.Stride[d];
            }
        if (count > 0 && last >= view.Storage.Numel)
            throw new InvalidDataException($"Tensor '{name}' reaches element {last} of a storage of {view.Storage.Numel} (damaged).");
        if (count > view.Storage.Numel - view.Offset)                             // stride-0 views could claim more values than stored
            throw new InvalidDataException($"Tensor '{name}' declares {count} values in a storage of {view.Storage.Numel}: weights never overlap.");
        var entry = zip.GetEntry(prefix + "data/" + view.Storage.Key)
            ?? throw new InvalidDataException($"The storage '{view.Storage.Key}' of tensor '{name}' is missing from the checkpoint.");
        if (entry.CompressedLength > archiveLength || entry.Length > Math.Max(entry.CompressedLength, 1) * MaxDeflateRatio)
            throw new InvalidDataException($"The storage of tensor '{name}' declares {entry.Length} bytes from {entry.CompressedLength} in a file of {archiveLength}.");
        if (view.Storage.Numel > long.MaxValue / size || entry.Length < view.Storage.Numel * size)
            throw new InvalidDataException($"The storage of tensor '{name}' holds {entry.Length} bytes; it declares {view.Storage.Numel} × {size}.");
        return (type, count, last, entry);
    }

    /// <summary>Reads a tensor view as a new contiguous float32 CPU tensor (F16, BF16 and F64 are converted).</summary>
    /// <param name="view">The view from <see cref="Root"/>.</param>
    /// <param name="name">The tensor's name, for messages.</param>
    /// <exception cref="InvalidDataException">Its storage is not floating point, is missing, or is shorter than the view needs.</exception>
    public torch.Tensor ReadFloat32(PickleTensor view, string name)
    {
        var (type, count, last, entry) = Check(view, name);
        long needed = count == 0 ? 0 : last + 1;                                    // elements to read from the storage start
        using var storage = torch.empty(needed, dtype: type);
        try
        {
            using var stream = entry.Open();
            var target = storage.bytes;
            uint crc = ZipCrc32.Start;
            int read = 0;
            while (read < target.Length)
            {
                int n = stream.Read(target[read..]);
                if (n == 0) throw new InvalidDataException($"The storage of tensor '{name}' is truncated.");
                crc = ZipCrc32.Append(crc, target.Slice(read, n));
                read += n;
            }
            var rest = new byte[64 << 10];                                          // the storage's tail, which this view does not use
            for (int n; (n = stream.Read(rest)) > 0;) crc = ZipCrc32.Append(crc, rest.AsSpan(0, n));
            if (ZipCrc32.Finish(crc) != entry.Crc32)
                throw new InvalidDataException($"The storage of tensor '{name}' does not match its CRC-32: the checkpoint is damaged.");
        }
        catch (IOException e)
        {
            throw new InvalidDataException($"The storage of tensor '{name}' cannot be read: {e.Message}", e);
        }
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("Reading PyTorch checkpoints needs a little-endian machine.");
        using var strided = storage.as_strided(view.Shape, view.Stride, view.Offset);
        using var converted = strided.to_type(torch.ScalarType.Float32);
        return converted.contiguous().clone();
    }

    /// <inheritdoc />
    public void Dispose() => zip.Dispose();

    private static byte[] ReadAll(ZipArchiveEntry entry, long length)
    {
        var bytes = new byte[length];
        try
        {
            using var stream = entry.Open();
            int read = 0;
            while (read < bytes.Length)
            {
                int n = stream.Read(bytes, read, bytes.Length - read);
                if (n == 0) throw new InvalidDataException($"The zip record '{entry.FullName}' is truncated.");
                read += n;
            }
        }
        catch (IOException e)
        {
            throw new InvalidDataException($"The zip record '{entry.FullName}' cannot be read: {e.Message}", e);
        }
        if (ZipCrc32.Compute(bytes) != entry.Crc32)
            throw new InvalidDataException($"The zip record '{entry.FullName}' does not match its CRC-32: the checkpoint is damaged.");
        return bytes;
    }
}
