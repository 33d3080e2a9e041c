using System.ComponentModel;
using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Training;
using Spectre.Console;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf train</c>: whole-model training tokens/s, MemoryFormer vs the dense transformer of the same shape, same
/// tokens per step (random bytes, vocab 256; forward + backward + clip 1.0 + AdamW, as in the anchors §2), and
/// MemoryFormer with bf16 table moments; also the page faults each step takes.
/// </summary>
internal sealed class TrainCommand : Command<TrainCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--width")]
        [Description("Only the shape of this width (256 or 512), e.g. to trace one run. Default: both.")]
        public int? Width { get; init; }

        [CommandOption("--warmup-seconds <S>")]
        [Description("Untimed steps go on after the warm-up count until this many seconds have passed, so the JIT has optimised " +
            "the managed kernels before the timed rounds: with the count alone (0) a short process timed code still at tier 0, which made " +
            "the model built first slower and a one-model process slower still (docs/benchmarks.md, \"Idle re-run after the s13 merges\"). Default 10.")]
        [DefaultValue(10.0)]
        public double WarmupSeconds { get; init; } = 10;

        [CommandOption("--models <LIST>")]
        [Description("Comma-separated subset of dense, mf (default clip: PreviousStep, table update fused into the backward), " +
            "mf-fresh and dense-fresh (KernelSettings.ReuseKernelBuffers off: kernel outputs from torch.empty, the path before 2026-12-05 23:00), mf-global " +
            "(Global clip, the table update after the backward), mf-bf16, mf-blocked (blocked table gradient on), mf-fused (= mf), " +
            "dense-torchnorm and mf-torchnorm (RMSNorm and rotary as torch ops instead of the managed passes), mf-untiled (KernelSettings.TiledForward off), " +
            "mf-unshared (KernelSettings.TiledSharedForward off: the shared Q/K/V forward tiled only when each table holds 16 MB), " +
            "mf-noprefetch (KernelSettings.PrefetchGatherRows and PrefetchUpdateRows off: no L2 prefetch in the token-major forward nor the fused update), " +
            "mf-tilecopy (KernelSettings.TileMajorCopyFromUpdate on: the tiled forward reads each table's tile-major copy, kept current by the fused update, instead of copying it every call), " +
            "mf-mixed-noprefetch (mf-mixed with both off), " +
            "dense-fattn and mf-fattn (the managed causal attention, opt-in, instead of libtorch's scaled_dot_product_attention), dense-sdpa and mf-sdpa (SDPA set explicitly), " +
            "dense-rotcopy and mf-rotcopy (KernelSettings.StridedRotaryGradient off: the rotary backward copies ∂L/∂y to contiguous memory first), " +
            "dense-copies and mf-copies (that and KernelSettings.PooledAttentionOutput off: the attention output's copy in fresh memory too), " +
            "mf-bf16rows (Bf16GradientRows on), mf-narrowhash (KernelSettings.WideSignHash off: the sign hash 8 chunks at a time, as before 2026-12-06 s14), " +
            "mf-zen4caches (the tiled forward sized for Zen 4's caches, before s17: TiledGroupBytes 512 KB and TiledForwardAlignedMinTableBytes 16 MB), mf-zen4groups and mf-zen4gate (each of the two alone), mf-zen4tuning (both and PrefetchGatherRows on: every s17 default as before), mf-tilemajorcopy (KernelSettings.TiledStridedCopy off: the training forward's tile-major copy), mf-s18forward (it and TiledPairTiles off: the forward before s19), mf-s19glue (HashWritesRows32 and StagedHitSort off: the layer glue before s20), mf-gathercopiesrows and mf-columnsort (each alone), mf-nogatherprefetch / mf-gatherprefetch (KernelSettings.PrefetchGatherRows off / on), mf-ompforks (KernelSettings.KernelForks = OpenMPTeam: the managed kernels always fork on libtorch's OpenMP team), mf-poolforks and dense-poolforks (always on .NET's thread pool, the default before s22; the default now chooses by timing steps, KernelForkPolicy.Auto), " +
            "mf-nestedgemms and dense-nestedgemms (KernelSettings.SerialAttentionGemms off: MKL opens a nested OpenMP region for every GEMM of libtorch's attention blocks, as before 2026-12-06 s15), mf-managedsums (KernelSettings.ManagedBiasSums on: the bias gradients by the managed ColumnSums instead of torch's sum(0)), dense-bf16 (the dense Linear layers in bf16 with fp32 masters, autocast-style: KernelSettings.Bf16DenseLinear), " +
            "mf-plainupdate (KernelSettings.LeanBf16Update off: the bf16-moment AdamW loop as before s21), " +
            "e.g. to time one model per process; ratios need dense first. Default: dense, mf, mf-bf16.")]
        [DefaultValue("dense,mf,mf-bf16")]
        public string Models { get; init; } = "dense,mf,mf-bf16";

        public override ValidationResult Validate()
        {
            var list = ModelList;
            return list.Length > 0 && list.All(m => Variants.Any(v => v.Key == m))
                ? ValidationResult.Success()
                : ValidationResult.Error($"--models: unknown or empty '{Models}'; use a comma-separated subset of " +
                    string.Join(", ", Variants.Select(v => v.Key)));
        }

        internal string[] ModelList => Models.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
    }

    /// <summary>One model <c>perf train</c> can time: its <c>--models</c> key, and the settings that differ.</summary>
    private sealed record Variant(string Key, string Name, TransformerKind Kind, MomentPrecision? Precision = null,
        bool? Blocked = null, TableGradientClipping? Clipping = null, bool TorchNorms = false, bool Untiled = false, bool? FusedAttention = null, bool Fresh = false,
        bool? Bf16Rows = null, Action<Runtime.KernelSettings>? Tweak = null);

    /// <summary>The models <c>perf train</c> can time, by their <c>--models</c> key.</summary>
    private static readonly Variant[] Variants =
    [
        new("dense", "dense", TransformerKind.Dense),
        new("mf", "MemoryFormer", TransformerKind.MemoryFormer),                     // the defaults: PreviousStep clip, bf16 table moments
        new("mf-fresh", "MemoryFormer, kernel outputs from torch.empty (reused blocks off)", TransformerKind.MemoryFormer, Fresh: true),
        new("dense-fresh", "dense, kernel outputs from torch.empty (reused blocks off)", TransformerKind.Dense, Fresh: true),
        new("mf-global", "MemoryFormer, Global clip (separate table update)", TransformerKind.MemoryFormer,
            Clipping: TableGradientClipping.Global),
        new("mf-bf16", "MemoryFormer, bf16 table moments set explicitly (= mf)", TransformerKind.MemoryFormer, MomentPrecision.BFloat16),
        new("mf-fp32", "MemoryFormer, fp32 table moments (the default before 2026-12-05)", TransformerKind.MemoryFormer, MomentPrecision.Float32),
        new("mf-blocked", "MemoryFormer, blocked table gradient", TransformerKind.MemoryFormer, Blocked: true),
        new("mf-fused", "MemoryFormer, PreviousStep clip set explicitly (= mf)", TransformerKind.MemoryFormer,
            Clipping: TableGradientClipping.PreviousStep),
        new("dense-torchnorm", "dense, RMSNorm and rotary as torch ops", TransformerKind.Dense, TorchNorms: true),
        new("mf-torchnorm", "MemoryFormer, RMSNorm and rotary as torch ops", TransformerKind.MemoryFormer, TorchNorms: true),
        new("mf-untiled", "MemoryFormer, token-major gather forward (tiled off)", TransformerKind.MemoryFormer, Untiled: true),
        new("dense-sdpa", "dense, attention by libtorch's SDPA set explicitly (= dense)", TransformerKind.Dense, FusedAttention: false),
        new("mf-sdpa", "MemoryFormer, attention by libtorch's SDPA set explicitly (= mf)", TransformerKind.MemoryFormer, FusedAttention: false),
        new("mf-bf16rows", "MemoryFormer, row pass reads a bf16 copy of ∂L/∂y (Bf16GradientRows on)", TransformerKind.MemoryFormer, Bf16Rows: true),
        new("mf-fp32rows", "MemoryFormer, row pass reads fp32 ∂L/∂y (Bf16GradientRows off)", TransformerKind.MemoryFormer, Bf16Rows: false),
        new("mf-unshared", "MemoryFormer, each Q/K/V table gated alone for the tiled forward (TiledSharedForward off, before 2026-12-06 04:00)",
            TransformerKind.MemoryFormer, Tweak: k => k.TiledSharedForward = false),
        new("mf-noprefetch", "MemoryFormer, no L2 prefetch in the token-major forward gather nor the fused update (PrefetchGatherRows and PrefetchUpdateRows off, before 2026-12-06 06:00)",
            TransformerKind.MemoryFormer, Tweak: k => k.PrefetchGatherRows = k.PrefetchUpdateRows = false),
        new("mf-mixed-noprefetch", "MemoryFormer, both bf16 switches, no L2 prefetch (PrefetchGatherRows and PrefetchUpdateRows off)", TransformerKind.MemoryFormer,
            Bf16Rows: true, Tweak: k =>
            {
                k.Bf16ForwardTables = true;
                k.PrefetchGatherRows = k.PrefetchUpdateRows = false;
            }),
        new("mf-sepupdate", "MemoryFormer, the tables' AdamW after the backward instead of inside it (FusedTableUpdate off; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.FusedTableUpdate = false),
        new("mf-tilecopy", "MemoryFormer, the tiled forward reads a tile-major copy kept current by the fused update (TileMajorCopyFromUpdate on; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.TileMajorCopyFromUpdate = true),
        new("dense-bf16", "dense, Linear layers in bf16 with fp32 masters (Bf16DenseLinear on)", TransformerKind.Dense, Tweak: k => k.Bf16DenseLinear = true),
        new("mf-bf16fwd", "MemoryFormer, forward reads a bf16 copy of the tables (Bf16ForwardTables on)", TransformerKind.MemoryFormer,
            Tweak: k => k.Bf16ForwardTables = true),
        new("mf-mixed", "MemoryFormer, both bf16 switches (Bf16ForwardTables and Bf16GradientRows on)", TransformerKind.MemoryFormer,
            Bf16Rows: true, Tweak: k => k.Bf16ForwardTables = true),
        new("mf-mixed-fattn", "MemoryFormer, both bf16 switches and the managed causal attention", TransformerKind.MemoryFormer,
            Bf16Rows: true, FusedAttention: true, Tweak: k => k.Bf16ForwardTables = true),
        new("dense-bf16-fattn", "dense, Linear layers in bf16 and the managed causal attention", TransformerKind.Dense,
            FusedAttention: true, Tweak: k => k.Bf16DenseLinear = true),
        new("dense-fattn", "dense, the managed causal attention (opt-in)", TransformerKind.Dense, FusedAttention: true),
        new("mf-fattn", "MemoryFormer, the managed causal attention (opt-in)", TransformerKind.MemoryFormer, FusedAttention: true),
        new("dense-rotcopy", "dense, rotary backward copies ∂L/∂y first (StridedRotaryGradient off, before 2026-12-06 06:30)", TransformerKind.Dense,
            Tweak: k => k.StridedRotaryGradient = false),
        new("dense-copies", "dense, both copies into fresh memory (StridedRotaryGradient and PooledAttentionOutput off, before 2026-12-06 06:30)",
            TransformerKind.Dense, Tweak: k => (k.StridedRotaryGradient, k.PooledAttentionOutput) = (false, false)),
        new("mf-copies", "MemoryFormer, both copies into fresh memory (StridedRotaryGradient and PooledAttentionOutput off, before 2026-12-06 06:30)",
            TransformerKind.MemoryFormer, Tweak: k => (k.StridedRotaryGradient, k.PooledAttentionOutput) = (false, false)),
        new("mf-managedsums", "MemoryFormer, bias gradients by the managed ColumnSums, each before its row pass (ManagedBiasSums on, opt-in; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.ManagedBiasSums = true),
        new("mf-rotcopy", "MemoryFormer, rotary backward copies ∂L/∂y first (StridedRotaryGradient off, before 2026-12-06 06:30)", TransformerKind.MemoryFormer,
            Tweak: k => k.StridedRotaryGradient = false),
        new("mf-narrowhash", "MemoryFormer, the sign hash 8 chunks at a time in AVX registers (WideSignHash off, before 2026-12-06 s14; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.WideSignHash = false),
        new("mf-nestedgemms", "MemoryFormer, attention's block GEMMs each in a nested OpenMP region (SerialAttentionGemms off, before 2026-12-06 s15; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.SerialAttentionGemms = false),
        new("dense-nestedgemms", "dense, attention's block GEMMs each in a nested OpenMP region (SerialAttentionGemms off, before 2026-12-06 s15; same bits)",
            TransformerKind.Dense, Tweak: k => k.SerialAttentionGemms = false),
        new("mf-nestedbackward", "MemoryFormer, SDPA's backward without the custom node, its block GEMMs on the autograd thread each in a nested OpenMP region (SerialAttentionBackward off, before 2026-12-06 s16; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.SerialAttentionBackward = false),
        new("dense-nestedbackward", "dense, SDPA's backward without the custom node (SerialAttentionBackward off, before 2026-12-06 s16; same bits)",
            TransformerKind.Dense, Tweak: k => k.SerialAttentionBackward = false),
        new("mf-zen4caches", "MemoryFormer, the kernels sized for Zen 4's caches (TiledGroupBytes 512 KB, TiledForwardAlignedMinTableBytes 16 MB: before 2026-12-06 s17; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => { k.TiledGroupBytes = 512 << 10; k.TiledForwardAlignedMinTableBytes = 16L << 20; }),
        new("mf-nogatherprefetch", "MemoryFormer, no L2 row prefetch in the token-major forward gather (PrefetchGatherRows off; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.PrefetchGatherRows = false),
        new("mf-gatherprefetch", "MemoryFormer, the L2 row prefetch in the token-major forward gather on (PrefetchGatherRows on; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.PrefetchGatherRows = true),
        new("mf-zen4tuning", "MemoryFormer, every s17 default as before (TiledGroupBytes 512 KB, TiledForwardAlignedMinTableBytes 16 MB, PrefetchGatherRows on: the Zen 4 tuning; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => { k.TiledGroupBytes = 512 << 10; k.TiledForwardAlignedMinTableBytes = 16L << 20; k.PrefetchGatherRows = true; }),
        new("mf-tilemajorcopy", "MemoryFormer, the tiled training forward copying the table tile-major first (TiledStridedCopy off; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.TiledStridedCopy = false),
        new("mf-s18forward", "MemoryFormer, the tiled forward as before s19 (TiledStridedCopy and TiledPairTiles off: the tile-major copy, one tile a walk; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.TiledStridedCopy = k.TiledPairTiles = false),
        new("mf-s19glue", "MemoryFormer, the Memory Layer glue as before s20 (HashWritesRows32 and StagedHitSort off: the gather's own int64 → int32 copy, the hit sort walking each chunk's column; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.HashWritesRows32 = k.StagedHitSort = false),
        new("mf-gathercopiesrows", "MemoryFormer, the gather's own int64 → int32 row copy (HashWritesRows32 off; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.HashWritesRows32 = false),
        new("mf-columnsort", "MemoryFormer, the hit sort walking each chunk's column (StagedHitSort off; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.StagedHitSort = false),
        new("mf-zen4groups", "MemoryFormer, the tiled forward's chunk groups sized for Zen 4's 1 MB L2 (TiledGroupBytes 512 KB; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.TiledGroupBytes = 512 << 10),
        new("mf-zen4gate", "MemoryFormer, the tiled forward's gate sized for Zen 4's 32 MB L3 (TiledForwardAlignedMinTableBytes 16 MB; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.TiledForwardAlignedMinTableBytes = 16L << 20),
        new("mf-ompforks", "MemoryFormer, the managed kernels' forks always on libtorch's OpenMP team (KernelForks = OpenMPTeam; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.KernelForks = KernelForkPolicy.OpenMPTeam),
        new("mf-poolforks", "MemoryFormer, the managed kernels' forks on .NET's thread pool (KernelForks = ThreadPool: the default before 2026-12-07 s22; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.KernelForks = KernelForkPolicy.ThreadPool),
        new("mf-noupdateprefetch", "MemoryFormer, no L2 prefetch of the table, m and v rows in the fused update (PrefetchUpdateRows off; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.PrefetchUpdateRows = false),
        new("mf-updateprefetch", "MemoryFormer, the fused update's L2 prefetch of the table, m and v rows on (PrefetchUpdateRows on: the default before 2026-12-07 s20 on Intel; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.PrefetchUpdateRows = true),
        new("mf-nohitprefetch", "MemoryFormer, no L1 prefetch of the next row's ∂L/∂y rows in the row pass (PrefetchHitRows off; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.PrefetchHitRows = false),
        new("mf-noprefetches", "MemoryFormer, neither the fused update's nor the row pass's prefetch (PrefetchUpdateRows and PrefetchHitRows off; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.PrefetchUpdateRows = k.PrefetchHitRows = false),
        new("dense-poolforks", "dense, the managed kernels' forks on .NET's thread pool (KernelForks = ThreadPool: the default before 2026-12-07 s22; same bits)",
            TransformerKind.Dense, Tweak: k => k.KernelForks = KernelForkPolicy.ThreadPool),
        new("mf-plainupdate", "MemoryFormer, the bf16-moment AdamW loop as before 2026-12-07 s21 (LeanBf16Update off; same bits)",
            TransformerKind.MemoryFormer, Tweak: k => k.LeanBf16Update = false),
    ];

    private static readonly (int Width, int Layers, int Heads, int Context, int Batch)[] Shapes =
        [(256, 4, 4, 128, 16), (512, 6, 8, 256, 8)];

    /// <summary>The shape <c>perf train</c> times at <paramref name="width"/> (256 or 512), for the commands that profile it.</summary>
    internal static (int Width, int Layers, int Heads, int Context, int Batch) ShapeOf(int width) => Shapes.Single(s => s.Width == width);

    /// <summary>Accepts the widths of <see cref="Shapes"/> only.</summary>
    internal static Spectre.Console.ValidationResult ValidateWidth(int width) => Shapes.Any(s => s.Width == width)
        ? Spectre.Console.ValidationResult.Success()
        : Spectre.Console.ValidationResult.Error($"--width must be 256 or 512 (perf train's shapes); got {width}.");

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        Measure(settings, settings.Width, settings.ModelList, settings.WarmupSeconds).Publish(settings.Output);
        return 0;
    }

    /// <summary>The dense row a model's ratio divides: the dense row with the same norms and attention (dense-torchnorm for the
    /// torchnorm rows, dense-fattn for the fattn rows) when it was timed, else dense (row 0).</summary>
    private static int DenseFor(Variant[] chosen, int i)
    {
        int match = Array.FindIndex(chosen, v => v.Kind == TransformerKind.Dense && v.TorchNorms == chosen[i].TorchNorms && (v.FusedAttention ?? false) == (chosen[i].FusedAttention ?? false));
        return match >= 0 && match != i ? match : 0;
    }

    public static PerfTable Measure(PerfSettings settings) => Measure(settings, null, ["dense", "mf", "mf-bf16"]);

    private static PerfTable Measure(PerfSettings settings, int? width, string[] models, double warmupSeconds = 0)
    {
        var chosen = models.Select(key => Variants.First(v => v.Key == key)).ToArray();
        string machine = MachineFigures.Measure(settings);
        int bf16Dense = Array.FindIndex(chosen, v => v.Key == "dense-bf16");           // a second column of ratios against dense-bf16, if timed
        string[] columns = ["shape", "model", "step ms", "fwd+bwd ms", "clip+AdamW ms", "page faults/step", "CPU ms/step", "tokens/s", "MF ÷ dense"];
        var table = new PerfTable("train", "Training tokens/s, MemoryFormer vs dense (same tokens per step)",
            bf16Dense > 0 ? [.. columns, "÷ dense-bf16"] : columns);
        foreach (var s in Shapes.Where(s => width is null || s.Width == width))
        {
            var trainees = chosen.Select(m => new Trainee(s, m)).ToArray();
            int warmup = settings.Quick ? 1 : s.Width >= 512 ? 2 : 3, rounds = settings.Quick ? 3 : s.Width >= 512 ? 6 : 10;
            var warming = Stopwatch.StartNew();
            for (int step = 0; step < warmup || warming.Elapsed.TotalSeconds < warmupSeconds; step++)
            {
                foreach (var t in trainees)
                    t.Step(step, timed: false);
                warmup = Math.Max(warmup, step + 1);
            }
            // Interleaved: this machine's speed drifts by up to 30% within minutes, so each round times one step of each
            // model back to back, starting one model later each round (a fixed order let the model in one slot win
            // whichever it was), and a ratio is the median of the rounds' ratios.
            var ratios = trainees.Select(_ => new List<double>()).ToArray();
            var bf16Ratios = trainees.Select(_ => new List<double>()).ToArray();
            for (int round = 0; round < rounds; round++)
            {
                var ms = new double[trainees.Length];
                foreach (int i in Timing.Rotation(trainees.Length, round))
                    ms[i] = trainees[i].Step(warmup + round, timed: true);
                for (int i = 1; i < trainees.Length; i++)
                    ratios[i].Add(ms[chosen[0].Kind == TransformerKind.Dense ? DenseFor(chosen, i) : 0] / ms[i]);
                for (int i = 0; i < trainees.Length && bf16Dense > 0; i++)
                    bf16Ratios[i].Add(ms[bf16Dense] / ms[i]);
            }
            string shape = $"d={s.Width} L={s.Layers} ctx{s.Context}×{s.Batch}";
            for (int i = 0; i < trainees.Length; i++)
            {
                var t = trainees[i];
                object[] cells = [shape, chosen[i].Name, t.StepMs, Timing.Median(t.ForwardBackward), Timing.Median(t.Optimizer), Timing.Median(t.Faults), Timing.Median(t.CpuMs),
                    s.Context * s.Batch / (t.StepMs / 1000), Ratio(ratios[i])];
                table.AddRow(bf16Dense > 0 ? [.. cells, i == bf16Dense ? "" : Ratio(bf16Ratios[i])] : cells);
            }
            foreach (var t in trainees)
                t.Dispose();
        }
        table.AddNote("steps interleaved dense/MF after warm-up, each round starting one model later (d=256: 3 + 10 rounds, d=512: 2 + 6; --quick: 1 + 3; --warmup-seconds S: more warm-up steps until S seconds have passed); step ms = median; " +
            "MF ÷ dense = median over rounds of dense step ÷ MF step; page faults = minor faults per timed step (fresh pages the kernel mapped); CPU ms/step = the process's CPU time per timed step, all threads, median (spinning counts, sleeping not; less stretched by load than step ms); MF τ=8, K=d/8, fused CPU kernels; tables lr 3e-3, dense 1e-3 (TrainingOptions defaults); " +
            "bf16 table moments = TrainingOptions.TableMomentPrecision BFloat16; blocked = KernelSettings.BlockedTableGradient on (off by default: the row pass); " +
            "torchnorm = KernelSettings.FusedNormAndRotary off (both models' RMSNorm and rotary as torch ops, the path before 2026-12-05 04:30; an mf-torchnorm row's ratio divides dense-torchnorm when that was timed); every MemoryFormer row but mf-global uses the default TrainingOptions.TableGradientClipping (PreviousStep: AdamW applied " +
            "to each table block inside the backward); mf-global = Global clip (the default before 2026-12-05: tables updated after the backward); " +
            "fattn = KernelSettings.FusedCausalAttention on (the managed causal attention: about half of SDPA's time, but opt-in since it cost 0.014-0.022 bits/byte at 1,500 LM steps; an mf-fattn row's ratio divides dense-fattn when that was timed); " +
            "bf16rows / fp32rows = KernelSettings.Bf16GradientRows on / off (the backward's row pass reads a bf16 copy of ∂L/∂y, or fp32); " +
            "bf16fwd = KernelSettings.Bf16ForwardTables on (the forward gathers read a bf16 copy of each table, kept current by the fused update); mixed = both bf16 switches; " +
            "dense-bf16 = KernelSettings.Bf16DenseLinear on (Q/K/V, W_O and the FFN as bf16 GEMMs with fp32 master weights, autocast-style casts; LM head fp32 as in MemoryFormer); " +
            "÷ dense-bf16 (when dense-bf16 is timed after the first row) = median over rounds of the dense-bf16 step ÷ this row's step");
        if (chosen[0].Kind != TransformerKind.Dense)
            table.AddNote("the first model is not dense: the last column is the first model's step ÷ this model's step (median over rounds; > 1: this one faster)");
        table.AddNote(machine);
        return table;
    }

    /// <summary>The median of a row's per-round ratios as "1.23×", or blank when it has none.</summary>
    private static string Ratio(List<double> ratios) =>
        ratios.Count == 0 ? "" : Timing.Median(ratios).ToString("F2", System.Globalization.CultureInfo.InvariantCulture) + "×";

    /// <summary>One model with its data and optimizer, stepped and timed one training step at a time.</summary>
    /// <summary>The seeded byte-level model (vocabulary 256) of shape <paramref name="s"/> and a task over random windows:
    /// what <c>perf train</c> and <c>perf train-profile</c> time.</summary>
    internal static (LanguageModel Model, LanguageModelTask Task) ByteModel((int Width, int Layers, int Heads, int Context, int Batch) s,
        TransformerKind kind)
    {
        random.manual_seed(1337);
        var model = new LanguageModel(new MemoryFormerConfig
        {
            Kind = kind, VocabularySize = 256, Width = s.Width, Layers = s.Layers, Heads = s.Heads, ContextLength = s.Context,
        });
        var windows = randint(0, 256, [s.Batch * 4, s.Context + 1]);
        return (model, new LanguageModelTask(model, windows, null, s.Batch, seed: 1, CPU));
    }

    private sealed class Trainee : IDisposable
    {
        private readonly LanguageModel model;
        private readonly LanguageModelTask task;
        private readonly ModelOptimizer optimizer;
        private readonly bool? blocked;
        private readonly bool fresh;
        private readonly bool torchNorms;
        private readonly bool untiled;
        private readonly bool? fusedAttention;
        private readonly bool? bf16Rows;
        private readonly Action<Runtime.KernelSettings>? tweak;

        public Trainee((int Width, int Layers, int Heads, int Context, int Batch) s, Variant variant)
        {
            var (kind, precision) = (variant.Kind, variant.Precision);
            blocked = variant.Blocked;
            fresh = variant.Fresh;
            torchNorms = variant.TorchNorms;
            untiled = variant.Untiled;
            tweak = variant.Tweak;
            fusedAttention = variant.FusedAttention;
            bf16Rows = variant.Bf16Rows;
            (model, task) = ByteModel(s, kind);
            optimizer = new ModelOptimizer(model, new TrainingOptions
            {
                MaxSteps = 1000, WarmupSteps = 10, TableMomentPrecision = precision, TableGradientClipping = variant.Clipping,
            });
            model.train();
        }

        /// <summary>Timed steps' forward+backward milliseconds.</summary>
        public List<double> ForwardBackward { get; } = [];

        /// <summary>Timed steps' clip + AdamW milliseconds.</summary>
        public List<double> Optimizer { get; } = [];

        /// <summary>Timed steps' minor page faults (fresh memory the kernel had to map and zero).</summary>
        public List<double> Faults { get; } = [];

        /// <summary>Timed steps' CPU milliseconds, all of the process's threads (user + system): what a step costs in work, which the
        /// load stretches far less than its wall time; spinning threads count, sleeping ones do not.</summary>
        public List<double> CpuMs { get; } = [];

        /// <summary>Median step time over the timed steps.</summary>
        public double StepMs => Timing.Median(ForwardBackward.Zip(Optimizer, (a, b) => a + b));

        /// <summary>One training step; returns its milliseconds, recorded when <paramref name="timed"/>.</summary>
        public double Step(int step, bool timed)
        {
            double ms = 0;
            Runtime.KernelSettings.Current.With(k =>
            {
                k.BlockedTableGradient = blocked ?? k.BlockedTableGradient;
                k.ReuseKernelBuffers = !fresh;
                k.FusedNormAndRotary = !torchNorms;
                k.TiledForward = !untiled;
                k.FusedCausalAttention = fusedAttention ?? k.FusedCausalAttention;
                k.Bf16GradientRows = bf16Rows ?? k.Bf16GradientRows;
                tweak?.Invoke(k);
            }, () => ms = StepOnce(step, timed));
            return ms;
        }

        private double StepOnce(int step, bool timed)
        {
            using var scope = NewDisposeScope();
            long faults = PageFaults.Minor();
            var cpu = Environment.CpuUsage.TotalTime;
            long start = Stopwatch.GetTimestamp();
            optimizer.ZeroGrad(step);
            var (loss, _) = task.Loss(step);
            loss.backward();
            double forwardBackward = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            start = Stopwatch.GetTimestamp();
            optimizer.Step(step);
            double optimizerMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (timed)
            {
                Faults.Add(PageFaults.Minor() - faults);
                CpuMs.Add((Environment.CpuUsage.TotalTime - cpu).TotalMilliseconds);
                ForwardBackward.Add(forwardBackward);
                Optimizer.Add(optimizerMs);
            }
            return forwardBackward + optimizerMs;
        }

        public void Dispose()
        {
            optimizer.Dispose();
            model.Dispose();
        }
    }
}
