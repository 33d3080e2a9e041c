using System.IO.Compression;

namespace Microsoft.ML.MemoryFormer.Persistence;

/// <summary>
/// Rewrites a zip so that equal content gives equal bytes: ML.NET stamps each entry with the time of the save, so two
/// saves of the same model differ. The copy keeps the entries, their order and their attributes, sets every time stamp
/// to <see cref="Timestamp"/> and compresses small entries with <see cref="CompressionLevel.Optimal"/>, large ones with
/// <see cref="CompressionLevel.Fastest"/> (<see cref="LargeEntry"/>).
/// </summary>
internal static class DeterministicZip
{
    /// <summary>The time stamp every entry gets (local time in the zip's DOS format; no time zone).</summary>
    public static readonly DateTimeOffset Timestamp = new(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>
    /// Entries above this many bytes (weights: float32 values, which deflate barely shrinks) are compressed with
    /// <see cref="CompressionLevel.Fastest"/>; the small ones (JSON, ML.NET's headers) with <see cref="CompressionLevel.Optimal"/>.
    /// </summary>
    public const long LargeEntry = 1 << 20;

    /// <summary>Copies the zip in <paramref name="source"/> to <paramref name="destination"/> with fixed time stamps.</summary>
    public static void Normalize(Stream source, Stream destination)
    {
        using var input = new ZipArchive(source, ZipArchiveMode.Read, leaveOpen: true);
        using var output = new ZipArchive(destination, ZipArchiveMode.Create, leaveOpen: true);
        foreach (var entry in input.Entries)
        {
            var copy = output.CreateEntry(entry.FullName, entry.Length > LargeEntry ? CompressionLevel.Fastest : CompressionLevel.Optimal);
            copy.LastWriteTime = Timestamp;
            copy.ExternalAttributes = entry.ExternalAttributes;
            using var from = entry.Open();
            using var to = copy.Open();
            from.CopyTo(to);
        }
    }
}
