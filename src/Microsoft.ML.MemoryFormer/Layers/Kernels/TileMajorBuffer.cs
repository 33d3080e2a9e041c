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
/// <para>Up to <see cref="Capacity"/> buffers are pooled (2 to 4: the processor count, clamped), each with what it holds, so that
/// forwards running at the same time on several threads (a server scoring on several requests) reuse buffers instead of each
/// allocating and freeing a fresh one of up to tens of MB per call. A caller gets the pooled buffer that holds one of the tables it
/// will read (<see cref="Rent"/>'s <c>wanted</c>), else a large enough one that holds nothing, else the smallest large enough one;
/// a returned buffer takes a free slot, else replaces the smallest pooled buffer if it is larger, else is freed. So the pool never
/// holds more than <see cref="Capacity"/> times the largest buffer rented (h × rows floats of the widest table read tiled, 33.5 MB for
/// the largest preset), and a single-threaded caller still uses one buffer per size it rents.</para>
/// </remarks>
internal static unsafe class TileMajorBuffer
{
    /// <summary>Which table's current values a tile-major buffer holds (see the class remarks).</summary>
    public readonly record struct Key(long Owner, nint Address, long Rows, int Width, long Version, long RawWrites);

    /// <summary>How many buffers the pool keeps at most: the processor count, clamped to 2–4.</summary>
    public static readonly int Capacity = Math.Clamp(Environment.ProcessorCount, 2, 4);

    private static readonly Slot[] Slots = new Slot[Capacity];
    private static readonly object Gate = new();
    private static long rawWrites, reuses, allocations;

    /// <summary>Raw table writes so far that bumped no version counter (part of every <see cref="Key"/>).</summary>
    public static long RawWrites => Interlocked.Read(ref rawWrites);

    /// <summary>Forwards that read the pooled buffer without copying the table (tests).</summary>
    internal static long Reuses => Interlocked.Read(ref reuses);

    /// <summary>Fresh buffers allocated because no pooled one was free and large enough (tests).</summary>
    internal static long Allocations => Interlocked.Read(ref allocations);

    /// <summary>Buffers in the pool now (tests).</summary>
    internal static int Pooled
    {
        get
        {
            lock (Gate)
                return Slots.Count(s => s.Buffer != 0);
        }
    }

    /// <summary>Marks every held copy stale: call after writing a table's memory without bumping its version.</summary>
    public static void NoteRawWrite() => Interlocked.Increment(ref rawWrites);

    /// <summary>Counts a forward that read the held copy (<see cref="Reuses"/>).</summary>
    public static void NoteReuse() => Interlocked.Increment(ref reuses);

    /// <summary>A 64-byte aligned buffer of at least <paramref name="floats"/> floats and what it holds (<paramref name="held"/>, null for
    /// a fresh one), reused across calls (a fresh 33.5 MB buffer per forward would cost page faults and kernel zeroing each time): the
    /// pooled one holding one of <paramref name="wanted"/> if any (the tables the caller will read), else one holding nothing, else the
    /// smallest large enough one.</summary>
    public static nint Rent(long floats, out long size, out Key? held, IReadOnlyList<Key?>? wanted = null)
    {
        lock (Gate)
        {
            int pick = -1;
            for (int i = 0; i < Slots.Length; i++)
            {
                if (Slots[i].Buffer == 0 || Slots[i].Floats < floats)
                    continue;
                if (pick < 0 || Rank(Slots[i], wanted) < Rank(Slots[pick], wanted)
                    || (Rank(Slots[i], wanted) == Rank(Slots[pick], wanted) && Slots[i].Floats < Slots[pick].Floats))
                    pick = i;
            }
            if (pick >= 0)
            {
                var slot = Slots[pick];
                Slots[pick] = default;
                (size, held) = (slot.Floats, slot.Held);
                return slot.Buffer;
            }
        }
        Interlocked.Increment(ref allocations);
        (size, held) = (floats, null);
        nint fresh = (nint)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 2 << 20);
        HugePages.Advise((void*)fresh, floats * sizeof(float));
        return fresh;
    }

    /// <summary>Whether a pooled buffer holds <paramref name="key"/>'s values now.</summary>
    public static bool Holds(Key key)
    {
        lock (Gate)
            return Slots.Any(s => s.Buffer != 0 && s.Held == key);
    }

    /// <summary>Keeps <paramref name="buffer"/>, holding <paramref name="held"/> (null: nothing known), for a later call: in a free
    /// slot, else in place of the smallest pooled buffer if that one is smaller (which is freed); else frees it.</summary>
    public static void Return(nint buffer, long floats, Key? held = null)
    {
        nint free = buffer;
        lock (Gate)
        {
            int smallest = 0;
            for (int i = 1; i < Slots.Length; i++)
                if (Slots[i].Buffer == 0 || (Slots[smallest].Buffer != 0 && Slots[i].Floats < Slots[smallest].Floats))
                    smallest = i;
            if (Slots[smallest].Buffer == 0 || Slots[smallest].Floats < floats)
            {
                free = Slots[smallest].Buffer;
                Slots[smallest] = new Slot(buffer, floats, held);
            }
        }
        if (free != 0)
            NativeMemory.AlignedFree((void*)free);
    }

    /// <summary>Frees every pooled buffer (tests: a known empty pool).</summary>
    internal static void Drain()
    {
        Slot[] drained;
        lock (Gate)
        {
            drained = (Slot[])Slots.Clone();
            Array.Clear(Slots);
        }
        foreach (var slot in drained.Where(s => s.Buffer != 0))
            NativeMemory.AlignedFree((void*)slot.Buffer);
    }

    /// <summary>0: holds a wanted table; 1: holds nothing; 2: holds another table (taking it loses that copy).</summary>
    private static int Rank(Slot slot, IReadOnlyList<Key?>? wanted) =>
        slot.Held is not { } key ? 1 : wanted is not null && wanted.Contains(key) ? 0 : 2;

    /// <summary>One pooled buffer: its address (0: empty slot), size in floats, and which table's values it holds.</summary>
    private readonly record struct Slot(nint Buffer, long Floats, Key? Held);
}
