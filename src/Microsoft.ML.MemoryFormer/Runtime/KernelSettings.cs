namespace Microsoft.ML.MemoryFormer.Runtime;

/// <summary>
/// The one set of switches of the managed CPU kernels: whether they run at all, and the variants a benchmark turns
/// off to measure what each optimisation saves. The optimisations that won are on by default; the few that did not
/// (each switch's summary says which, and where it was measured) stay off for the benchmarks to time. The kernels read
/// <see cref="Current"/> when they run, so a change applies to the next call.
/// </summary>
/// <remarks>Process-wide, like torch's own thread setting. Only <see cref="UseFusedKernels"/> is public, through
/// <see cref="TorchRuntime.UseFusedKernels"/>; the others exist for the <c>perf</c> benchmarks.</remarks>
internal sealed class KernelSettings
{
    /// <summary>The settings every kernel reads.</summary>
    public static KernelSettings Current { get; } = new();

    /// <summary>
    /// Whether Memory Layers and the optimizer on the CPU use the managed kernels (sign hash and gather with custom
    /// backwards, single-pass AdamW, the fused decode step). Off runs plain libtorch ops, the reference the kernels are
    /// tested against and what CUDA always uses.
    /// </summary>
    public bool UseFusedKernels { get => state.UseFusedKernels; set => state.UseFusedKernels = value; }

    /// <summary>Whether the decode step's bf16 and int8 gathers (<c>Layers/Kernels/Bf16Gather.cs</c>, <c>Int8Gather.cs</c>) prefetch their
    /// rows into L2 (<c>prefetcht1</c>) instead of L1 (<c>prefetcht0</c>), as the training gather does: the d = 1024 blocks 1.2–1.7× faster
    /// (docs/benchmarks.md, "Inference gathers: rows prefetched into L2"). Same results either way (a hint only); off for
    /// <c>perf decode-profile</c> to time it.</summary>
    public bool DecodePrefetchIntoL2 { get => state.DecodePrefetchIntoL2; set => state.DecodePrefetchIntoL2 = value; }

    /// <summary>Whether a training step's bidirectional attention over right-padded rows (the text classifier's windows) runs in the
    /// managed kernel of causal attention, its keys bounded per row instead of per query (<c>Layers/SelfAttention.cs</c>,
    /// <c>PaddedKeyLengths</c>); off takes libtorch's SDPA with the key-padding mask. The same function at every real token,
    /// other rounding, and 7–12 % faster training on long documents, but off by default: over twenty seeds wikitext15's
    /// log-loss read 0.028 higher with it (t = 2.8; docs/benchmarks.md, "The classifier's padded attention in the managed kernel").</summary>
    public bool FusedPaddedAttention { get => state.FusedPaddedAttention; set => state.FusedPaddedAttention = value; }

    /// <summary>Whether small backwards write only the touched rows of a layer's reused gradient buffer
    /// (<c>Layers/Kernels/TableGradient.cs</c>); off writes the whole table.</summary>
    public bool WriteTouchedRowsOnly { get => state.WriteTouchedRowsOnly; set => state.WriteTouchedRowsOnly = value; }

    /// <summary>Whether a training step's token embedding takes the sparse lookup when a batch holds few of its rows
    /// (<c>Layers/SparseEmbedding.cs</c>): the gradient written for those rows only, its norm measured in the backward, and the
    /// optimizer stepping only rows some batch has held. Off takes <c>nn.Embedding</c> and its dense gradient (the same
    /// result up to the order of the gradient's sums).</summary>
    public bool SparseEmbeddingGradient { get => state.SparseEmbeddingGradient; set => state.SparseEmbeddingGradient = value; }

    /// <summary>Whether the table gradient's row pass also computes the weight gradient (<c>Layers/Kernels/RowGradientKernel.cs</c>);
    /// off takes a separate token-major pass.</summary>
    public bool WeightGradientInRowPass { get => state.WeightGradientInRowPass; set => state.WeightGradientInRowPass = value; }

    /// <summary>Whether Memory Layers pass their bias to the gather, which then starts each output row from it; off adds
    /// it afterwards (one more op and autograd node).</summary>
    public bool FoldBias { get => state.FoldBias; set => state.FoldBias = value; }

    /// <summary>Whether gradient rows are written with non-temporal stores when aligned; off writes through the cache.</summary>
    public bool StreamingStores { get => state.StreamingStores; set => state.StreamingStores = value; }

    /// <summary>Whether the managed kernels take their outputs and workspaces from blocks the library keeps mapped and
    /// reuses (<c>Layers/Kernels/KernelBuffers.cs</c>); off allocates each through torch (glibc's heap, fresh pages
    /// whenever the heap was trimmed).</summary>
    public bool ReuseKernelBuffers { get => state.ReuseKernelBuffers; set => state.ReuseKernelBuffers = value; }

