using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// A Memory Layer's fp32 copy of its table [R, h] in the tiled forward's layout [h/16][R][16] (<see cref="TiledGather"/>, last tile
/// zero-padded), kept between training steps (<see cref="KernelSettings.TileMajorCopyFromUpdate"/>): the training forward makes it
/// once, the AdamW step fused into the backward's row pass (<see cref="TableGradientPass.UpdateAll"/>) writes each updated row's
/// 16-column slices into it, and the next forward reads it instead of copying the whole table again. The values are the table's,
/// copied, so the forward's sums are the same bits either way.
/// </summary>
/// <remarks>
/// <para>Never stale, as <see cref="Bf16TableCopy"/>: the copy records the table's storage address, shape and libtorch version
/// counter (<see cref="TableVersion"/>) when it was made, and <see cref="Sync"/> rebuilds it whole when any differs (init, load, a
/// torch-ops optimizer step, a user's edit under no_grad: each bumps the counter or moves the storage). The fused update writes
/// the table without a bump, so it must either write this copy too or call <see cref="Invalidate"/>: the backward does the first
/// while the switch is on and the copy is current, the second otherwise (the blocked update included).</para>
/// <para>Memory: one more fp32 copy of each table the tiled forward reads (d = 512: 33.5 MB a table), held for the layer's life;
/// without it the forward copies into one pooled buffer of the largest such table, shared by all layers.</para>
/// </remarks>
internal sealed unsafe class TileMajorTableCopy : IDisposable
{
    private float* values;
    private long capacity, version = -1;
    private nint address;
    private long rows;
    private int width;

    /// <summary>The copy's first value (valid while <see cref="IsCurrent"/>).</summary>
    public float* Pointer => values;

    /// <summary>The bytes the copy holds (0 before the first <see cref="Sync"/>).</summary>
    public long Bytes => capacity * sizeof(float);

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

    /// <summary>Marks the copy stale, so the next <see cref="Sync"/> rebuilds it (a raw write of the table this copy did not follow).</summary>
    public void Invalidate() => version = -1;

    private void Rebuild(Tensor table)
    {
        (rows, width) = (table.shape[0], (int)table.shape[1]);
        long count = ((width + TiledGather.TileWidth - 1) / TiledGather.TileWidth) * rows * TiledGather.TileWidth;
        if (count > capacity)
        {
            Free();
            values = (float*)NativeMemory.AlignedAlloc((nuint)(count * sizeof(float)), 2 << 20);
            HugePages.Advise(values, count * sizeof(float));
            capacity = count;
        }
        TiledGather.ToTileMajor(TensorMemory.Floats(table), width, rows, values, streaming: true);
        address = (nint)TensorMemory.Address(table);
        version = TableVersion.Of(table);
        Rebuilds++;
    }

    /// <summary>
    /// Writes table row <paramref name="r"/> (<paramref name="row"/>, h floats) into a tile-major copy [h/16][rowCount][16] at
    /// <paramref name="copy"/> (64-byte aligned): one 64-byte line per tile, past the cache (the forward reads it a step later), the
    /// last tile zero-padded. The caller fences (<see cref="Sse.StoreFence"/>) before another thread reads the copy.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void WriteRow(float* row, int h, long rowCount, float* copy, long r)
    {
        float* d = copy + (r * TiledGather.TileWidth);
        long stride = rowCount * TiledGather.TileWidth;
        int tile = 0;
        for (; (tile + 1) * TiledGather.TileWidth <= h; tile++)
            Avx512F.StoreAlignedNonTemporal(d + (tile * stride), Vector512.Load(row + (tile * TiledGather.TileWidth)));
        if (tile * TiledGather.TileWidth < h)
        {
            var last = stackalloc float[TiledGather.TileWidth];
            for (int c = 0; c < TiledGather.TileWidth; c++)
                last[c] = (tile * TiledGather.TileWidth) + c < h ? row[(tile * TiledGather.TileWidth) + c] : 0f;
            Avx512F.StoreAlignedNonTemporal(d + (tile * stride), Vector512.Load(last));
        }
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
