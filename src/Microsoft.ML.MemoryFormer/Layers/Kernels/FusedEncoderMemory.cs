namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The working memory of a <see cref="FusedEncoder"/> (activation buffers, the first block's per-id slot array and rows)
/// kept from one scoring call to the next, so a call does not allocate ≈ 10 MB of fresh pinned memory. Fresh large arrays
/// each call filled the large-object budget and ran a gen-2 collection every one or two Transform passes of short rows
/// (measured with <c>perf scoring</c>; docs/benchmarks.md, "Scoring, fourth round"). The activations hold nothing between calls
/// (an encoder overwrites what it reads); the first block's per-id rows are kept for the next encoder with
/// <see cref="FirstRowsKey"/>, what they were computed from (the weights and their version counters), and are rebuilt when
/// that differs.
/// </summary>
/// <remarks>Not thread-safe: one encoder uses it at a time (<see cref="Pool"/> lends it out).</remarks>
internal sealed class FusedEncoderMemory
{
    /// <summary>Most bytes of activations kept after a call; memory whose activations grew larger (a caller's unusually large
    /// group) is dropped when returned to the pool. The first block's rows and slot array have bounds of their own (at most
    /// ≈ 64 MB of rows, one int a vocabulary id) and do not count: dropping them would rebuild every row on the next call.</summary>
    public const long KeepBytes = 32L << 20;

    /// <summary>Activations and scratch (pinned); grown on demand.</summary>
    public float[] Activations { get; set; } = [];

    /// <summary>The first block's slot of each token id (−1: none yet), [vocabulary]; null until first needed.</summary>
    public int[]? SlotOfId { get; set; }

    /// <summary>The first block's Q, K, V rows per distinct id (pinned); grown on demand.</summary>
    public float[] Rows { get; set; } = [];

    /// <summary>Distinct ids whose rows <see cref="Rows"/> holds (the first of them, in slot order).</summary>
    public int FirstRowsCount { get; set; }

    /// <summary>What <see cref="Rows"/> and <see cref="SlotOfId"/> were computed from (<see cref="FusedEncoderBlock.ProjectionKey"/>
    /// and the embedding table's), or null: nothing valid kept.</summary>
    public long[]? FirstRowsKey { get; set; }

    /// <summary>
    /// One kept <see cref="FusedEncoderMemory"/> shared by the calls of one model: <see cref="Take"/> lends it (or a new one
    /// when another call holds it), <see cref="Return"/> keeps it for the next call unless its activations grew past <see cref="KeepBytes"/>.
    /// </summary>
    internal sealed class Pool
    {
        private FusedEncoderMemory? kept;

        /// <summary>The kept memory, or a new one when it is lent out.</summary>
        public FusedEncoderMemory Take() => Interlocked.Exchange(ref kept, null) ?? new FusedEncoderMemory();

        /// <summary>Keeps <paramref name="memory"/> for the next call (if it is not too large).</summary>
        public void Return(FusedEncoderMemory memory)
        {
            if (4L * memory.Activations.LongLength <= KeepBytes)
                Volatile.Write(ref kept, memory);
        }
    }
}