    /// <summary>Whether the first training of the process sets glibc's heap to keep its freed top mapped during training
    /// (<c>Runtime/TrainingHeap.cs</c>: trim threshold 1 GiB, mmap threshold 32 MiB, top pad 64 MiB), so that torch's
    /// temporaries reuse pages instead of faulting fresh ones in every step; only on Linux with glibc and only when
    /// the process set neither <c>GLIBC_TUNABLES</c> nor a <c>MALLOC_*</c> variable. Costs heap memory not returned to
    /// the kernel while a training runs (given back when the last one ends). Same bits either way; read once, when the
    /// process's first training starts.</summary>
    public bool RetainTrainingHeap { get => state.RetainTrainingHeap; set => state.RetainTrainingHeap = value; }

    /// <summary>Whether the gather's backward writes a table gradient block by block without sorting the hits
    /// (<c>Layers/Kernels/BlockedTableGradient.cs</c>) where it applies; off takes the row pass (<c>TableGradientPass</c>).
    /// Off by default: on this project's loaded 2-core machine it did not beat the row pass (docs/benchmarks.md, "Probe");
    /// a table update fused into the backward (<see cref="FusedTableUpdate"/>) runs in whichever of the two passes is on.</summary>
    public bool BlockedTableGradient { get => state.BlockedTableGradient; set => state.BlockedTableGradient = value; }

    /// <summary>Whether an optimizer step armed on a table's gradient buffer (<c>Layers/Kernels/TableUpdate.cs</c>, only with
    /// <c>TrainingOptions.TableGradientClipping</c> other than Global) is applied inside the backward (row pass or blocks); off writes
    /// the gradient and the optimizer takes the same step afterwards.</summary>
    public bool FusedTableUpdate { get => state.FusedTableUpdate; set => state.FusedTableUpdate = value; }

    /// <summary>Whether RMSNorm and rotary (with the split into heads) run as managed passes with custom backwards
    /// (<c>Layers/Kernels/FusedRmsNorm.cs</c>, <c>FusedRotary.cs</c>) while <see cref="UseFusedKernels"/> is on; off runs their
    /// torch ops, for <c>perf train</c> to time what the two save in both models.</summary>
    public bool FusedNormAndRotary { get => state.FusedNormAndRotary; set => state.FusedNormAndRotary = value; }

    /// <summary>Whether the row pass prefetches the ∂L/∂y rows of the next table row's hits while it works on the current
    /// one (<c>Layers/Kernels/TableGradientPass.cs</c>): those rows are random reads from an [N, h] matrix in L2/L3. Same
    /// results either way; <c>perf layer --engine stopwatch</c> times it off as an extra interleaved call.</summary>
    public bool PrefetchHitRows { get => state.PrefetchHitRows; set => state.PrefetchHitRows = value; }

    /// <summary>Whether the gather's forward serves batches that hit each table row about four times or more one 16-column tile
    /// at a time from L2 (<c>Layers/Kernels/TiledGather.cs</c>); off keeps the token-major kernel for every batch.</summary>
    public bool TiledForward { get => state.TiledForward; set => state.TiledForward = value; }

    /// <summary>Whether a tiled forward that a backward can follow (a training forward: the optimizer changes the table before the next
    /// one) copies each 16-column tile's rows straight from the row-major fp32 table into the thread's L2 scratch (a strided read, 64 bytes
    /// a row; <c>Layers/Kernels/TiledGather.cs</c>, <c>Plan.Strided</c>) instead of first copying the whole table into the tile-major buffer
    /// and staging each tile from there. On the Intel Xeon its IP stride prefetcher serves the strided read, and the whole-table copy is
    /// the cost saved (docs/benchmarks.md, "The layer benchmark on the Intel machine"); on the Zen 4 the tile-major copy was chosen. A
    /// forward under no_grad keeps the tile-major path, whose pooled copy a later forward over the same table reads again
    /// (<see cref="ReuseTileMajorBuffer"/>: then a training forward reads it too), and so does a kept copy (<see cref="TileMajorCopyFromUpdate"/>). The bf16
    /// forward (<see cref="Bf16ForwardTables"/>, which only a training forward takes) pairs each tile's bf16 columns straight from its row-major copy likewise. The
    /// same bits either way (<c>TiledGatherTests</c> compare the plans byte for byte). Default: on for Intel processors, off elsewhere.</summary>
    public bool TiledStridedCopy { get => state.TiledStridedCopy; set => state.TiledStridedCopy = value; }

    /// <summary>Whether the fp32 tiled forward walks two adjacent 16-column tiles at once from a 32-column scratch
    /// (<c>Layers/Kernels/TiledGather.Pairs.cs</c>), copied from the row-major table (<see cref="TiledStridedCopy"/>) or staged from the
    /// tile-major copy: each hit's row index and weight are read once for both tiles. The same bits either way (<c>TiledGatherTests</c>).</summary>
    public bool TiledPairTiles { get => state.TiledPairTiles; set => state.TiledPairTiles = value; }

