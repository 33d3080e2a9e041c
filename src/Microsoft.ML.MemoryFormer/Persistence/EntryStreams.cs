using System.Security.Cryptography;

namespace Microsoft.ML.MemoryFormer.Persistence;

/// <summary>
/// A write-only stream that forwards to another one while counting the bytes and hashing them (SHA-256): a
/// <see cref="ModelArchive"/> entry written straight to the file learns its length and checksum this way, without
/// holding its bytes. Disposing it leaves the inner stream open (TorchSharp's <c>module.save</c> disposes the stream it
/// is given).
/// </summary>
internal sealed class HashingWriteStream(Stream inner) : Stream
{
    private readonly IncrementalHash hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    /// <summary>Bytes written so far.</summary>
    public long Count { get; private set; }

    /// <summary>The SHA-256 of everything written; call once, at the end.</summary>
    public byte[] TakeHash()
    {
        var result = hash.GetHashAndReset();
        hash.Dispose();
        return result;
    }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        hash.AppendData(buffer);
        inner.Write(buffer);
        Count += buffer.Length;
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void WriteByte(byte value) => Write(new ReadOnlySpan<byte>(in value));

    public override void Flush() => inner.Flush();

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => Count;
    public override long Position { get => Count; set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}

/// <summary>
/// A read-only, seekable window [offset, offset + length) of a file stream: one <see cref="ModelArchive"/> entry read
/// in place, so a reader can never run past its entry. Several windows may share the file stream (each seeks before it
/// reads) but not across threads. Disposing it leaves the file open.
/// </summary>
internal sealed class EntryReadStream(Stream file, long offset, long length) : Stream
{
    private long position;

    public override int Read(Span<byte> buffer)
    {
        long left = length - position;
        if (left <= 0 || buffer.IsEmpty)
            return 0;
        if (buffer.Length > left)
            buffer = buffer[..(int)left];
        file.Position = offset + position;
        int read = file.Read(buffer);
        position += read;
        return read;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int ReadByte()
    {
        Span<byte> one = stackalloc byte[1];
        return Read(one) == 1 ? one[0] : -1;
    }

    public override long Seek(long offset, SeekOrigin origin)
    {
        long target = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => position + offset,
            _ => length + offset,
        };
        if (target < 0)
            throw new IOException("Cannot seek before the start of the archive entry.");
        return position = target;
    }

    public override bool CanRead => true;
    public override bool CanSeek => true;
    public override bool CanWrite => false;
    public override long Length => length;
    public override long Position { get => position; set => Seek(value, SeekOrigin.Begin); }
    public override void Flush() { }
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
