using System.Runtime.InteropServices;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The tiled forward's pooled buffer (<see cref="TiledGather"/>: a table's tile-major copy [h/16][R][16], or the bf16 forward's paired
/// tiles), reused across calls, and which table's current values it holds, so that a forward over a table that has not changed since
/// the buffer was filled from it reads the buffer again instead of copying the table again
/// (<see cref="KernelSettings.ReuseTileMajorBuffer"/>): inference, a layer called twice between optimizer steps, gradient accumulation.
/// </summary>
/// <remarks>
/// <para>What it holds is a <see cref="Key"/>: the layer (its <see cref="TileMajorTableCopy"/>'s id, never reused, so another layer's
/// table at a recycled address cannot match), the table's storage address and shape, libtorch's version counter of it
/// (<see cref="TableVersion"/>: every torch in-place op, optimizer step through torch ops, load and user edit under no_grad bumps it),
/// and the count of raw table writes that bump nothing (<see cref="NoteRawWrite"/>: the table update fused into the gather's backward).
/// Any difference and the forward copies the table as before. Same values either way: the buffer holds the table's values, copied.</para>
/// <para>A write of a table through its raw memory that neither bumps its version (<see cref="TableVersion.Bump"/>) nor calls
/// <see cref="NoteRawWrite"/> would be missed; the library's own writers do one or the other (<c>FusedAdamW</c>, the weight loaders
/// and the checkpoint bump; the fused update notes).</para>
/// <para>One buffer is pooled, as before: concurrent callers get a fresh one (with nothing held), and only the larger of two
/// returned buffers is kept, with what it holds.</para>
/// </remarks>
internal static unsafe class TileMajorBuffer
{
    /// <summary>Which table's current values a tile-major buffer holds (see the class remarks).</summary>
    public readonly record struct Key(long Owner, nint Address, long Rows, int Width, long Version, long RawWrites);

    private static nint pooled;
    private static long pooledFloats;
    private static Key? pooledKey;
    private static readonly object Gate = new();
    private static long rawWrites, reuses;

    /// <summary>Raw table writes so far that bumped no version counter (part of every <see cref="Key"/>).</summary>
    public static long RawWrites => Interlocked.Read(ref rawWrites);

    /// <summary>Forwards that read the pooled buffer without copying the table (tests).</summary>
    internal static long Reuses => Interlocked.Read(ref reuses);

    /// <summary>Marks every held copy stale: call after writing a table's memory without bumping its version.</summary>
    public static void NoteRawWrite() => Interlocked.Increment(ref rawWrites);

    /// <summary>Counts a forward that read the held copy (<see cref="Reuses"/>).</summary>
    public static void NoteReuse() => Interlocked.Increment(ref reuses);

    /// <summary>A 64-byte aligned buffer of at least <paramref name="floats"/> floats and what it holds (<paramref name="held"/>, null for
    /// a fresh one), reused across calls (a fresh 33.5 MB buffer per forward would cost page faults and kernel zeroing each time).</summary>
    public static nint Rent(long floats, out long size, out Key? held)
    {
        lock (Gate)
        {
            if (pooled != 0 && pooledFloats >= floats)
            {
                nint buffer = pooled;
                (size, held) = (pooledFloats, pooledKey);
                (pooled, pooledKey) = (0, null);
                return buffer;
            }
        }
        (size, held) = (floats, null);
        nint fresh = (nint)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 2 << 20);
        HugePages.Advise((void*)fresh, floats * sizeof(float));
        return fresh;
    }

    /// <summary>Keeps <paramref name="buffer"/>, holding <paramref name="held"/> (null: nothing known), for the next call if it is the
    /// larger of it and the kept one, and frees the other.</summary>
    public static void Return(nint buffer, long floats, Key? held = null)
    {
        nint free = buffer;
        lock (Gate)
        {
            if (pooled == 0 || pooledFloats < floats)
                (free, pooled, pooledFloats, pooledKey) = (pooled, buffer, floats, held);
        }
        if (free != 0)
            NativeMemory.AlignedFree((void*)free);
    }
}