    /// <summary>The tiled forward runs only when every table of the call holds at least this many bytes (or, with
    /// <see cref="TiledSharedForward"/>, a call's several tables together): a single smaller one (d = 256: ML₁'s 10 MB) stays in
    /// the shared L3, where the token-major kernel is as fast (<c>perf probe-forward --width 256</c>, <c>perf profile-phases</c>).</summary>
    public long TiledForwardMinTableBytes { get => state.TiledForwardMinTableBytes; set => state.TiledForwardMinTableBytes = value; }

    /// <summary>The bytes one chunk group's tile may take in the tiled forward (<c>Layers/Kernels/TiledGather.cs</c>, when its plan
    /// leaves the group size to it, and its bf16 twin): by default half of a core's L2 (<see cref="TiledGroupBytesFor"/>). Any value gives
    /// the same bits (the partial tile of a token waits in fp32 between groups; <c>TiledGatherTests</c> compare plans byte for byte).</summary>
    public int TiledGroupBytes { get => state.TiledGroupBytes; set => state.TiledGroupBytes = value; }

    /// <summary>Half of an L2 of <paramref name="l2Bytes"/>, kept within 256 KB – 4 MB: 512 KB on a Zen 4 core (1 MB of L2, where the
    /// tiled forward was tuned), 1 MB on an Emerald Rapids core (2 MB: d = 512's 64 chunks then form one group instead of two).</summary>
    internal static int TiledGroupBytesFor(long l2Bytes) => (int)Math.Clamp(l2Bytes / 2, 256L << 10, 4L << 20);

    /// <summary>The tiled forward also runs when every width of the call is a multiple of 8 (where it gives the token-major kernel's
    /// bits) and its table (or, with <see cref="TiledSharedForward"/>, its tables together) holds at least this many bytes. By default
    /// sized from the machine's caches (<see cref="AlignedTiledForwardGate"/>): 16 MB on a Zen 4 (the same gate as
    /// <see cref="TiledForwardMinTableBytes"/>), 8 MB on the Emerald Rapids VM, whose L3 does not spare the token-major kernel
    /// (docs/benchmarks.md, "The project's machine is now an Intel Xeon").</summary>
    public long TiledForwardAlignedMinTableBytes { get => state.TiledForwardAlignedMinTableBytes; set => state.TiledForwardAlignedMinTableBytes = value; }

    /// <summary>
    /// The default of <see cref="TiledForwardAlignedMinTableBytes"/> for an L2 of <paramref name="l2Bytes"/> a core and an L3 of
    /// <paramref name="l3Bytes"/>: half the L3 where it is at most 64 MB (a core complex's own L3, fast enough that a table held there
    /// serves the token-major kernel as well as tiling: Zen 4's 32 MB gives 16 MB), else 4 × L2 (a server mesh's L3 shared by dozens of
    /// cores: there an 8 MiB table's random rows cost 0.88× a 33.5 MB one's, so only what is near L2 is spared).
    /// </summary>
    internal static long AlignedTiledForwardGate(long l2Bytes, long l3Bytes) => l3Bytes <= (64L << 20) ? l3Bytes / 2 : 4 * l2Bytes;

    /// <summary>Whether a gather forward over several tables read with the same rows (the shared Q/K/V) takes the tiled forward
    /// when the tables together hold <see cref="TiledForwardMinTableBytes"/> (3 × 8 MB at d = 256), widths multiples of 8 (the same
    /// bits as the token-major kernel); off, each table must hold that much. The token-major kernel cycles all of the call's tables
    /// through the shared L3 (24 MB at d = 256), where each alone would fit (docs/benchmarks.md, "Memory Layers at d = 256").</summary>
    public bool TiledSharedForward { get => state.TiledSharedForward; set => state.TiledSharedForward = value; }

    /// <summary>Whether causal self-attention in training on the CPU (no padding mask, no cache, gradients on) runs the managed
    /// kernel with its own backward (<c>Layers/Kernels/FusedCausalAttention.cs</c>) while <see cref="UseFusedKernels"/> is on;
    /// off (the default) runs libtorch's <c>scaled_dot_product_attention</c>, which every other case takes. Off by default
    /// although it takes about half of SDPA's time a layer: at 1,500 steps of the byte-level LM benchmark, against SDPA
    /// with the same seed, it ended 0.022 and 0.014 bits/byte worse on two seeds and 0.021 better on a third (mean +0.005:
    /// rounding sensitivity, not a measured cost), but the recorded seed's 2.2745 is above the project's 2.258 quality bar
    /// (docs/benchmarks.md, "Training: causal attention").</summary>
    public bool FusedCausalAttention { get => state.FusedCausalAttention; set => state.FusedCausalAttention = value; }

