using System.Buffers.Binary;
using System.Text;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Interop;

/// <summary>
/// Writes a file that <c>torch.load</c> reads (PyTorch ≥ 1.6 zip format): a protocol-2 pickle of dicts, lists, tuples,
/// strings, numbers and float32 tensors in <c>archive/data.pkl</c>, one stored (uncompressed) record per tensor in
/// <c>archive/data/{i}</c> aligned to 64 bytes as torch writes them, and <c>archive/version</c>. Files above 4 GiB are
/// refused (no zip64): use the pipeline layout (one file per layer) or safetensors for larger models.
/// </summary>
internal static class TorchCheckpointWriter
{
    private const string Archive = "archive";

    /// <summary>Writes <paramref name="root"/> (values as listed in the summary) to <paramref name="path"/>, replacing it.</summary>
    public static void Write(string path, object? root)
    {
        var tensors = new List<torch.Tensor>();
        var pickle = new MemoryStream();
        pickle.Write([0x80, 2]);                                                    // PROTO 2
        WriteValue(pickle, root, tensors);
        pickle.WriteByte((byte)'.');                                                // STOP
        var tmp = path + ".tmp";
        using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        {
            var zip = new StoredZipWriter(file);
            zip.Add($"{Archive}/data.pkl", pickle.ToArray());
            zip.Add($"{Archive}/byteorder", "little"u8.ToArray());
            for (int i = 0; i < tensors.Count; i++)
            {
                using var t = tensors[i].detach().cpu().to_type(torch.ScalarType.Float32).contiguous();
                zip.Add($"{Archive}/data/{i}", t.bytes);
            }
            zip.Add($"{Archive}/version", "3\n"u8.ToArray());
            zip.Finish();
        }
        File.Move(tmp, path, overwrite: true);
    }

    private static void WriteValue(Stream s, object? value, List<torch.Tensor> tensors)
    {
        switch (value)
        {
            case null: s.WriteByte((byte)'N'); break;
            case bool b: s.WriteByte(b ? (byte)0x88 : (byte)0x89); break;
            case int i: WriteLong(s, i); break;
            case long l: WriteLong(s, l); break;
            case double d:
                s.WriteByte((byte)'G');
                Span<byte> f = stackalloc byte[8];
                BinaryPrimitives.WriteDoubleBigEndian(f, d);
                s.Write(f);
                break;
            case string str: WriteString(s, str); break;
            case torch.Tensor t: WriteTensor(s, t, tensors); break;
            case PickleDict dict:
                if (dict.Ordered) { WriteGlobal(s, "collections", "OrderedDict"); s.WriteByte((byte)')'); s.WriteByte((byte)'R'); }
                else s.WriteByte((byte)'}');
                if (dict.Entries.Count > 0)
                {
                    s.WriteByte((byte)'(');
                    foreach (var (k, v) in dict.Entries) { WriteValue(s, k, tensors); WriteValue(s, v, tensors); }
                    s.WriteByte((byte)'u');
                }
                break;
            case List<object?> list:
                s.WriteByte((byte)']');
                if (list.Count > 0)
                {
                    s.WriteByte((byte)'(');
                    foreach (var v in list) WriteValue(s, v, tensors);
                    s.WriteByte((byte)'e');
                }
                break;
            case object?[] tuple:
                s.WriteByte((byte)'(');
                foreach (var v in tuple) WriteValue(s, v, tensors);
                s.WriteByte((byte)'t');
                break;
            default: throw new ArgumentException($"Cannot pickle a {value.GetType().Name}.", nameof(value));
        }
    }

