using System.Runtime.CompilerServices;
using Microsoft.ML.MemoryFormer.Models;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

internal sealed unsafe partial class FusedEncoder
{
    /// <summary>
    /// The first block's Q, K, V before rotary of each distinct token id met by this encoder, [U, 3·d] rows computed once
    /// per id (<see cref="FusedEncoderBlock.Project"/>) and copied per token: the first block's input is the token's
    /// embedding row, so they depend on the id alone (a scoring call of English text has ≈ 0.13–0.15 distinct ids per
    /// token). Groups of fewer than <see cref="MinTokens"/> tokens (a PredictionEngine call of a short row), and groups
    /// whose new ids exceed <see cref="MaxNewIdShare"/> of their tokens, compute per token instead. Bounded: a group whose new ids
    /// would take the kept ids past <see cref="MaxRows"/> starts over with its own ids (and one with more distinct ids than that
    /// computes per token). The arrays live in <see cref="FusedEncoderMemory"/> and are kept for the next
    /// encoder that takes the memory while the key <paramref name="keyOf"/> gives (the embedding's and the first block's parameters
    /// with their libtorch version counters, the bf16 copies, the kernels) is what they were computed from; else (or with a null
    /// key: version counters unreadable) the slot array is reset on first use, as every encoder did before 2026-12-07. The key
    /// is read on the first group large enough to share rows: enumerating the parameters for it cost a one-row call, which never
    /// shares, about 7 % of PredictionEngine's short-row throughput (docs/benchmarks.md, "PredictionEngine: the first-rows key").
    /// </summary>
    private sealed class FirstProjections(FusedEncoderBlock block, int width, long vocabulary, FusedEncoderMemory memory, Func<long[]?> keyOf)
    {
        /// <summary>Fewest tokens of a group that take the shared rows.</summary>
        public const int MinTokens = 256;

        private readonly int maxRows = (int)Math.Max(4096, Math.Min(65536, (64L << 20) / (12L * width)));
        private long[]? key;
        private bool keyRead, started;
        private int count = memory.FirstRowsCount;

        /// <summary>Most distinct ids kept.</summary>
        public int MaxRows => maxRows;

        /// <summary>The rows; valid until the next <see cref="Slots"/>.</summary>
        public float* Rows => (float*)Unsafe.AsPointer(ref memory.Rows[0]);

        /// <summary>Each token's row (computing the rows of ids not met before from their embedding rows), or null when the
        /// group is too small to share or brings too many new ids.</summary>
        public int[]? Slots(IReadOnlyList<int[]> windows, float* embedding, int n, ScoringProfile? profile)
        {
            if (n < MinTokens)
                return null;
            if (!keyRead)
            {
                (key, keyRead) = (keyOf(), true);
                started = key is not null && memory.FirstRowsKey is { } kept && kept.AsSpan().SequenceEqual(key);
            }
            var slotOfId = memory.SlotOfId;
            if (!started || slotOfId is null)                                    // first use
                slotOfId = StartOver();
            memory.FirstRowsKey = null;                                          // until the new rows are in
            var slots = new int[n];
            var fresh = new List<int>();
            Assign(windows, slotOfId, slots, fresh);
            if (count + fresh.Count > maxRows)                                   // past the bound: start over with this group's ids
            {
                slotOfId = StartOver();
                fresh.Clear();
                Assign(windows, slotOfId, slots, fresh);
                if (fresh.Count > maxRows)                                       // more distinct ids than the bound: per token
                {
                    Array.Fill(slotOfId, -1);
                    (memory.FirstRowsCount, memory.FirstRowsKey) = (0, key);
                    return null;
                }
            }
            if (fresh.Count > MaxNewIdShare * n)                                 // mostly new ids: per token is as cheap
            {
                foreach (int id in fresh)
                    slotOfId[id] = -1;
                (memory.FirstRowsCount, memory.FirstRowsKey) = (count, key);          // the rows before still hold
                return null;
            }
            if (fresh.Count > 0)
                Add(fresh, embedding);
            (memory.FirstRowsCount, memory.FirstRowsKey) = (count, key);
            if (profile is not null) profile.FusedFirstBlockRows += fresh.Count;
            return slots;
        }

        /// <summary>An empty slot array (every id −1) and no rows.</summary>
        private int[] StartOver()
        {
            var slotOfId = memory.SlotOfId;
            if (slotOfId is null || slotOfId.LongLength < vocabulary)
                slotOfId = memory.SlotOfId = new int[checked((int)vocabulary)];
            Array.Fill(slotOfId, -1);
            (count, started) = (0, true);
            return slotOfId;
        }

        /// <summary>Each token's slot, giving the ids without one the next slots after the <see cref="count"/> kept (listed in <paramref name="fresh"/>).</summary>
        private void Assign(IReadOnlyList<int[]> windows, int[] slotOfId, int[] slots, List<int> fresh)
        {
            int t = 0;
            foreach (var window in windows)
                foreach (int id in window)
                {
                    int slot = slotOfId[id];
                    if (slot < 0)
                    {
                        slot = slotOfId[id] = count + fresh.Count;
                        fresh.Add(id);
                    }
                    slots[t++] = slot;
                }
        }

        private void Add(List<int> fresh, float* embedding)
        {
            long needed = 3L * width * (count + fresh.Count);
            var rows = memory.Rows;
            if (rows.LongLength < needed)
            {
                var grown = GC.AllocateUninitializedArray<float>(checked((int)Math.Max(needed, Math.Min(2L * rows.LongLength, 3L * width * maxRows))), pinned: true);
                Array.Copy(rows, grown, Math.Min(rows.LongLength, 3L * width * count));
                rows = memory.Rows = grown;
            }
            block.Project(embedding, fresh.ToArray(), fresh.Count, Rows + (3L * width * count));
            count += fresh.Count;
        }
    }
}