    /// <summary>Whether the backward's row pass reads a bf16 copy of ∂L/∂y (<c>Layers/Kernels/Bf16GradientRows.cs</c>), made once
    /// per table and backward, instead of the fp32 rows: half the bytes of its random row reads, accumulated in fp32. It changes
    /// the table and weight gradients by ∂L/∂y's rounding (relative 2⁻⁹ per element). Off by default: it made the row pass
    /// 1.3–1.8× and a layer's forward + backward 1.12–1.34× faster at d = 512 on the loaded machine, and the d = 512 training step
    /// 2.09–2.11× dense against 1.81–1.87× without it on the idle one; the 300-step LM stayed within the 0.01 bar (+0.008), but the
    /// 1,500-step LM benchmark's recorded seed ended at 2.2810 bits/byte against 2.2525 without it, above the 2.258 bar, though seeds
    /// 2 and 3 gave 2.2641 and 2.2491 against 2.2814 and 2.2924 (three-seed mean 0.011 better: rounding sensitivity, not a cost)
    /// (docs/benchmarks.md, "Row pass over a bf16 copy of ∂L/∂y").</summary>
    public bool Bf16GradientRows { get => state.Bf16GradientRows; set => state.Bf16GradientRows = value; }

    /// <summary>Whether the dense baseline's Linear layers (Q/K/V, W_O, the FFN; not the LM head) compute in bf16 with their fp32
    /// weights as masters, as torch autocast does on the CPU (<c>Layers/DenseLinear.cs</c>): x and W cast to bf16 inside the graph,
    /// bf16 GEMMs (oneDNN), the output back to fp32 (the FFN's hidden layer and GELU stay bf16), gradients back to fp32 through
    /// the casts. Off by default; it never touches MemoryFormer. It exists so <c>perf train</c> can time a dense baseline with the
    /// same mixed precision as MemoryFormer's bf16 options (docs/benchmarks.md, "Dense baseline in bf16").</summary>
    public bool Bf16DenseLinear { get => state.Bf16DenseLinear; set => state.Bf16DenseLinear = value; }

    /// <summary>Whether the training forward of each Memory Layer reads a bf16 copy of its table (<c>Layers/Kernels/Bf16TableCopy.cs</c>)
    /// instead of the fp32 table: the mixed-precision recipe (fp32 master table updated by the optimizer, a bf16 copy read by the
    /// forward, fp32 accumulation), half the bytes of the forward gather (token-major or tiled). The weight gradient's inner
    /// products take the same rounded rows. The copy is written by the fused table update row by row and rebuilt whole whenever
    /// the table changed any other way. Only where gradients flow (a forward under no_grad reads fp32) and where libtorch's version
    /// counter can be read. Off by default (docs/benchmarks.md, "Mixed-precision training").</summary>
    public bool Bf16ForwardTables { get => state.Bf16ForwardTables; set => state.Bf16ForwardTables = value; }

    /// <summary>Whether the fp32 token-major forward gather (<c>Layers/Kernels/RowKernels.cs</c>, <c>WeightedBagSumPrefetched</c>) asks for
    /// the whole table row <see cref="Layers.Kernels.RowKernels.GatherPrefetchAhead"/> hits ahead into L2 (<c>prefetcht1</c>) during its
    /// first column pass, the next token's rows included, as the decode gathers do with theirs: the rows are scattered, so the hardware
    /// prefetcher cannot guess them. The same for the bf16 table copies of <see cref="Bf16ForwardTables"/> (<c>EncoderKernels.BagSumBf16</c>).
    /// Same results either way (a hint only); off for <c>perf</c> to time it. On by default except on Intel processors
    /// (<see cref="CpuVendor"/>): on the Zen 4 it made ML₂'s forward 2.3× faster, on the Emerald Rapids VM it costs the kernel 12–17 %
    /// more CPU time at ML₂'s shapes in every round (docs/benchmarks.md, "The project's machine is now an Intel Xeon").</summary>
    public bool PrefetchGatherRows { get => state.PrefetchGatherRows; set => state.PrefetchGatherRows = value; }

    /// <summary>Whether the table update fused into the row pass (<see cref="FusedTableUpdate"/>, <c>Layers/Kernels/TableGradientPass.cs</c>)
    /// asks for the table, m and v rows <see cref="Layers.Kernels.TableGradientPass.UpdatePrefetchAhead"/> rows ahead into L2
    /// (<c>prefetcht1</c>). Same results either way (a hint only). On by default except on Intel (<see cref="CpuVendor"/>): on the Zen 4 it
    /// made the fused pass 1.03–1.13× faster, on the Emerald Rapids VM the 64 prefetches a d = 512 row wait for line-fill buffers (80 % of
    /// the update loop's own samples) and the hardware streamers do better without them: one d = 512 step's fused passes take 1.08–1.12×
    /// less CPU time off (<c>perf probe-update</c>; docs/benchmarks.md, "Training at d = 512 on the Intel machine").</summary>
    public bool PrefetchUpdateRows { get => state.PrefetchUpdateRows; set => state.PrefetchUpdateRows = value; }

