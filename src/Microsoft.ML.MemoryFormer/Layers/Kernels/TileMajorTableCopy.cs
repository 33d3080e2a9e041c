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
/// <para>Never stale (<see cref="KeptTableCopy"/>). The fused update writes the table without a version bump, so it either writes
/// this copy too or calls <see cref="KeptTableCopy.Invalidate"/>: the backward does the first while the switch is on and the copy
/// is current, the second otherwise (the blocked update included).</para>
/// <para>Memory: one more fp32 copy of each table the tiled forward reads (d = 512: 33.5 MB a table), held for the layer's life;
/// without it the forward copies into one pooled buffer of the largest such table, shared by all layers.</para>
/// </remarks>
internal sealed unsafe class TileMajorTableCopy : KeptTableCopy
{
    private static long made;

    /// <summary>This copy's number, unique in the process: names its layer in <see cref="TileMajorBuffer.Key"/>.</summary>
    public long Id { get; } = Interlocked.Increment(ref made);

    /// <summary>The copy's first value (valid while <see cref="KeptTableCopy.IsCurrent"/>).</summary>
    public float* Pointer => (float*)Values;

    protected override long BytesFor(long rowCount, int h) =>
        ((h + TiledGather.TileWidth - 1) / TiledGather.TileWidth) * rowCount * TiledGather.TileWidth * sizeof(float);

    protected override void Fill(Tensor table, long rowCount, int h, byte* destination) =>
        TiledGather.ToTileMajor(TensorMemory.Floats(table), h, rowCount, (float*)destination, streaming: true);

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
}
