using System.Security.Cryptography;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Persistence;

/// <summary><see cref="ModelArchive"/> inside an ML.NET model zip: the model block and one binary stream per entry.</summary>
internal sealed partial class ModelArchive
{
    /// <summary>
    /// Stores the archive in an ML.NET model (from <c>ICanSaveModel.Save</c>): one zip entry per archive entry. ML.NET
    /// writes each entry from one array, so an entry is limited to 2 GB here (<see cref="Get"/> says so).
    /// </summary>
    public void SaveTo(ModelSaveContext ctx, ModelSignatureInfo signature)
    {
        var entries = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var name in _entries.Keys)
            entries[name] = Get(name);
        MLNetInternals.SaveModel(ctx, signature, writer =>
        {
            writer.Write(CurrentFormatVersion);
            writer.Write(entries.Count);
            foreach (var (name, bytes) in entries)
            {
                writer.Write(name);
                writer.Write((long)bytes.Length);
                writer.Write(SHA256.HashData(bytes));
            }
        }, entries);
    }

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
}