    /// <summary>Whether the managed rotary's backward reads ∂L/∂y where libtorch's CPU attention left it, a [B, H, T, hd] view of
    /// token-major storage (<c>Layers/Kernels/FusedRotary.cs</c>); off copies it to a contiguous tensor first (fresh memory, the path
    /// before 2026-12-06). The same values either way; <c>perf train</c> times it off as dense-rotcopy and mf-rotcopy.</summary>
    public bool StridedRotaryGradient { get => state.StridedRotaryGradient; set => state.StridedRotaryGradient = value; }

    /// <summary>Whether self-attention copies the heads' outputs into a reused kernel block while a training runs
    /// (<c>Layers/SelfAttention.cs</c>, <c>TokenMajor</c>); off lets <c>reshape</c> copy them into fresh memory (the path before
    /// 2026-12-06). The same values either way; <c>perf train</c> times both of this session's switches off as dense-copies and mf-copies.</summary>
    public bool PooledAttentionOutput { get => state.PooledAttentionOutput; set => state.PooledAttentionOutput = value; }

    /// <summary>Whether the Memory Layer gather's backward sums each bias gradient (Σ_n ∂L/∂y[n]) with the managed kernel that
    /// reproduces libtorch's order (<c>Layers/Kernels/ColumnSums.cs</c>) instead of the torch op <c>sum(0)</c>, whose OpenMP region
    /// wakes libtorch's worker thread between two managed kernels. The same bits either way (where the kernel does not match
    /// this process's libtorch, or the width is not a multiple of 32, the torch op runs). Off by default: on the loaded machine
    /// it saved 2–5% of a step's CPU time but no wall time (docs/benchmarks.md, "Around the Memory Layer kernels at d = 256");
    /// <c>perf train</c>'s mf-managedsums times it on.</summary>
    public bool ManagedBiasSums { get => state.ManagedBiasSums; set => state.ManagedBiasSums = value; }

    /// <summary>Whether a Memory Layer keeps its table's tile-major copy (the <c>[h/16][R][16]</c> layout the tiled forward reads,
    /// <c>Layers/Kernels/TileMajorTableCopy.cs</c>) between steps: the training forward makes it once, the table update fused into
    /// the backward writes each updated row's slices into it, and the next forward reads it without copying the table again.
    /// Off (the default), the tiled forward copies the table into a pooled buffer on every call. The same values either way. Off
    /// because it did not measurably win (the update's writes cost about what the forward's copy saved) and holds one more fp32
    /// copy of each tiled table (0.8 GiB at d = 512); <c>perf train</c> times it on as mf-tilecopy (docs/benchmarks.md).</summary>
    public bool TileMajorCopyFromUpdate { get => state.TileMajorCopyFromUpdate; set => state.TileMajorCopyFromUpdate = value; }

    /// <summary>Whether the scoring encoder's attention (<c>Layers/Kernels/WindowAttention.cs</c>) transposes each head's keys
    /// in 8 × 8 AVX tiles; off transposes them element by element, as before 2026-12-06 s13. The same values either way; off
    /// for <c>perf scoring</c> to time it.</summary>
    public bool TiledKeyTranspose { get => state.TiledKeyTranspose; set => state.TiledKeyTranspose = value; }

    /// <summary>Whether the scoring encoder's AVX-512 attention (<c>Layers/Kernels/WindowAttention.cs</c>) pads each window's
    /// keys to a multiple of 16 (a last tile of 16 keys) rather than 32, so a window of L ≤ 16 mod 32 tokens scores 16 fewer
    /// padded keys per query. The same bits either way (a padded key's exp is 0); off for <c>perf scoring</c> to time it.</summary>
    public bool ShortKeyTiles { get => state.ShortKeyTiles; set => state.ShortKeyTiles = value; }

    /// <summary>Whether the scoring encoder's AVX-512 softmax (<c>Layers/Kernels/WindowAttention.cs</c>) takes a score row's maximum
    /// with <c>vmaxps</c> in two independent chains rather than <c>Vector512.Max</c> (whose IEEE 754-2019 semantics compile to three
    /// dependent instructions a step: a latency chain that cost more than the exp on the Intel machine), and its exp with one
    /// rounding conversion and a masked multiply (<c>WindowAttention.LeanExp512</c>). The same bits either way; off (as before
    /// 2026-12-06 s18) for <c>perf scoring-kernels</c> and <c>perf scoring</c> to time it.</summary>
    public bool LeanSoftmax { get => state.LeanSoftmax; set => state.LeanSoftmax = value; }

