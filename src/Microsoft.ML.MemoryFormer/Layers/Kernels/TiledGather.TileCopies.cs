using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>The tile copies of <see cref="TiledGather"/>: a whole table (fp32 or bf16) into the tile-major layout [h/16][R][16]
/// that the default plan and <see cref="TileMajorTableCopy"/> read, and one column tile of a row range into a thread's scratch
/// (the strided plan).</summary>
internal static unsafe partial class TiledGather
{
    /// <summary>Copies rows [0, rowLimit) of a row-major table into [h/16][rowLimit][16] (last tile zero-padded), in parallel over rows.</summary>
    internal static void ToTileMajor(float* table, int h, long rowLimit, float* buffer, bool streaming = false)
    {
        if (streaming && ((nint)buffer & 63) == 0)
        {
            ToTileMajorStreaming(table, h, rowLimit, buffer);
            return;
        }
        int tiles = Tiles(h);
        nint src = (nint)table, dst = (nint)buffer;
        KernelParallel.For((int)rowLimit, h, (start, end) =>
        {
            for (long r = start; r < end; r++)
            {
                float* s = (float*)src + (r * h), d = (float*)dst + (r * TileWidth);
                int tile = 0;
                for (; tile < h / TileWidth; tile++)
                    Vector512.Load(s + (tile * TileWidth)).Store(d + (tile * rowLimit * TileWidth));
                if (tile < tiles)
                    for (int c = 0; c < TileWidth; c++)
                        d[(tile * rowLimit * TileWidth) + c] = (tile * TileWidth) + c < h ? s[(tile * TileWidth) + c] : 0f;
            }
        });
    }

    /// <summary>
    /// Copies rows [0, rowLimit) of a bf16 table (<see cref="Bf16TableCopy"/>) into the fp32 [h/16][rowLimit][16] buffer, each value
    /// widened exactly (last tile zero-padded), with non-temporal stores where the buffer is 64-byte aligned: half the reads of the
    /// fp32 copy.
    /// </summary>
    internal static void ToTileMajor(ushort* table, int h, long rowLimit, float* buffer)
    {
        int tiles = Tiles(h);
        bool streaming = ((nint)buffer & 63) == 0;
        nint src = (nint)table, dst = (nint)buffer;
        KernelParallel.For((int)rowLimit, h, (start, end) =>
        {
            var last = stackalloc float[TileWidth];
            for (long r = start; r < end; r++)
            {
                ushort* s = (ushort*)src + (r * h);
                float* d = (float*)dst + (r * TileWidth);
                for (int tile = 0; tile < tiles; tile++)
                {
                    Vector512<float> v;
                    if ((tile + 1) * TileWidth <= h)
                        v = Bf16TableCopy.Widen(s + (tile * TileWidth));
                    else
                    {
                        for (int c = 0; c < TileWidth; c++)
                            last[c] = (tile * TileWidth) + c < h ? Bf16Matrix.ToFloat(s[(tile * TileWidth) + c]) : 0f;
                        v = Vector512.Load(last);
                    }
                    if (streaming)
                        Avx512F.StoreAlignedNonTemporal(d + (tile * rowLimit * TileWidth), v);
                    else
                        v.Store(d + (tile * rowLimit * TileWidth));
                }
            }
            Sse.StoreFence();
        });
    }

    /// <summary><see cref="ToTileMajor(float*, int, long, float*, bool)"/> with non-temporal stores (every destination tile row is one aligned 64-byte line).</summary>
    private static void ToTileMajorStreaming(float* table, int h, long rowLimit, float* buffer)
    {
        int tiles = Tiles(h);
        nint src = (nint)table, dst = (nint)buffer;
        KernelParallel.For((int)rowLimit, h, (start, end) =>
        {
            var last = stackalloc float[TileWidth];
            for (long r = start; r < end; r++)
            {
                float* s = (float*)src + (r * h), d = (float*)dst + (r * TileWidth);
                int tile = 0;
                for (; tile < h / TileWidth; tile++)
                    Avx512F.StoreAlignedNonTemporal(d + (tile * rowLimit * TileWidth), Vector512.Load(s + (tile * TileWidth)));
                if (tile < tiles)
                {
                    for (int c = 0; c < TileWidth; c++)
                        last[c] = (tile * TileWidth) + c < h ? s[(tile * TileWidth) + c] : 0f;
                    Avx512F.StoreAlignedNonTemporal(d + (tile * rowLimit * TileWidth), Vector512.Load(last));
                }
            }
            Sse.StoreFence();
        });
    }

    /// <summary>Copies columns [c0, c0 + cols) of rows [lo, hi) into <paramref name="scratch"/> [hi − lo, 16], zero-padded.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void CopyTile(float* table, int h, int c0, int cols, long lo, long hi, float* scratch)
    {
        float* src = table + (lo * h) + c0;
        long count = hi - lo;
        if (cols == TileWidth)
        {
            for (long i = 0; i < count; i++)
                Vector512.Load(src + (i * h)).Store(scratch + (i * TileWidth));
            return;
        }
        for (long i = 0; i < count; i++)
        {
            float* s = src + (i * h), d = scratch + (i * TileWidth);
            for (int c = 0; c < TileWidth; c++)
                d[c] = c < cols ? s[c] : 0f;
        }
    }
}
