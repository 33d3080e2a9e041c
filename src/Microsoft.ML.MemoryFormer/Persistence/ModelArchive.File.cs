using System.Security.Cryptography;
using System.Text;

namespace Microsoft.ML.MemoryFormer.Persistence;

/// <summary>The standalone file format of <see cref="ModelArchive"/>: writing, reading, atomic saves, entries read in place.</summary>
internal sealed partial class ModelArchive
{
    /// <summary>
    /// Writes the standalone format to <paramref name="stream"/>. An entry not held in memory (streamed, or left in a
    /// loaded archive's file) is written in place and its length and checksum filled in after it, which needs a seekable
    /// stream.
    /// </summary>
    public void WriteTo(Stream stream)
    {
        using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        writer.Write(Magic);
        writer.Write(CurrentFormatVersion);
        writer.Write(_entries.Count);
        foreach (var (name, entry) in _entries)
        {
            writer.Write(name);
            if (entry.Bytes is { } bytes)
            {
                writer.Write((long)bytes.Length);
                writer.Write(SHA256.HashData(bytes));
                writer.Write(bytes);
                continue;
            }
            if (!stream.CanSeek)
                throw new NotSupportedException($"The model archive entry '{name}' is written in place, which needs a seekable stream.");
            writer.Flush();
            long header = stream.Position;
            writer.Write(0L);
            writer.Write(new byte[HashLength]);
            writer.Flush();
            var hashing = new HashingWriteStream(stream);
            WriteEntry(name, hashing);
            hashing.Flush();
            long end = stream.Position;
            stream.Position = header;
            writer.Write(hashing.Count);
            writer.Write(hashing.TakeHash());
            writer.Flush();
            stream.Position = end;
        }
        writer.Write(EndMagic);
    }

    /// <summary>Reads the standalone format into memory; throws <see cref="InvalidDataException"/> on a foreign, older, newer, damaged or truncated file.</summary>
    public static ModelArchive ReadFrom(Stream stream) => Read(stream, inMemoryLimit: long.MaxValue);

    /// <summary>
    /// Reads the standalone format; entries above <paramref name="inMemoryLimit"/> bytes (on a seekable stream) have their
    /// checksum verified by reading them once and are left in <paramref name="stream"/>, to be read through
    /// <see cref="OpenRead"/> while the stream stays open.
    /// </summary>
    private static ModelArchive Read(Stream stream, long inMemoryLimit)
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
                bool inPlace = stream.CanSeek && length > inMemoryLimit;
                if (length < 0 || (!inPlace && length > Array.MaxLength) || (stream.CanSeek && length > stream.Length - stream.Position))
                    throw new InvalidDataException($"Model archive entry '{name}' declares {length} bytes, more than the file holds (truncated or damaged).");
                if (inPlace)
                    archive.AddInPlace(name, stream, length, hash);
                else
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

    /// <summary>
    /// Loads a checkpoint file written by <see cref="SaveAtomically"/>: every entry's checksum is verified, entries above
    /// <paramref name="inMemoryLimit"/> bytes are read in place later (<see cref="OpenRead"/>), so the archive keeps the
    /// file open until it is disposed.
    /// </summary>
    public static ModelArchive Load(string path, long inMemoryLimit = DefaultInMemoryLimit)
    {
        // FileShare.Delete: on Windows the next checkpoint may replace the file while a resumed run still holds it.
        var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        try
        {
            var archive = Read(file, inMemoryLimit);
            if (archive._entries.Values.Any(e => e.Offset >= 0))
                archive._file = file;
            else
                file.Dispose();
            return archive;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Closes the file a loaded archive reads its large entries from.</summary>
    public void Dispose()
    {
        if (!_borrowsFile) _file?.Dispose();
        _file = null;
    }

    /// <summary>Writes a checkpoint file such that <paramref name="path"/> is either the old file or the complete new one.</summary>
    public void SaveAtomically(string path) => WriteFileAtomically(path, WriteTo);

    /// <summary>
    /// Runs <paramref name="write"/> on a temporary file in the target folder (named <c>.{file}.{pid}.{guid}.tmp</c>),
    /// flushes it to disk and renames it over <paramref name="path"/>. If <paramref name="write"/> throws, the temporary
    /// file is deleted and the target is untouched; if the process dies, the target is untouched and the temporary file
    /// stays until the next save to the same path, which deletes the temporary files of processes that no longer run.
    /// </summary>
    public static void WriteFileAtomically(string path, Action<Stream> write)
    {
        var fullPath = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(fullPath)!, prefix = $".{Path.GetFileName(fullPath)}.";
        DeleteAbandonedTemporaryFiles(folder, prefix);
        var temp = TemporaryFileFor(fullPath);
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

    /// <summary>A new hidden temporary file name beside <paramref name="fullPath"/>, <c>.{file}.{pid}.{guid}.tmp</c>.</summary>
    public static string TemporaryFileFor(string fullPath) =>
        Path.Combine(Path.GetDirectoryName(fullPath)!, $".{Path.GetFileName(fullPath)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");

    /// <summary>
    /// Deletes <c>{prefix}{pid}.{guid}.tmp</c> files whose writing process has ended (killed mid-save: a checkpoint's
    /// temporary file can be gigabytes). Files of running processes, and names without a process id, are left alone.
    /// </summary>
    private static void DeleteAbandonedTemporaryFiles(string folder, string prefix)
    {
        if (!Directory.Exists(folder))
            return;
        foreach (var file in Directory.EnumerateFiles(folder, prefix + "*.tmp"))
        {
            var parts = Path.GetFileName(file)[prefix.Length..^".tmp".Length].Split('.');
            if (parts.Length != 2 || !int.TryParse(parts[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int pid)
                || IsRunning(pid))
                continue;
            try
            {
                File.Delete(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Another process's cleanup got there first, or the folder forbids it: the save goes on.
            }
        }
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>Verifies the checksum of the <paramref name="length"/> bytes at the stream's position and records them as an entry left in place.</summary>
    private void AddInPlace(string name, Stream stream, long length, byte[] hash)
    {
        CheckNotRead(name);
        long offset = stream.Position;
        var actual = Sha256(stream, length, out long read);
        if (read < length)
            throw Truncated($"in entry '{name}'");
        if (!actual.AsSpan().SequenceEqual(hash))
            throw Damaged(name);
        stream.Position = offset + length;
        _entries[name] = new Entry { Offset = offset, Length = length };
    }
}