    /// <summary>Whether the sign hash (<c>Layers/Kernels/SignHashKernel.cs</c>) takes 16 chunks at a time in AVX-512 registers
    /// (<c>Layers/Kernels/WideSignHash.cs</c>) where the machine has them and it pays (training, and τ not a multiple of 8 such as the Memory Block's
    /// τ + 2 = 10); off takes 8 at a time in AVX registers, as before 2026-12-06 s14. The same bits either way (each lane does the same
    /// operations); off for <c>perf probe-hash</c> and <c>perf train</c>'s mf-narrowhash to time it.</summary>
    public bool WideSignHash { get => state.WideSignHash; set => state.WideSignHash = value; }

    /// <summary>With <see cref="LeanSoftmax"/>, how many query rows the scoring attention's softmax takes at once (1, 2 or 4: their
    /// exp passes interleaved, <c>WindowAttention.SoftmaxPair512</c>, <c>SoftmaxQuad512</c>), so that the out-of-order core has
    /// independent exp chains to overlap. The same bits for any count; <c>perf scoring-kernels</c> times them.</summary>
    public int SoftmaxRows { get => state.SoftmaxRows; set => state.SoftmaxRows = value; }

    /// <summary>Whether the scoring encoder gathers a token's Q, K and V rows (one hash, three fp32 tables) in one walk of the bag
    /// (<c>Layers/Kernels/EncoderKernels.cs</c>, <c>BagSum3</c>) instead of one walk per table. The same bits either way; off (as
    /// before 2026-12-06 s18) for <c>perf scoring-kernels</c> and <c>perf scoring</c> to time it.</summary>
    public bool FusedQkvBags { get => state.FusedQkvBags; set => state.FusedQkvBags = value; }

    /// <summary>Whether the 16-lane sign hash (<c>Layers/Kernels/WideSignHash.cs</c>) takes the lean exp (<c>WindowAttention.LeanExp512</c>,
    /// the same bits for its x ≤ 0) and, for τ &gt; 8 not a multiple of 8, loads its chunks with straight transposes and gathers instead of
    /// through a padded copy. The same bits either way (training's Jacobian too); off (as before 2026-12-06 s18) for
    /// <c>perf scoring-kernels</c> to time it.</summary>
    public bool LeanWideHash { get => state.LeanWideHash; set => state.LeanWideHash = value; }

    /// <summary>Whether the lean 512-bit exp (<c>WindowAttention.LeanExp512</c>: the scoring attention's softmax and the 16-lane sign hash,
    /// training's included) scales its polynomial by 2ⁿ with one <c>vscalefps</c> instead of building 2ⁿ in the exponent bits and
    /// multiplying: two instructions fewer per 16 exps. The same bits either way; off (as before 2026-12-07 s19) for
    /// <c>perf scoring-kernels</c> and <c>perf scoring</c> to time it.</summary>
    public bool ScaledExp { get => state.ScaledExp; set => state.ScaledExp = value; }

    /// <summary>Whether the scoring encoder hashes a token's 16 chunks with its own kernel (<c>Layers/Kernels/ScoringSignHash.cs</c>: the 16-lane
    /// hash's operations without the general kernel's switch tests, Jacobian stores and int64 rows) where it applies. The same bits either way;
    /// off (as before 2026-12-07 s19) for <c>perf scoring-kernels</c> and <c>perf scoring</c> to time it.</summary>
    public bool ScoringSignHash { get => state.ScoringSignHash; set => state.ScoringSignHash = value; }

    /// <summary>Whether the scoring encoder's paired Memory Block pass normalises its two tokens' hidden rows in one LayerNorm whose two
    /// sum chains advance together (<c>EncoderKernels.LayerNormPair</c>) instead of one after the other. The same bits either way; off (as
    /// before 2026-12-07 s19) for <c>perf scoring-kernels</c> and <c>perf scoring</c> to time it.</summary>
    public bool PairedLayerNorm { get => state.PairedLayerNorm; set => state.PairedLayerNorm = value; }

    /// <summary>Whether the scoring attention's AVX-512 kernel sets the padded keys' scores to −∞ by one blended 512-bit store per row
    /// (instead of float by float in each softmax, whose 512-bit reloads then missed store forwarding) and scores a last group of at most
    /// four queries as four rows instead of eight (<c>Layers/Kernels/WindowAttention.Tails.cs</c>). The same bits either way; off (as before
    /// 2026-12-07 s20) for <c>perf scoring</c> and <c>perf scoring-kernels</c>.</summary>
    public bool AttentionTails { get => state.AttentionTails; set => state.AttentionTails = value; }

