using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// A Memory Layer's copy of its fp32 table [R, h] in another precision or layout, kept between training steps and never read
/// stale: it records the table's storage address, shape and libtorch version counter (<see cref="TableVersion"/>) when it was
/// made, and <see cref="Sync"/> rebuilds it whole when any of them differs (init, load, a torch-ops optimizer step, a user's
/// edit under no_grad: each bumps the counter or moves the storage). A raw write of the table that does not bump the counter
/// (the table update fused into the backward) must write the copy too or call <see cref="Invalidate"/>. The two kinds:
/// <see cref="Bf16TableCopy"/> and <see cref="TileMajorTableCopy"/>.
/// </summary>
internal abstract unsafe class KeptTableCopy : IDisposable
{
    private byte* values;
    private long capacity, version = -1, rows;
    private nint address;
    private int width;

    /// <summary>The copy's first byte (valid while <see cref="IsCurrent"/>).</summary>
    protected byte* Values => values;

    /// <summary>The bytes the copy holds (0 before the first <see cref="Sync"/>).</summary>
    public long Bytes => capacity;

    /// <summary>How many whole rebuilds this copy has made (tests).</summary>
    internal int Rebuilds { get; private set; }

    /// <summary>
    /// Makes the copy current for <paramref name="table"/> (a contiguous CPU fp32 [R, h]) and returns its address, or 0 where no
    /// copy can be kept (version counter unavailable). Rebuilds it whole when it is stale.
    /// </summary>
    public nint Sync(Tensor table)
    {
        if (!TableVersion.IsAvailable)
            return 0;
        if (!IsCurrent(table))
            Rebuild(table);
        return (nint)values;
    }

    /// <summary>Whether the copy holds <paramref name="table"/>'s current values (same storage, shape and version).</summary>
    public bool IsCurrent(Tensor table) =>
        values != null && version >= 0 && address == (nint)TensorMemory.Address(table) && rows == table.shape[0] && width == table.shape[1]
        && version == TableVersion.Of(table);

    /// <summary>Marks the copy stale, so the next <see cref="Sync"/> rebuilds it: for a raw write of the table this copy did not
    /// follow, e.g. inside a backward, where bumping the table's version counter would fail a retained graph's second backward.</summary>
    public void Invalidate() => version = -1;

    /// <summary>The bytes a copy of an [<paramref name="rowCount"/>, <paramref name="h"/>] table takes.</summary>
    protected abstract long BytesFor(long rowCount, int h);

    /// <summary>Writes the whole copy of <paramref name="table"/> [<paramref name="rowCount"/>, <paramref name="h"/>] at <paramref name="destination"/>.</summary>
    protected abstract void Fill(Tensor table, long rowCount, int h, byte* destination);

    private void Rebuild(Tensor table)
    {
        (rows, width) = (table.shape[0], (int)table.shape[1]);
        long bytes = Math.Max(64, BytesFor(rows, width));
        if (bytes > capacity)
        {
            Free();
            values = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 2 << 20);
            HugePages.Advise(values, bytes);
            capacity = bytes;
        }
        Fill(table, rows, width, values);
        address = (nint)TensorMemory.Address(table);
        version = TableVersion.Of(table);
        Rebuilds++;
    }

    private void Free()
    {
        if (values != null)
            NativeMemory.AlignedFree(values);
        values = null;
        capacity = 0;
        version = -1;
    }

    /// <summary>Frees the copy.</summary>
    public void Dispose() => Free();
}
