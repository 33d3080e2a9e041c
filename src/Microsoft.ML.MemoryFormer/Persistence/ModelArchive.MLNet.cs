using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Persistence;

/// <summary><see cref="ModelArchive"/> inside an ML.NET model zip: the model block and one binary stream per entry.</summary>
internal sealed partial class ModelArchive
{
    /// <summary>
    /// Stores the archive in an ML.NET model (from <c>ICanSaveModel.Save</c>): one zip entry per archive entry, each
    /// written straight into ML.NET's entry, then the model block with every entry's name, length and SHA-256.
    /// </summary>
    public void SaveTo(ModelSaveContext ctx, ModelSignatureInfo signature)
    {
        var written = new List<(string Name, long Length, byte[] Hash)>();
        var streams = _entries.Keys.Select(name => (name, (Action<Stream>)(stream =>
        {
            var hashing = new HashingWriteStream(stream);
            WriteEntry(name, hashing);
            hashing.Flush();
            written.Add((name, hashing.Count, hashing.TakeHash()));
        }))).ToList();
        MLNetInternals.SaveModel(ctx, signature, streams, writer =>
        {
            writer.Write(CurrentFormatVersion);
            writer.Write(written.Count);
            foreach (var (name, length, hash) in written)
            {
                writer.Write(name);
                writer.Write(length);
                writer.Write(hash);
            }
        });
    }

    /// <summary>
    /// Reads what <see cref="SaveTo"/> stored (from a transformer's <c>Create(IHostEnvironment, object)</c> loader);
    /// throws <see cref="InvalidDataException"/> when an entry is missing, longer or shorter than recorded, or damaged.
    /// Entries above <see cref="DefaultInMemoryLimit"/> bytes are checksummed in one streaming pass and read again
    /// through <see cref="ReadEntry"/>, which works only while ML.NET's load context is open (during the loader).
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
                if (length < 0)
                    throw new InvalidDataException($"Model entry '{name}' of '{signature.LoaderSignature}' declares an invalid length {length}.");
                expected[i] = (name, length, ReadExactly(reader, HashLength, name));
            }
            foreach (var (name, length, hash) in expected)
            {
                InvalidDataException Lacks() => new($"The ML.NET model lacks the entry '{name}' of '{signature.LoaderSignature}'.");
                InvalidDataException Holds(long actual) => new($"Model entry '{name}' of '{signature.LoaderSignature}' holds " +
                    $"{(actual > length ? "more" : "fewer")} bytes than the {length} recorded (damaged).");
                if (length <= DefaultInMemoryLimit)
                {
                    var bytes = MLNetInternals.TryLoadBinaryStream(modelLoadContext, name, maxBytes: length) ?? throw Lacks();
                    if (bytes.Length != length)
                        throw Holds(bytes.Length);
                    archive.Add(name, bytes, hash);
                    continue;
                }
                bool present = MLNetInternals.TryReadBinaryStream(modelLoadContext, name, stream =>
                {
                    var actual = Sha256(stream, length, out long read);
                    if (read != length)
                        throw Holds(read);
                    if (!actual.AsSpan().SequenceEqual(hash))
                        throw Damaged(name);
                });
                if (!present)
                    throw Lacks();
                archive.CheckNotRead(name);
                archive.Put(name, new Entry
                {
                    Length = length,
                    Source = read => { if (!MLNetInternals.TryReadBinaryStream(modelLoadContext, name, read)) throw Lacks(); },
                });
            }
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"The model block of '{signature.LoaderSignature}' is truncated.", e);
        }
        return archive;
    }
}