    /// <summary>Whether the scoring attention's AVX-512 kernel takes each score row's maximum as it stores the row's scores
    /// (<c>Layers/Kernels/WindowAttention.RowMax.cs</c>) instead of in a pass of the softmax over the stored row; with
    /// <see cref="AttentionTails"/>, the lean softmax and four rows at a time. The same bits either way; off (as before 2026-12-07 s20) for
    /// <c>perf scoring</c> and <c>perf scoring-kernels</c>.</summary>
    public bool ScoresRowMax { get => state.ScoresRowMax; set => state.ScoresRowMax = value; }

    /// <summary>Whether the scoring encoder runs its per-token passes (norm, hash, Q/K/V gathers, rotary; the Memory Block) two tokens
    /// at a time, each step of the two back to back (<c>Layers/Kernels/FusedEncoderBlock.cs</c>), so the out-of-order core overlaps two
    /// tokens' chains of dependent steps. The same bits either way; off (as before 2026-12-06 s18) for <c>perf scoring</c> to time it.</summary>
    public bool PairedTokens { get => state.PairedTokens; set => state.PairedTokens = value; }

    /// <summary>Whether <see cref="WideSignHash"/> also takes the inference hash of chunks whose τ is a multiple of 8 (the scoring and
    /// decode hash of Q/K/V and ML₁, no Jacobian), which it left to the 8-lane path on the Zen 4, where that path was faster
    /// (<c>Layers/Kernels/WideSignHash.cs</c>, <c>Pays</c>). On by default on Intel, where the 16 lanes hash a scoring token 1.28×
    /// faster (docs/benchmarks.md, "Scoring, seventh round"); off elsewhere. The same bits either way; <c>perf scoring-kernels</c>
    /// and <c>perf probe-hash</c> time it.</summary>
    public bool WideInferenceHash { get => state.WideInferenceHash; set => state.WideInferenceHash = value; }

    /// <summary>Whether the tiled forward reads its pooled tile-major buffer again, without copying the table, when the buffer still holds
    /// that table's current values (<c>Layers/Kernels/TileMajorBuffer.cs</c>: same layer, storage, shape and version, no raw write
    /// since): inference, a layer called again before the optimizer step, gradient accumulation; never a training step, whose update
    /// changes the table before the next forward. Off copies the table on every call. The same values either way.</summary>
    public bool ReuseTileMajorBuffer { get => state.ReuseTileMajorBuffer; set => state.ReuseTileMajorBuffer = value; }

    /// <summary>Where the managed kernels' fork/joins (<c>Layers/Kernels/KernelParallel.cs</c>) run while a training runs:
    /// .NET's thread pool or libtorch's OpenMP team (<c>Layers/Kernels/OpenMPTeam.cs</c>, only where libtorch's libgomp is found).
    /// The same bits under each. <see cref="KernelForkPolicy.Auto"/> (the default since 2026-12-07 s22) lets each training time
    /// its steps under both and keep the faster (<see cref="ForkTuner"/>): on the idle 2-core machine the team made a
    /// step 1.08× faster at d = 256 and d = 512, while on a loaded one it lost by up to 1.30× (s15), so neither fixed choice
    /// holds everywhere (docs/benchmarks.md, "Training: the kernels' forks chosen by timing"). <c>perf train</c>'s mf-ompforks
    /// and mf-poolforks fix one.</summary>
    public KernelForkPolicy KernelForks { get => state.KernelForks; set => state.KernelForks = value; }

    /// <summary>Whether libtorch's attention in training runs the GEMMs of its blocks with MKL set to one thread per calling thread
    /// (<c>Layers/SelfAttention.cs</c>, <c>Layers/Kernels/OpenMPTeam.cs</c>): the forward's on every thread, the backward's on the
    /// OpenMP worker threads. They run on one thread either way (inside libtorch's parallel region); switched off, MKL opens a nested
    /// one-thread OpenMP region for each. The same bits; off for <c>perf train</c>'s mf-nestedgemms and dense-nestedgemms.</summary>
    public bool SerialAttentionGemms { get => state.SerialAttentionGemms; set => state.SerialAttentionGemms = value; }

    /// <summary>Whether, with <see cref="SerialAttentionGemms"/> on, training's causal attention runs inside a custom autograd node
    /// (<c>Layers/Kernels/SerialAttention.cs</c>) so that libtorch's attention backward, too, runs its blocks' GEMMs with MKL serial on
    /// the autograd thread, instead of opening a nested one-thread OpenMP region for each (≈ 3,700 a d = 256 step). The same SDPA ops on
    /// the same tensors, so the same bits; off for <c>perf train</c>'s mf-nestedbackward and dense-nestedbackward.</summary>
    public bool SerialAttentionBackward { get => state.SerialAttentionBackward; set => state.SerialAttentionBackward = value; }

