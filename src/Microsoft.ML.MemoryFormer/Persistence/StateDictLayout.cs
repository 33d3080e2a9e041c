using System.Text;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Persistence;

/// <summary>
/// Checks bytes written by TorchSharp's <c>module.save(Stream)</c> against the state dict they are meant for, without
/// allocating from anything the bytes declare or reading the values. TorchSharp 0.107's format: LEB128 entry count,
/// then per tensor a BinaryWriter string (name), LEB128 dtype, LEB128 rank, LEB128 dims and the raw little-endian values.
/// </summary>
internal static class StateDictLayout
{
    private const int MaxRank = 16;
    private const int MaxNameBytes = 1024;

    /// <summary>Throws <see cref="InvalidDataException"/> naming the first tensor whose name, dtype, shape or byte count does not match.</summary>
    /// <param name="weights">The bytes, as a seekable stream read from its current position to its end (the values are skipped, not read).</param>
    /// <param name="expected">The state dict of the module the bytes are for.</param>
    public static void Check(Stream weights, IReadOnlyDictionary<string, torch.Tensor> expected)
    {
        var reader = new Reader(weights);
        long count = reader.Leb128("the tensor count");
        if (count != expected.Count)
            throw new InvalidDataException($"The weights hold {count} tensors; the model has {expected.Count}.");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (long i = 0; i < count; i++)
        {
            var name = reader.Name();
            if (!expected.TryGetValue(name, out var tensor))
                throw new InvalidDataException($"The weights hold a tensor '{Printable(name)}' that the model does not have.");
            if (!seen.Add(name))
                throw new InvalidDataException($"The weights hold tensor '{name}' twice.");
            long dtype = reader.Leb128($"the dtype of '{name}'");
            if (dtype != (long)tensor.dtype)
                throw new InvalidDataException($"Tensor '{name}' is stored as dtype {dtype}; the model expects {tensor.dtype}.");
            long rank = reader.Leb128($"the rank of '{name}'");
            if (rank != tensor.shape.Length || rank > MaxRank)
                throw new InvalidDataException($"Tensor '{name}' is stored with rank {rank}; the model expects [{string.Join(", ", tensor.shape)}].");
            for (int d = 0; d < rank; d++)
            {
                long size = reader.Leb128($"the shape of '{name}'");
                if (size != tensor.shape[d])
                    throw new InvalidDataException(
                        $"Tensor '{name}' is stored with size {size} in dimension {d}; the model expects [{string.Join(", ", tensor.shape)}].");
            }
            reader.Skip(tensor.NumberOfElements * tensor.ElementSize, name);
        }
        if (!reader.AtEnd)
            throw new InvalidDataException($"The weights have {weights.Length - weights.Position} bytes after the last tensor (damaged).");
    }

    private static string Printable(string name) => name.Length > 80 ? name[..80] + "…" : name;

    private sealed class Reader(Stream stream)
    {
        public bool AtEnd => stream.Position == stream.Length;

        private long Left => stream.Length - stream.Position;

        public long Leb128(string what)
        {
            long value = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                int b = stream.ReadByte();
                if (b < 0) throw Truncated(what);
                value |= (long)(b & 0x7F) << shift;
                if ((b & 0x80) == 0) return value;
            }
            throw new InvalidDataException($"The weights are damaged: {what} is not a valid number.");
        }

        public string Name()
        {
            long length = Leb128("a tensor name");
            if (length is < 0 or > MaxNameBytes || length > Left)
                throw new InvalidDataException($"The weights are damaged: a tensor name declares {length} bytes.");
            var bytes = new byte[length];
            stream.ReadExactly(bytes);
            return Encoding.UTF8.GetString(bytes);
        }

        public void Skip(long count, string name)
        {
            if (count > Left) throw Truncated($"the values of '{name}'");
            stream.Seek(count, SeekOrigin.Current);
        }

        private static InvalidDataException Truncated(string what) => new($"The weights are truncated (in {what}).");
    }
}