    private static void WriteTensor(Stream s, torch.Tensor t, List<torch.Tensor> tensors)
    {
        long numel = t.NumberOfElements;
        var shape = t.shape;
        var stride = new long[shape.Length];
        long step = 1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            stride[d] = step;
            step *= Math.Max(1, shape[d]);
        }
        WriteGlobal(s, "torch._utils", "_rebuild_tensor_v2");
        s.WriteByte((byte)'(');
        s.WriteByte((byte)'(');                                                     // persistent id tuple
        WriteString(s, "storage");
        WriteGlobal(s, "torch", "FloatStorage");
        WriteString(s, tensors.Count.ToString(System.Globalization.CultureInfo.InvariantCulture));
        WriteString(s, "cpu");
        WriteLong(s, numel);
        s.WriteByte((byte)'t');
        s.WriteByte((byte)'Q');                                                     // BINPERSID
        WriteLong(s, 0);                                                            // storage offset
        WriteValue(s, shape.Select(x => (object?)x).ToArray(), tensors);
        WriteValue(s, stride.Select(x => (object?)x).ToArray(), tensors);
        s.WriteByte(0x89);                                                          // requires_grad False
        WriteGlobal(s, "collections", "OrderedDict");
        s.WriteByte((byte)')');
        s.WriteByte((byte)'R');                                                     // backward hooks: OrderedDict()
        s.WriteByte((byte)'t');
        s.WriteByte((byte)'R');
        tensors.Add(t);
    }

    private static void WriteGlobal(Stream s, string module, string name)
    {
        s.WriteByte((byte)'c');
        s.Write(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
    }

    private static void WriteString(Stream s, string str)
    {
        var bytes = Encoding.UTF8.GetBytes(str);
        s.WriteByte((byte)'X');
        Span<byte> n = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(n, bytes.Length);
        s.Write(n);
        s.Write(bytes);
    }

    private static void WriteLong(Stream s, long v)
    {
        if (v is >= 0 and < 256) { s.WriteByte((byte)'K'); s.WriteByte((byte)v); return; }
        if (v is >= int.MinValue and <= int.MaxValue)
        {
            s.WriteByte((byte)'J');
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(b, (int)v);
            s.Write(b);
            return;
        }
        s.WriteByte(0x8a);                                                          // LONG1, 8 bytes two's complement
        s.WriteByte(8);
        Span<byte> l = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(l, v);
        s.Write(l);
    }

    /// <summary>A minimal zip writer: stored entries whose data start on 64-byte boundaries (padding in the extra field).</summary>
    private sealed class StoredZipWriter(Stream stream)
    {
        private readonly List<(string Name, uint Crc, uint Size, uint Offset, ushort Extra)> entries = [];

        public void Add(string name, ReadOnlySpan<byte> data)
        {
            var nameBytes = Encoding.ASCII.GetBytes(name);
            long offset = stream.Position;
            long dataStart = offset + 30 + nameBytes.Length;
            int extra = (int)((64 - dataStart % 64) % 64);
            if (extra is > 0 and < 4) extra += 64;                                  // an extra field needs a 4-byte header
            if (offset + 30 + nameBytes.Length + extra + data.Length > uint.MaxValue)
                throw new NotSupportedException("The checkpoint would exceed 4 GiB; export in the pipeline layout (one file per layer) or as safetensors.");
            uint crc = ZipCrc32.Compute(data);
            Span<byte> h = stackalloc byte[30];
            BinaryPrimitives.WriteUInt32LittleEndian(h, 0x04034b50);
            BinaryPrimitives.WriteUInt16LittleEndian(h[4..], 20);                   // version needed
            BinaryPrimitives.WriteUInt16LittleEndian(h[6..], 0);                    // flags
            BinaryPrimitives.WriteUInt16LittleEndian(h[8..], 0);                    // stored
            BinaryPrimitives.WriteUInt32LittleEndian(h[10..], 0x00210000);          // 1980-01-01 00:00: deterministic
            BinaryPrimitives.WriteUInt32LittleEndian(h[14..], crc);
            BinaryPrimitives.WriteUInt32LittleEndian(h[18..], (uint)data.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(h[22..], (uint)data.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(h[26..], (ushort)nameBytes.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(h[28..], (ushort)extra);
            stream.Write(h);
            stream.Write(nameBytes);
            stream.Write(ExtraField(extra));
            stream.Write(data);
            entries.Add((name, crc, (uint)data.Length, (uint)offset, (ushort)extra));
        }

        public void Finish()
        {
            long start = stream.Position;
            Span<byte> h = stackalloc byte[46];
            foreach (var e in entries)
            {
                var nameBytes = Encoding.ASCII.GetBytes(e.Name);
                h.Clear();
                BinaryPrimitives.WriteUInt32LittleEndian(h, 0x02014b50);
                BinaryPrimitives.WriteUInt16LittleEndian(h[4..], 20);
                BinaryPrimitives.WriteUInt16LittleEndian(h[6..], 20);
                BinaryPrimitives.WriteUInt32LittleEndian(h[12..], 0x00210000);
                BinaryPrimitives.WriteUInt32LittleEndian(h[16..], e.Crc);
                BinaryPrimitives.WriteUInt32LittleEndian(h[20..], e.Size);
                BinaryPrimitives.WriteUInt32LittleEndian(h[24..], e.Size);
                BinaryPrimitives.WriteUInt16LittleEndian(h[28..], (ushort)nameBytes.Length);
                BinaryPrimitives.WriteUInt32LittleEndian(h[42..], e.Offset);
                stream.Write(h);
                stream.Write(nameBytes);
            }
            long size = stream.Position - start;
            if (stream.Position > uint.MaxValue || entries.Count > ushort.MaxValue)
                throw new NotSupportedException("The checkpoint would exceed the zip32 limits; export in the pipeline layout or as safetensors.");
            Span<byte> end = stackalloc byte[22];
            BinaryPrimitives.WriteUInt32LittleEndian(end, 0x06054b50);
            BinaryPrimitives.WriteUInt16LittleEndian(end[8..], (ushort)entries.Count);
            BinaryPrimitives.WriteUInt16LittleEndian(end[10..], (ushort)entries.Count);
            BinaryPrimitives.WriteUInt32LittleEndian(end[12..], (uint)size);
            BinaryPrimitives.WriteUInt32LittleEndian(end[16..], (uint)start);
            stream.Write(end);
        }

        private static byte[] ExtraField(int length)
        {
            if (length == 0) return [];
            var extra = new byte[length];
            BinaryPrimitives.WriteUInt16LittleEndian(extra, 0x4b46);                // "FK", the id torch's writer uses for padding
            BinaryPrimitives.WriteUInt16LittleEndian(extra.AsSpan(2), (ushort)(length - 4));
            return extra;
        }
    }
}