    /// <summary>Whether the fused sign hash also writes each token's row indices as int32 into the pooled array the gather's kernels
    /// read (<c>Layers/Kernels/PooledRows.cs</c>), in its parallel pass while the token's rows are in L1, so that the gather's forward
    /// skips its own serial int64 → int32 copy and validation (the hash's rows are in range and chunked by construction). The same
    /// arrays either way; off is the copy in the gather (the path before 2026-12-07).</summary>
    public bool HashWritesRows32 { get => state.HashWritesRows32; set => state.HashWritesRows32 = value; }

    /// <summary>Whether the backward's hit sort (<c>Layers/Kernels/RowHits.cs</c>) first copies each range of chunks' row indices and
    /// weights chunk-major into a staging array (one token-major walk that also counts), then scatters each chunk from its contiguous
    /// column, instead of walking a column of [N, K] per chunk three times (a cache line per hit each time). The same arrays either way
    /// (<c>RowHitsTests</c>); off is the sort before 2026-12-07.</summary>
    public bool StagedHitSort { get => state.StagedHitSort; set => state.StagedHitSort = value; }

    /// <summary>Whether the bf16-moment AdamW step (<c>Layers/Kernels/Bf16Moments.cs</c>, <c>UpdateRow512Lean</c>) widens, narrows and
    /// hashes in fewer port 0/5 instructions (<c>vpmovzxwd</c> from memory, <c>vpackusdw</c> + <c>vpermq</c>, <c>vpternlogd</c>). The same
    /// bits either way; off (as before 2026-12-07 s21) for <c>perf probe-update</c> and <c>perf train</c>'s mf-plainupdate.</summary>
    public bool LeanBf16Update { get => state.LeanBf16Update; set => state.LeanBf16Update = value; }

    /// <summary>Runs <paramref name="body"/> with <paramref name="change"/> applied, then restores every switch.</summary>
    public void With(Action<KernelSettings> change, Action body)
    {
        ArgumentNullException.ThrowIfNull(change);
        ArgumentNullException.ThrowIfNull(body);
        var saved = state with { };
        try
        {
            change(this);
            body();
        }
        finally
        {
            state = saved;
        }
    }

    private State state = new();

    /// <summary>The switches' values, one field per property above with its default: <see cref="With"/> saves and restores
    /// them as one copy, so a new switch is a property and a field here, nothing else.</summary>
    private sealed record State
    {
        public bool UseFusedKernels = true;
        public bool DecodePrefetchIntoL2 = true;
        public bool WriteTouchedRowsOnly = true;
        public bool SparseEmbeddingGradient = true;
        public bool WeightGradientInRowPass = true;
        public bool FoldBias = true;
        public bool StreamingStores = true;
        public bool ReuseKernelBuffers = true;
        public bool RetainTrainingHeap = true;
        public bool FusedTableUpdate = true;
        public bool FusedNormAndRotary = true;
        public bool PrefetchHitRows = true;
        public bool TiledForward = true;
        public long TiledForwardMinTableBytes = 16L << 20;
        public long TiledForwardAlignedMinTableBytes = AlignedTiledForwardGate(CacheSizes.L2Bytes, CacheSizes.L3Bytes);
        public int TiledGroupBytes = TiledGroupBytesFor(CacheSizes.L2Bytes);
        public bool TiledSharedForward = true;
        public bool PrefetchGatherRows = !CpuVendor.IsIntel;
        public bool TiledStridedCopy = CpuVendor.IsIntel;
        public bool TiledPairTiles = true;
        public bool HashWritesRows32 = true;
        public bool StagedHitSort = true;
        public bool PrefetchUpdateRows = !CpuVendor.IsIntel;
        public bool StridedRotaryGradient = true;
        public bool PooledAttentionOutput = true;
        public bool TiledKeyTranspose = true;
        public bool WideSignHash = true;
        public bool ReuseTileMajorBuffer = true;
        public bool ShortKeyTiles = true;
        public bool LeanSoftmax = true;
        public bool FusedQkvBags = true;
        public int SoftmaxRows = 4;
        public bool LeanWideHash = true;
        public bool ScaledExp = true;
        public bool ScoringSignHash = true;
        public bool PairedLayerNorm = true;
        public bool PairedTokens = true;
        public bool AttentionTails = true;
        public bool ScoresRowMax = true;
        public bool SerialAttentionGemms = true;
        public bool SerialAttentionBackward = true;
        public bool LeanBf16Update = true;

        public bool BlockedTableGradient;
        public bool FusedCausalAttention;
        public bool FusedPaddedAttention;
        public bool Bf16GradientRows;
        public bool Bf16DenseLinear;
        public bool Bf16ForwardTables;
        public bool ManagedBiasSums;
        public bool TileMajorCopyFromUpdate;
        public KernelForkPolicy KernelForks = KernelForkPolicy.Auto;
        public bool WideInferenceHash = CpuVendor.IsIntel;
    }
}
