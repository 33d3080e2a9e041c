using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using Microsoft.ML.MemoryFormer.Training;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf scoring</c> (issue 16, item 4 and the scoring target): text-classification scoring rows/s of a classifier
/// with the default architecture (d = 128, 2 blocks, GPT-2 tokens, 128-token windows, up to 4 windows per row), on long
/// rows (Moby Dick paragraphs of 500–3,000 characters) and short rows (banking77 test texts): <c>Transform</c> with a full
/// enumeration of the scored rows and PredictionEngine row by row, the reference scoring path, the batched one through the
/// torch modules and the batched one through the fused managed encoder timed interleaved, a phase breakdown of one pass, and the machine's GEMM GFLOP/s and copy bandwidth from the same run.
/// </summary>
internal sealed class ScoringCommand : Command<ScoringCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--width")]
        [Description("Model width of the trained classifier (heads of 32 columns, 2 blocks). Default: the text classifier's default architecture (d = 128).")]
        public int? Width { get; init; }

        [CommandOption("--piece-tokens <LIST>")]
        [Description("Comma-separated piece sizes (fewest tokens of a window-major piece) to time against the default in adjacent pairs, e.g. 128,256. Default: none.")]
        public string PieceTokens { get; init; } = "";

        [CommandOption("--long-rows")]
        [Description("Long rows scored per round. Default 256.")]
        [DefaultValue(256)]
        public int LongRows { get; init; } = 256;

        [CommandOption("--short-rows")]
        [Description("Short rows scored per round. Default 1024.")]
        [DefaultValue(1024)]
        public int ShortRows { get; init; } = 1024;

        [CommandOption("--engine-rows")]
        [Description("Rows scored one by one through PredictionEngine per round. Default 32.")]
        [DefaultValue(32)]
        public int EngineRows { get; init; } = 32;

        [CommandOption("--rounds")]
        [Description("Interleaved timed rounds (median reported). Default 7 (3 with --quick).")]
        public int? Rounds { get; init; }

        [CommandOption("--train-steps")]
        [Description("Training steps of the classifier (the weights do not change the scoring speed). Default 8.")]
        [DefaultValue(8)]
        public int TrainSteps { get; init; } = 8;

        [CommandOption("--budgets")]
        [Description("Comma-separated tokens per encoder batch of the batched path to compare (a tuning sweep); empty = the default only.")]
        [DefaultValue("")]
        public string Budgets { get; init; } = "";

        [CommandOption("--legacy-paths")]
        [Description("Also time the batched path through the torch modules and the fused encoder with the scalar per-token kernels (superseded defaults).")]
        public bool LegacyPaths { get; init; }

        [CommandOption("--encoder-reps")]
        [Description("Also time the fused encoder alone on one group of long-row windows (≈ 4,096 tokens), token-major vs table-major gathers interleaved, this many times each, and print the fastest time of each part (less disturbed by a loaded machine than a median). Default 0: off.")]
        [DefaultValue(0)]
        public int EncoderReps { get; init; }

        [CommandOption("--row-kinds")]
        [Description("Which rows to score: long, short or both (comma-separated). Default long,short.")]
        [DefaultValue("long,short")]
        public string RowKinds { get; init; } = "long,short";

        [CommandOption("--window-layouts")]
        [Description("Also time the default with these opt-in layouts of long rows' windows (TextClassifierModel.ScoringWindowLayout, comma-separated: ShortLast, Even; other outputs), each in fp32 and with bf16 tables. Default none.")]
        [DefaultValue("")]
        public string WindowLayouts { get; init; } = "";

        [CommandOption("--encoder-layout")]
        [Description("The window layout of the encoder-alone group's long rows (LastMovedBack, Even, ShortLast). Default LastMovedBack.")]
        [DefaultValue(WindowLayout.LastMovedBack)]
        public WindowLayout EncoderLayout { get; init; } = WindowLayout.LastMovedBack;

        [CommandOption("--table-major")]
        [Description("With --window-layouts: also time each layout with the table-major gathers (UseTableMajorGathers, staged whole-group passes) in slices of 512 KB, L2 / 2 and L2.")]
        public bool TableMajor { get; init; }

        [CommandOption("--encoder-only")]
        [Description("Only the encoder-alone tables (--encoder-reps, default 20 then) on long-row windows (short-row ones with --row-kinds short): no Transform or PredictionEngine timing.")]
        public bool EncoderOnly { get; init; }

        [CommandOption("--profile-passes")]
        [Description("Only run this many Transform passes of the default path on long rows (the first of --window-layouts when given), after a marker line with the process id, for a profiler to attach to (perf record -p). No tables. Default 0: off.")]
        [DefaultValue(0)]
        public int ProfilePasses { get; init; }

        [CommandOption("--encoder-variants")]
        [Description("With --encoder-only or --encoder-reps: time only the encoder variants whose name contains one of these comma-separated texts, and the default. Default: all.")]
        [DefaultValue("")]
        public string EncoderVariants { get; init; } = "";

        [CommandOption("--ratio-pairs")]
        [Description("Pairs of Transform passes, the reference and the default path (the first of --window-layouts when given) back to back, in A-B-B-A order, after the tables: the median of the per-pair ratios (table scoring-ratio). Default 16 (4 with --quick); 0: off.")]
        public int? RatioPairs { get; init; }

        [CommandOption("--warmup-rounds")]
        [Description("Untimed rounds before the timed ones of the main table (every path once a round). Default 1, as the target's rounds have been read since s16; the reference path's passes settle after about three (docs/benchmarks.md, scoring round 11).")]
        [DefaultValue(1)]
        public int WarmupRounds { get; init; } = 1;

        [CommandOption("--tokenize-reps")]
        [Description("Only time the scoring path's tokenizing of the long rows (GPT-2, Even windows) this many passes a variant, interleaved on one thread, ids checked equal (table scoring-tokenize); no model is trained. Default 0: off.")]
        [DefaultValue(0)]
        public int TokenizeReps { get; init; }

        public override ValidationResult Validate() =>
            EncoderReps < 0 ? ValidationResult.Error("--encoder-reps must be 0 or positive")
            : LongRows < 1 || ShortRows < 1 || EngineRows < 1 ? ValidationResult.Error("--long-rows, --short-rows and --engine-rows must be positive")
            : Rounds is < 1 ? ValidationResult.Error("--rounds must be positive")
            : TrainSteps < 1 ? ValidationResult.Error("--train-steps must be positive")
            : Width is { } w && (w < 32 || w % 32 != 0) ? ValidationResult.Error($"--width {w}: give a positive multiple of 32 (heads of 32 columns), e.g. 256")
            : PieceTokens.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault(t => !int.TryParse(t, out int n) || n < 1) is { } bad
                ? ValidationResult.Error($"--piece-tokens: '{bad}' is not a positive whole number of tokens (give a comma-separated list, e.g. 128,256)")
            : ValidationResult.Success();
    }

    /// <summary>One input row.</summary>
    private sealed class Row
    {
        public string Text { get; set; } = "";
        public string Label { get; set; } = "";
    }

    /// <summary>PredictionEngine's output.</summary>
    private sealed class Scored
    {
        public float[] Score { get; set; } = [];
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        string mobyDick = BenchmarkPaths.SharedData(Path.Combine("text", "moby_dick.txt"));
        string banking = BenchmarkPaths.SharedData(Path.Combine("classification", "banking77_test.csv"));
        if (!File.Exists(mobyDick))
        {
            Console.Error.WriteLine($"perf scoring skipped: {mobyDick} is absent (the Moby Dick text of the shared data folder).");
            return 0;
        }
        int rounds = settings.Rounds ?? (settings.Quick ? 3 : 7);
        var longRows = Cycle(Paragraphs(File.ReadAllText(mobyDick)), settings.LongRows);
        var shortRows = File.Exists(banking) ? Cycle(BankingTexts(banking), settings.ShortRows) : null;
        if (shortRows is null) AnsiConsole.MarkupLineInterpolated($"[yellow]{banking} is absent: the short-row rows are skipped.[/]");

        if (settings.TokenizeReps > 0)
        {
            var (g, c) = MachineFigures.Figures(settings);
            ScoringTokenizing.Run(longRows, settings.TokenizeReps, settings.Output, MachineLine(g, c));
            return 0;
        }

        var ml = new MLContext(seed: 1);
        using var transformer = Train(ml, longRows, settings.TrainSteps, settings.Width);
        var model = transformer.Model;
        var (gflops, copy) = MachineFigures.Figures(settings);

        var table = new PerfTable("scoring", settings.Width is int width ? $"Text-classification scoring: d={width}, {Math.Max(1, width / 32)} heads, 2 blocks, GPT-2, 128-token windows × ≤ 4" : "Text-classification scoring: default architecture (d=128, 2 blocks, GPT-2, 128-token windows × ≤ 4)",
            "rows", "path", "Transform rows/s", "Transform tokens/s", "PredictionEngine rows/s", "Transform speed-up, wall (reference ÷ path)", "Transform speed-up, CPU time", "Transform: cores used (CPU ÷ wall)", "PredictionEngine speed-up, wall", "max |Δ log p|, argmax equal", "MB allocated, gen-2 GCs per pass", "Transform: before ÷ path, median of per-round ratios", "Transform: reference ÷ path, median of per-round ratios");
        var phases = new PerfTable("scoring-phases", "Where one Transform pass goes (ms per pass, from the same model's profile)",
            "rows", "path", "tokenize", "window/pad", "encoder forward", "pooling/head", "ML.NET overhead", "Transform total", "padded ÷ real tokens");
        var ratio = new PerfTable("scoring-ratio", "Ratios from adjacent pairs of Transform passes (wall time): the target's reference ÷ default, and before round 9 ÷ default",
            "rows", "A ÷ B", "pairs", "median of per-pair ratios", "quartiles of per-pair ratios", "median A rows/s", "median B rows/s");
        var parts = new PerfTable("scoring-fused-parts", "Where the fused encoder's forward goes (ms per Transform pass, both blocks together)",
            "rows", "embedding", "norm + hash + Q/K/V + rotary", "attention", "residual + norm + Memory Block + residual", "final norm + pooling", "encoder forward", "ns per token per block", "first-block Q/K/V rows computed ÷ tokens");
        int defaultBudget = model.ScoringTokensPerBatch;
        var budgets = settings.Budgets.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(b => int.Parse(b, CultureInfo.InvariantCulture)).Where(b => b != defaultBudget).ToArray();
        if (settings.ProfilePasses > 0)
        {
            ProfilePasses(transformer, ml, longRows, defaultBudget, settings.WindowLayouts, settings.ProfilePasses);
            return 0;
        }
        if (settings.EncoderOnly)
        {
            EncoderParts(model, settings.RowKinds == "short" && shortRows is not null ? shortRows : longRows, settings.EncoderReps > 0 ? settings.EncoderReps : 20, MachineLine(gflops, copy), settings.Output, gathers: false, layout: settings.EncoderLayout, variants: settings.EncoderVariants);
            return 0;
        }
        string referenceName = "", measuredName = "";
        foreach (var (name, rows) in new[] { ("long", longRows), ("short", shortRows) })
        {
            if (rows is null || !settings.RowKinds.Split(',', StringSplitOptions.TrimEntries).Contains(name)) continue;
            var data = ml.Data.LoadFromEnumerable(rows.Select(t => new Row { Text = t, Label = "a" }));
            if (name == "long")
                ScoringWindowCounts.Table(name, model, rows).Publish(settings.Output);
            var paths = new List<(string Name, Action<TextClassifierModel> Set)>
            {
                ("reference (one padded batch per call)", m => Fused(m, false, defaultBudget, reference: true)),
                ($"fused encoder, every token's first Q/K/V, fresh working memory per call, keys transposed element by element, {defaultBudget} tokens per group (before)", m => Fused(m, true, defaultBudget, share: false, keep: false, tiled: false)),
                ("fused encoder, every token's first Q/K/V, kept working memory", m => Fused(m, true, defaultBudget, share: false)),
                ("fused encoder, first Q/K/V once per distinct id, kept working memory, whole-group passes", m => Fused(m, true, defaultBudget)),
                ("fused encoder, the same with every block window by window when more than one worker (default)", m => Fused(m, true, defaultBudget, windowMajor: null)),
                ("fused encoder, the default with bf16 tables (opt-in BFloat16)", m => Fused(m, true, defaultBudget, precision: Configuration.InferencePrecision.BFloat16, windowMajor: null)),
                ("fused encoder, the default with keys padded to 32 (before s15)", m => Fused(m, true, defaultBudget, windowMajor: null, shortTiles: false)),
            };
            foreach (var layout in settings.WindowLayouts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Enum.Parse<WindowLayout>))
            {
                paths.Add(($"fused encoder, the default with the window layout {layout} (ScoringWindowLayout; Even is the trainer's default since 2026-12-06)", m => Fused(m, true, defaultBudget, windowMajor: null, layout: layout)));
                paths.Add(($"fused encoder, the window layout {layout}, tokenizing by Microsoft.ML.Tokenizers' TiktokenTokenizer on the whole text (Gpt2WordEncoder off): before scoring round 11", m => Fused(m, true, defaultBudget, windowMajor: null, layout: layout, round11: false)));
                foreach (int pieces in settings.PieceTokens.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse))
                    paths.Add(($"PROBE the default with pieces of at least {pieces} tokens (default {Layers.Kernels.FusedEncoder.PieceTokens})", m => { Fused(m, true, defaultBudget, windowMajor: null, layout: layout); m.ScoringPieceTokens = pieces; }));
                if (Layers.Kernels.KernelParallel.Workers == 1)                   // where the default takes the whole-group passes
                    paths.Add(($"fused encoder, the window layout {layout}, window by window on one worker too (UseWindowMajorPasses on)", m => Fused(m, true, defaultBudget, windowMajor: true, layout: layout)));
                paths.Add(($"fused encoder, the window layout {layout}, groups of {defaultBudget} tokens, each in fixed ranges of windows per worker (UsePieceBuffers off): before scoring round 13", m => Fused(m, true, defaultBudget, windowMajor: null, layout: layout, round13: false)));
                paths.Add(($"fused encoder, the window layout {layout}, the attention's window tails and row max as before (AttentionTails, ScoresRowMax off): before scoring round 10", m => Fused(m, true, defaultBudget, windowMajor: null, layout: layout, round10: false)));
                paths.Add(($"fused encoder, the window layout {layout}, the general hash kernel, 2ⁿ in the exp's exponent bits, one LayerNorm at a time (ScoringSignHash, ScaledExp, PairedLayerNorm off): before scoring round 9", m => Fused(m, true, defaultBudget, windowMajor: null, layout: layout, round9: false, round10: false)));
                paths.Add(($"fused encoder, the window layout {layout}, first-block rows rebuilt every call (KeepFirstRows off: before scoring round 8)", m => Fused(m, true, defaultBudget, windowMajor: null, layout: layout, keepRows: false)));
                paths.Add(($"fused encoder, the window layout {layout} and bf16 tables (opt-in ScoringPrecision)", m => Fused(m, true, defaultBudget, precision: Configuration.InferencePrecision.BFloat16, windowMajor: null, layout: layout)));
                paths.Add(($"fused encoder, the window layout {layout} as before s18 (softmax, three Q/K/V walks, 8-lane τ = 8 hash)", m => Fused(m, true, defaultBudget, windowMajor: null, layout: layout, s18: false)));
                paths.Add(($"fused encoder, the window layout {layout} and bf16 tables as before s18", m => Fused(m, true, defaultBudget, precision: Configuration.InferencePrecision.BFloat16, windowMajor: null, layout: layout, s18: false)));
                if (settings.TableMajor)
                {
                    paths.Add(($"fused encoder, the window layout {layout}, table-major gathers (UseTableMajorGathers) in 512 KB slices", m => Fused(m, true, defaultBudget, windowMajor: null, layout: layout, tableMajor: 512 * 1024)));
                    paths.Add(($"fused encoder, the window layout {layout}, table-major gathers in L2 / 2 slices ({Runtime.CacheSizes.L2Bytes / 2 / 1024} KB)", m => Fused(m, true, defaultBudget, windowMajor: null, layout: layout, tableMajor: Runtime.CacheSizes.L2Bytes / 2)));
                    paths.Add(($"fused encoder, the window layout {layout}, table-major gathers in L2 slices ({Runtime.CacheSizes.L2Bytes / 1024} KB)", m => Fused(m, true, defaultBudget, windowMajor: null, layout: layout, tableMajor: Runtime.CacheSizes.L2Bytes)));
                }
            }
            if (settings.LegacyPaths)
                paths.InsertRange(1,
                [
                    ($"batched, torch modules ({defaultBudget} tokens per batch)", m => Fused(m, false, defaultBudget)),
                    ("fused encoder, scalar per-token kernels, every token's first Q/K/V", m => Fused(m, true, defaultBudget, simd: false, share: false, keep: false, tiled: false)),
                ]);
            int fusedIndex = paths.FindIndex(p => p.Name.EndsWith("(default)", StringComparison.Ordinal));
            int before = Math.Max(0, paths.FindIndex(p => p.Name.EndsWith("(before)", StringComparison.Ordinal)));
            paths.AddRange(budgets.Select(b => ($"batched, torch modules ({b} tokens per batch)", (Action<TextClassifierModel>)(m => Fused(m, false, b)))));
            paths.AddRange(budgets.Select(b => ($"fused encoder ({b} tokens per group)", (Action<TextClassifierModel>)(m => Fused(m, true, b)))));

            paths = paths.Select(p => (p.Name, (Action<TextClassifierModel>)(m => { p.Set(m); ScoringPassLog.Path = p.Name; }))).ToList();
            (ScoringPassLog.Rows, ScoringPassLog.Part) = (name, "rounds");
            var (transformMs, transformCpuMs, allocatedMb, gen2, rounds1) = InterleaveWithCpu(paths.Select(p => (Action)(() => p.Set(model))).ToArray(),
                () => ScoringPassLog.Time(() => TimeTransform(transformer, data, rows.Length)), rounds, settings.WarmupRounds, logParts: true);
            ScoringPassLog.Part = "other";
            var engineRows = rows.Take(settings.EngineRows).ToArray();
            using var engine = ml.Model.CreatePredictionEngine<Row, Scored>(transformer, new PredictionEngineOptions { OwnsTransformer = false });
            var engineMs = InterleaveWithCpu(paths.Select(p => (Action)(() => p.Set(model))).ToArray(), () => TimeEngine(engine, engineRows), rounds, settings.WarmupRounds).Wall;

            paths[0].Set(model);
            var reference = model.LogProbabilities(rows.Select(t => (t, (string?)null)).ToArray());
            var pathScores = new float[paths.Count][][];
            for (int i = 0; i < paths.Count; i++)
            {
                paths[i].Set(model);
                var scores = pathScores[i] = model.LogProbabilities(rows.Select(t => (t, (string?)null)).ToArray());
                double diff = scores.Zip(reference).Max(p => p.First.Zip(p.Second).Max(v => Math.Abs(v.First - v.Second)));
                int same = scores.Zip(reference).Count(p => ArgMax(p.First) == ArgMax(p.Second));
                long pathTokens = rows.Sum(t => model.Encode(t, null).Sum(w => (long)w.Length));  // this path's window layout
                table.AddRow(name, paths[i].Name, Rate(rows.Length, transformMs[i]), Rate(pathTokens, transformMs[i]), Rate(engineRows.Length, engineMs[i]),
                    FormattableString.Invariant($"{transformMs[0] / transformMs[i]:F2}×"), FormattableString.Invariant($"{transformCpuMs[0] / transformCpuMs[i]:F2}×"),
                    FormattableString.Invariant($"{transformCpuMs[i] / transformMs[i]:F2}"), FormattableString.Invariant($"{engineMs[0] / engineMs[i]:F2}×"),
                    FormattableString.Invariant($"{diff:g2}, {same}/{rows.Length}"), FormattableString.Invariant($"{allocatedMb[i]:F1}, {gen2[i]:F1}"),
                    FormattableString.Invariant($"{Timing.Median(rounds1[before].Zip(rounds1[i], (a, b) => a / b).ToArray()):F3}"),
                    FormattableString.Invariant($"{Timing.Median(rounds1[0].Zip(rounds1[i], (a, b) => a / b).ToArray()):F2}×"));

                var profile = model.Profile = new ScoringProfile();
                double total = TimeTransform(transformer, data, rows.Length);
                model.Profile = null;
                phases.AddRow(name, paths[i].Name, profile.TokenizeMs, profile.PadMs, profile.ForwardMs, profile.HeadMs,
                    Math.Max(0, total - profile.TotalMs), total, FormattableString.Invariant($"{(double)profile.PaddedTokens / profile.Tokens:F2}"));
                if (profile.FusedAttentionMs > 0)
                    parts.AddRow($"{name}: {paths[i].Name}", profile.FusedEmbeddingMs, profile.FusedAttentionInputsMs, profile.FusedAttentionMs, profile.FusedFeedforwardMs,
                        profile.FusedPoolingMs, profile.ForwardMs,
                        FormattableString.Invariant($"{profile.ForwardMs * 1e6 / profile.Tokens / model.Network.Config.Layers:F0}"),
                        FormattableString.Invariant($"{(double)profile.FusedFirstBlockRows / profile.Tokens:F3}"));
            }
            int Find(string suffix) => paths.FindIndex(p => p.Name.EndsWith(suffix, StringComparison.Ordinal));
            int layoutDefault = paths.FindIndex(p => p.Name.Contains("(ScoringWindowLayout;", StringComparison.Ordinal)), beforePieces = Find("before scoring round 13");
            if (layoutDefault >= 0 && beforePieces >= 0)
            {
                var (now, was) = (pathScores[layoutDefault], pathScores[beforePieces]);
                double moved = now.Zip(was).Max(p => p.First.Zip(p.Second).Max(v => Math.Abs(v.First - v.Second)));
                int bitsEqual = now.Zip(was).Count(p => p.First.AsSpan().SequenceEqual(p.Second));
                table.AddNote(FormattableString.Invariant($"{name} rows, the default against the same layout before scoring round 13 (groups of {defaultBudget} tokens): max |Δ log p| {moved:g2}, rows with every log p the same bits {bitsEqual}/{rows.Length}, argmax equal {now.Zip(was).Count(p => ArgMax(p.First) == ArgMax(p.Second))}/{rows.Length} (the pooled vectors are the same bits, and since 2026-12-07 the head computes each window's logits on their own, so the groups cannot move them: 0 and every row expected)"));
            }
            int pairs = settings.RatioPairs ?? (settings.Quick ? 4 : 16);
            if (pairs > 0)
            {
                int measured = layoutDefault < 0 ? fusedIndex : layoutDefault;
                var orders = new List<string>();
                ScoringPassLog.Part = "pairs";
                ratio.AddRow([name, "reference ÷ " + paths[measured].Name, .. RatioPairs(() => paths[0].Set(model), () => paths[measured].Set(model),
                    () => ScoringPassLog.Time(() => TimeTransform(transformer, data, rows.Length)), pairs, rows.Length, orders)]);
                ScoringPassLog.Part = "other";
                (referenceName, measuredName) = (paths[0].Name, paths[measured].Name);
                ratio.AddNote($"{name} rows, reference (A) and the default (B), medians by the pass before: {orders[0]}");
                // The code before each kept round, and each probe, against the default in the same adjacent pairs.
                var probes = Enumerable.Range(0, paths.Count).Where(i => paths[i].Name.Contains("PROBE", StringComparison.Ordinal));
                foreach (int other in new[] { beforePieces, Find("before scoring round 11"), Find("before scoring round 10") }.Concat(probes)
                    .Append(Find("before scoring round 9")).Where(i => i >= 0))
                    ratio.AddRow([name, paths[other].Name + " ÷ the default", .. RatioPairs(() => paths[other].Set(model), () => paths[measured].Set(model),
                        () => TimeTransform(transformer, data, rows.Length), pairs, rows.Length)]);
            }
            paths[fusedIndex].Set(model);
        }
        string machine = MachineLine(gflops, copy);
        table.AddNote(FormattableString.Invariant($"long rows: {settings.LongRows} Moby Dick paragraphs of 500–3,000 characters (whitespace collapsed), cycled; short rows: {settings.ShortRows} banking77 test texts; PredictionEngine: the first {settings.EngineRows} of each"));
        table.AddNote(FormattableString.Invariant($"median of {rounds} rounds after {settings.WarmupRounds} untimed, the paths timed interleaved, each round starting one path later; tokens/s counts the windows' real tokens (start token included); CPU time is the process's user + system time of a pass (less disturbed by other processes than wall time; with several threads it also counts OpenMP workers waiting, so --threads 1 measures work); cores used: a path's median CPU ÷ its median wall time, which falls below the workers where one waits for another (scoring round 13: 1.69 for the default before it, 1.92–1.94 after)"));
        table.AddNote("reference: Transform reads the training batch size (32) of rows per model call and scores them as one batch padded to its longest window; batched: at least 256 rows per call, windows sorted by length into batches padded to their own longest");
        table.AddNote("fused encoder (the default since 2026-12-05): the batched path's encoder as one managed inference forward (Layers/Kernels/FusedEncoder.cs), windows packed unpadded; \"batched, torch modules\" is the default before it");
        table.AddNote("fused encoder: SIMD per-token kernels (Layers/Kernels/EncoderKernels.cs: norms, rotary, bag sums with the row in AVX-512 registers; the default since 2026-12-05 04:30); \"scalar per-token kernels\": the decode step's, as before");
        table.AddNote("first Q/K/V once per distinct id (TextClassifierModel.ShareFirstProjections, the default since 2026-12-06 s13; a group whose new ids exceed 75 % of its tokens computes per token): the first block's Q, K, V before rotary depend on the token id alone, so they are computed once per distinct id of a call and copied (the same bits); kept working memory (TextClassifierModel.KeepFusedMemory, default): the encoder's buffers are reused from call to call instead of fresh pinned arrays; bf16: TextClassifierModel.UseInferencePrecision(BFloat16), bf16 copies of the Memory Layer tables");
        table.AddNote("window by window (TextClassifierModel.UseWindowMajorPasses; null, the default since 2026-12-06 s13, takes it when the kernels have more than one worker): every block over a few windows at a time, pieces in parallel (the same bits); whole-group passes: each block's passes over the whole group in turn");
        table.AddNote($"window by window, since scoring round 13 (TextClassifierModel.UsePieceBuffers, 2026-12-07 s22): each piece in its worker's own activation buffer, the workers taking pieces one at a time, and a call scored as one group; before it, groups of {defaultBudget} tokens, each a fork/join over fixed ranges of windows in one buffer of the group (the same pooled bits)");
        table.AddNote(machine);
        ratio.AddNote("the second row times the default against the same build with scoring round 9's switches off in the same way (A: before round 9, B: the default)");
        ratio.AddNote("each pair times the reference and the path back to back (the same Transform passes as the table above), in the order reference, path, then path, reference, alternating; the ratio is the median of the per-pair ratios (reference ms ÷ path ms), which a drift of the machine between pairs does not move; the quartiles show the spread within this process");
        ratio.AddNote(machine);
        ratio.Publish(settings.Output);
        phases.AddNote("ML.NET overhead = Transform total − the four phases (cursors, getters, output columns)");
        phases.AddNote(machine);
        table.Publish(settings.Output);
        phases.Publish(settings.Output);
        var passLog = ScoringPassLog.Table(referenceName, measuredName);
        passLog.AddNote(machine);
        passLog.Publish(settings.Output);
        ScoringPassLog.WriteCsv(settings.Output);
        parts.AddNote(machine);
        parts.Publish(settings.Output);
        if (settings.EncoderReps > 0)
            EncoderParts(model, settings.RowKinds == "short" && shortRows is not null ? shortRows : longRows, settings.EncoderReps, machine, settings.Output, layout: settings.EncoderLayout, variants: settings.EncoderVariants);
        return 0;
    }

    /// <summary><paramref name="pairs"/> pairs of passes, the reference and the path back to back (A-B, then B-A, alternating; one
    /// untimed pair first): the pair count, the median and quartiles of the per-pair ratios, and both medians' rows/s.</summary>
    private static string[] RatioPairs(Action reference, Action path, Func<double> pass, int pairs, int rows, List<string>? orders = null)
    {
        var ratios = new double[pairs];
        var (a, b) = (new double[pairs], new double[pairs]);
        for (int i = -1; i < pairs; i++)
        {
            double referenceMs, pathMs;
            if ((i & 1) == 0)
            {
                reference(); referenceMs = pass();
                path(); pathMs = pass();
            }
            else
            {
                path(); pathMs = pass();
                reference(); referenceMs = pass();
            }
            if (i < 0) continue;
            (a[i], b[i], ratios[i]) = (referenceMs, pathMs, referenceMs / pathMs);
        }
        var sorted = ratios.Order().ToArray();
        double Half(double[] ms, int parity) => Timing.Median(ms.Where((_, i) => (i & 1) == parity).ToArray());
        orders?.Add(FormattableString.Invariant($"A ms after A / after B: {Half(a, 0):F1} / {Half(a, 1):F1}; B ms after A / after B: {Half(b, 0):F1} / {Half(b, 1):F1}"));
        return [pairs.ToString(CultureInfo.InvariantCulture), FormattableString.Invariant($"{Timing.Median(ratios):F2}×"),
            FormattableString.Invariant($"{sorted[(pairs - 1) / 4]:F2}–{sorted[(3 * (pairs - 1) + 3) / 4]:F2}"),
            Rate(rows, Timing.Median(a)).ToString("F0", CultureInfo.InvariantCulture), Rate(rows, Timing.Median(b)).ToString("F0", CultureInfo.InvariantCulture)];
    }

    /// <summary>Transform passes of the default path alone on <paramref name="rows"/>, after three warm-up passes and a marker line
    /// (process id, UTC time) for a profiler to attach to; prints the median pass.</summary>
    private static void ProfilePasses(MemoryFormerTextClassificationTransformer transformer, MLContext ml, string[] rows, int budget, string layouts, int passes)
    {
        var layout = layouts.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Enum.Parse<WindowLayout>)
            .DefaultIfEmpty(WindowLayout.LastMovedBack).First();
        Fused(transformer.Model, true, budget, windowMajor: null, layout: layout);
        var data = ml.Data.LoadFromEnumerable(rows.Select(t => new Row { Text = t, Label = "a" }));
        for (int i = 0; i < 3; i++)
            TimeTransform(transformer, data, rows.Length);
        Console.WriteLine(FormattableString.Invariant($"profile passes: pid {Environment.ProcessId}, {passes} passes of the default path ({layout}) from {DateTime.UtcNow:HH:mm:ss} UTC"));
        Console.Out.Flush();
        var times = new double[passes];
        for (int i = 0; i < passes; i++)
            times[i] = TimeTransform(transformer, data, rows.Length);
        Console.WriteLine(FormattableString.Invariant($"profile passes done at {DateTime.UtcNow:HH:mm:ss} UTC: median {Timing.Median(times):F1} ms a pass, fastest {times.Min():F1}"));
    }

    /// <summary>Sets the attention's key transpose (tiled or element by element) for the calls that follow, then builds.</summary>
    private static T Transpose<T>(bool tiled, Func<T> build)
    {
        Runtime.KernelSettings.Current.TiledKeyTranspose = tiled;
        return build();
    }

    /// <summary>Turns s18's kernel switches off for the calls that follow (the encoder-alone loop turns them on after each), then builds.</summary>
    private static T Before18<T>(Func<T> build)
    {
        S18(false);
        return build();
    }

    /// <summary>Turns scoring round 10's switches off for the calls that follow (the encoder-alone loop turns them on after each), then builds.</summary>
    private static T Before20<T>(Func<T> build)
    {
        (Runtime.KernelSettings.Current.AttentionTails, Runtime.KernelSettings.Current.ScoresRowMax) = (false, false);
        return build();
    }

    /// <summary>Turns <see cref="Runtime.KernelSettings.PairedTokens"/> off for the calls that follow (the loop turns s18's switches on after each), then builds.</summary>
    private static T Unpaired<T>(Func<T> build)
    {
        Runtime.KernelSettings.Current.PairedTokens = false;
        return build();
    }

    /// <summary>Sets the AVX-512 attention's key padding (16 or 32) for the calls that follow, then builds.</summary>
    private static T KeyTiles<T>(bool shortTiles, Func<T> build)
    {
        Runtime.KernelSettings.Current.ShortKeyTiles = shortTiles;
        return build();
    }

    private static string MachineLine(double gflops, double copy) => string.Create(CultureInfo.InvariantCulture,
        $"machine in the same run: GEMM {gflops:F1} GFLOP/s (fp32 1024³ torch.mm), copy bandwidth {copy:F1} GB/s (read + write)");

    /// <summary>The fused encoder alone on one group of long-row windows, both gather layouts interleaved: the fastest
    /// milliseconds of each part over <paramref name="reps"/> calls each.</summary>
    private static void EncoderParts(TextClassifierModel model, string[] rows, int reps, string machine, string output, bool gathers = true,
        WindowLayout layout = WindowLayout.LastMovedBack, string variants = "")
    {
        var wanted = variants.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var encoder = new TextPairEncoder(model.Tokenizer, model.MaxTokensPerRow);
        var windows = new List<int[]>();
        int tokens = 0;
        foreach (var window in rows.SelectMany(t => encoder.EncodeWindows(t, null, model.MaxWindowsPerRow, layout)))
        {
            if (tokens + window.Length > model.ScoringTokensPerBatch) break;
            windows.Add(window);
            tokens += window.Length;
        }
        var backbone = model.Network.Backbone;
        var pooling = model.Network.Head.Pooling;
        var copies = backbone.modules().OfType<Layers.MemoryLayer>().ToDictionary(l => Layers.Kernels.TensorMemory.Key(l.Table), l => Layers.Kernels.Bf16Matrix.From(l.Table));
        Func<TorchSharp.torch.Tensor, Layers.Kernels.Bf16Matrix?> bf16 = t => copies.GetValueOrDefault(Layers.Kernels.TensorMemory.Key(t));
        var kept = Enumerable.Range(0, 11).Select(_ => new Layers.Kernels.FusedEncoderMemory()).ToArray();
        var modes = new (string, Func<Layers.Kernels.FusedEncoder>)[]
        {
            ("every token's first Q/K/V, fresh memory per call, keys transposed element by element (before)", () => Transpose(false, () => new Layers.Kernels.FusedEncoder(backbone, windowMajor: false))),
            ("every token's first Q/K/V, kept memory", () => new Layers.Kernels.FusedEncoder(backbone, memory: kept[0], windowMajor: false)),
            ("first Q/K/V once per distinct id, kept memory, whole-group passes", () => new Layers.Kernels.FusedEncoder(backbone, shareFirstProjections: true, memory: kept[1], windowMajor: false)),
            ("the same, keys transposed element by element (before)", () => Transpose(false, () => new Layers.Kernels.FusedEncoder(backbone, shareFirstProjections: true, memory: kept[4], windowMajor: false))),
            ("first Q/K/V once per distinct id, kept memory, every block window by window (default)", () => new Layers.Kernels.FusedEncoder(backbone, shareFirstProjections: true, memory: kept[3], windowMajor: true)),
            ("bf16 tables (opt-in BFloat16), kept memory", () => new Layers.Kernels.FusedEncoder(backbone, shareFirstProjections: true, bf16: bf16, memory: kept[2], windowMajor: false)),
            ("the default with keys padded to 32 (before s15)", () => KeyTiles(false, () => new Layers.Kernels.FusedEncoder(backbone, shareFirstProjections: true, memory: kept[5], windowMajor: true))),
            ($"the default in pieces of at least 128 tokens (PieceTokens {Layers.Kernels.FusedEncoder.PieceTokens} here; 128 before s18)", () => new Layers.Kernels.FusedEncoder(backbone, shareFirstProjections: true, memory: kept[7], windowMajor: true, pieceTokens: 128)),
            ("the default in pieces of at least 256 tokens", () => new Layers.Kernels.FusedEncoder(backbone, shareFirstProjections: true, memory: kept[8], windowMajor: true, pieceTokens: 256)),
            ("the default one token at a time (PairedTokens off)", () => Unpaired(() => new Layers.Kernels.FusedEncoder(backbone, shareFirstProjections: true, memory: kept[9], windowMajor: true))),
            ("the default with s20's switches off (AttentionTails, ScoresRowMax): before scoring round 10", () => Before20(() => new Layers.Kernels.FusedEncoder(backbone, shareFirstProjections: true, memory: kept[10], windowMajor: true))),
            ("the default with s18's kernel switches off and 128-token pieces (softmax, three Q/K/V walks, hash, one token at a time: before s18)", () => Before18(() => new Layers.Kernels.FusedEncoder(backbone, shareFirstProjections: true, memory: kept[6], windowMajor: true, pieceTokens: 128))),
        };
        if (wanted.Length > 0)
            modes = modes.Where(m => m.Item1.EndsWith("(default)", StringComparison.Ordinal) || wanted.Any(w => m.Item1.Contains(w, StringComparison.Ordinal))).ToArray();
        var best = modes.Select(_ => Enumerable.Repeat(double.MaxValue, 5).ToArray()).ToArray();
        var totals = modes.Select(_ => new double[reps]).ToArray();
        int reference = Array.FindIndex(modes, m => m.Item1.EndsWith("(default)", StringComparison.Ordinal));
        using var noGrad = TorchSharp.torch.no_grad();
        for (int rep = -1; rep < reps; rep++)
            foreach (int m in Timing.Rotation(modes.Length, rep))
            {
                var profile = new ScoringProfile();
                Runtime.KernelSettings.Current.TiledKeyTranspose = true;
                var fused = modes[m].Item2();
                long start = Stopwatch.GetTimestamp();
                using (var pooled = fused.Pooled(windows, pooling, profile)) { }
                double total = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                Runtime.KernelSettings.Current.TiledKeyTranspose = true;
                Runtime.KernelSettings.Current.ShortKeyTiles = true;
                S18(true);
                (Runtime.KernelSettings.Current.AttentionTails, Runtime.KernelSettings.Current.ScoresRowMax) = (true, true);
                if (rep < 0) continue;
                totals[m][rep] = total;
                double[] values = [profile.FusedAttentionInputsMs, profile.FusedAttentionMs, profile.FusedFeedforwardMs, profile.FusedEmbeddingMs + profile.FusedPoolingMs, total];
                for (int i = 0; i < values.Length; i++) best[m][i] = Math.Min(best[m][i], values[i]);
            }
        var table = new PerfTable("scoring-encoder-min", FormattableString.Invariant($"The fused encoder alone: one group of {windows.Count} windows ({tokens} tokens, {layout} layout), fastest of {reps} calls per variant (rotating order), ms, both blocks"),
            "variant", "norm + hash + Q/K/V + rotary", "attention", "residual + norm + Memory Block + residual", "embedding + pooling", "encoder forward, fastest", "encoder forward, median", "ns per token per block (fastest)", "median of per-round ratios: this ÷ default");
        for (int m = 0; m < modes.Length; m++)
            table.AddRow(modes[m].Item1, best[m][0], best[m][1], best[m][2], best[m][3], best[m][4], Timing.Median(totals[m]),
                FormattableString.Invariant($"{best[m][4] * 1e6 / tokens / model.Network.Config.Layers:F0}"),
                FormattableString.Invariant($"{Timing.Median(totals[m].Zip(totals[reference], (a, b) => a / b).ToArray()):F3}"));
        table.AddNote("window by window: the parts are thread time ÷ workers (one fork/join for the whole forward); \"before\" is the default before 2026-12-06 s13");
        table.AddNote("each part's minimum is taken on its own, so the parts need not add up to the forward's minimum; the first two rows give the same bits; a new encoder per call, as per scoring call, so the shared first Q/K/V are computed in every call (once per distinct id of the group)");
        table.AddNote(machine);
        table.Publish(output);
        if (gathers)
            GatherAlone(tokens, reps * 5, machine, output);
    }

    /// <summary>One gather pass alone over random chunked rows of <paramref name="n"/> tokens (16 chunks): three 128-wide
    /// tables of 8 bits (Q, K, V) and one of 10 bits (the Memory Block's second layer), token-major vs table-major
    /// interleaved; fastest and median ms.</summary>
    private static unsafe void GatherAlone(int n, int reps, string machine, string output)
    {
        const int k = 16, width = 128;
        var table = new PerfTable("scoring-gather-min", FormattableString.Invariant($"One gather pass alone, {n} tokens × {k} chunks, uniform random rows, {reps} calls per layout interleaved (ms)"),
            "tables", "token-major fastest", "token-major median", "table-major fastest", "table-major median");
        foreach (var (name, bits, count) in new[] { ("Q, K, V (3 × 2 MB, 8 bits)", 8, 3), ("ML₂ (8 MB, 10 bits)", 10, 1) })
        {
            var random = new Random(1);
            long rowCount = (long)k << bits;
            var tables = Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, (int)(rowCount * width)).Select(_ => (float)random.NextDouble()).ToArray()).ToArray();
            var bias = new float[width];
            var rows = Enumerable.Range(0, n * k).Select(i => ((i % k) << bits) + random.Next(1 << bits)).ToArray();
            var weights = Enumerable.Range(0, n * k).Select(_ => (float)random.NextDouble()).ToArray();
            var outputs = Enumerable.Range(0, count).Select(_ => new float[n * width]).ToArray();
            var times = new[] { new List<double>(), new List<double>() };
            var handles = tables.Concat(outputs).Append(bias).Append(weights).Select(a => System.Runtime.InteropServices.GCHandle.Alloc(a, System.Runtime.InteropServices.GCHandleType.Pinned)).ToList();
            var rowsHandle = System.Runtime.InteropServices.GCHandle.Alloc(rows, System.Runtime.InteropServices.GCHandleType.Pinned);
            try
            {
                int* r = (int*)rowsHandle.AddrOfPinnedObject();
                float* w = (float*)handles[^1].AddrOfPinnedObject(), b = (float*)handles[^2].AddrOfPinnedObject();
                var targets = Enumerable.Range(0, count).Select(t => new Layers.Kernels.ColumnSliceGather.Target(handles[t].AddrOfPinnedObject(), (nint)b,
                    handles[count + t].AddrOfPinnedObject(), handles[count + t].AddrOfPinnedObject(), width, false)).ToArray();
                for (int rep = -1; rep < reps; rep++)
                {
                    long start = Stopwatch.GetTimestamp();
                    for (int t = 0; t < count; t++)
                    {
                        float* src = (float*)handles[t].AddrOfPinnedObject(), dst = (float*)handles[count + t].AddrOfPinnedObject();
                        for (int i = 0; i < n; i++)
                            Layers.Kernels.RowKernels.WeightedBagSum(src, width, r + ((long)i * k), w + ((long)i * k), k, dst + ((long)i * width), b);
                    }
                    double tokenMajor = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                    start = Stopwatch.GetTimestamp();
                    Layers.Kernels.ColumnSliceGather.Run(targets, r, w, n, k, 1 << bits);
                    double tableMajor = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                    if (rep < 0) continue;
                    times[0].Add(tokenMajor);
                    times[1].Add(tableMajor);
                }
            }
            finally
            {
                foreach (var h in handles) h.Free();
                rowsHandle.Free();
            }
            table.AddRow(name, times[0].Min(), Timing.Median(times[0].ToArray()), times[1].Min(), Timing.Median(times[1].ToArray()));
        }
        table.AddNote("token-major: RowKernels.WeightedBagSum token by token on one thread; table-major: ColumnSliceGather.Run on the torch threads");
        table.AddNote(machine);
        table.Publish(output);
    }

    /// <summary>Sets the model's scoring switches for one path (outside the timed part: the bf16 copies are made here).</summary>
    private static void Fused(TextClassifierModel m, bool fused, int budget, bool reference = false, bool simd = true, bool share = true,
        Configuration.InferencePrecision precision = Configuration.InferencePrecision.Float32, bool keep = true, bool? windowMajor = false, bool tiled = true,
        WindowLayout layout = WindowLayout.LastMovedBack, bool shortTiles = true, bool s18 = true, long tableMajor = 0, bool keepRows = true, bool round9 = true,
        bool round10 = true, bool round11 = true, bool round13 = true)
    {
        (m.UsePieceBuffers, m.ScoringPieceTokens) = (round13, null);
        Gpt2WordEncoder.Enabled = round11;
        (Runtime.KernelSettings.Current.AttentionTails, Runtime.KernelSettings.Current.ScoresRowMax) = (round10, round10);
        m.ScoringWindowLayout = layout;
        (Runtime.KernelSettings.Current.ScaledExp, Runtime.KernelSettings.Current.ScoringSignHash, Runtime.KernelSettings.Current.PairedLayerNorm) = (round9, round9, round9);
        m.KeepFirstRows = keepRows;
        S18(s18);
        m.UseTableMajorGathers = tableMajor > 0;
        Layers.Kernels.ColumnSliceGather.SliceBytes = tableMajor > 0 ? tableMajor : Runtime.CacheSizes.L2Bytes / 2;
        Runtime.KernelSettings.Current.TiledKeyTranspose = tiled;
        Runtime.KernelSettings.Current.ShortKeyTiles = shortTiles;
        (m.UseReferenceScoring, m.UseFusedScoring, m.UseEncoderSimdKernels, m.ShareFirstProjections, m.ScoringTokensPerBatch, m.KeepFusedMemory, m.UseWindowMajorPasses) =
            (reference, fused, simd, share, budget, keep, windowMajor);
        if (m.InferencePrecision != precision) m.UseInferencePrecision(precision);
    }

    private static readonly bool WideInferenceHashDefault = Runtime.KernelSettings.Current.WideInferenceHash;
    private static readonly int SoftmaxRowsDefault = Runtime.KernelSettings.Current.SoftmaxRows;

    /// <summary>The same-bits kernel switches of 2026-12-06 s18 on (their defaults) or off (as before).</summary>
    private static void S18(bool on) =>
        (Runtime.KernelSettings.Current.LeanSoftmax, Runtime.KernelSettings.Current.SoftmaxRows, Runtime.KernelSettings.Current.FusedQkvBags, Runtime.KernelSettings.Current.WideInferenceHash, Runtime.KernelSettings.Current.LeanWideHash, Runtime.KernelSettings.Current.PairedTokens) =
            (on, on ? SoftmaxRowsDefault : 1, on, on && WideInferenceHashDefault, on, on);

    /// <summary>Median wall and process CPU milliseconds of <paramref name="body"/> after each of <paramref name="setups"/>,
    /// one call each per round, in a rotating order (<see cref="Timing.Rotation"/>), after <paramref name="warmups"/> untimed rounds; the set-ups are not timed.</summary>
    private static (double[] Wall, double[] Cpu, double[] AllocatedMb, double[] Gen2, double[][] WallRounds) InterleaveWithCpu(IReadOnlyList<Action> setups, Action body, int rounds,
        int warmups = 1, bool logParts = false)
    {
        var wall = setups.Select(_ => new double[rounds]).ToArray();
        var cpu = setups.Select(_ => new double[rounds]).ToArray();
        var allocated = setups.Select(_ => new double[rounds]).ToArray();
        var gen2 = setups.Select(_ => new double[rounds]).ToArray();
        using var process = Process.GetCurrentProcess();
        for (int round = -Math.Max(warmups, 0); round < rounds; round++)
            foreach (int b in Timing.Rotation(setups.Count, round))
            {
                if (logParts) ScoringPassLog.Part = round < 0 ? "warm-up" : "rounds";
                setups[b]();
                process.Refresh();
                var cpuStart = process.TotalProcessorTime;
                long bytes = GC.GetTotalAllocatedBytes(), collections = GC.CollectionCount(2);
                long start = Stopwatch.GetTimestamp();
                body();
                double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                process.Refresh();
                if (round < 0) continue;
                wall[b][round] = ms;
                cpu[b][round] = (process.TotalProcessorTime - cpuStart).TotalMilliseconds;
                allocated[b][round] = (GC.GetTotalAllocatedBytes() - bytes) / 1e6;
                gen2[b][round] = GC.CollectionCount(2) - collections;
            }
        return (wall.Select(Timing.Median).ToArray(), cpu.Select(Timing.Median).ToArray(), allocated.Select(Timing.Median).ToArray(), gen2.Select(a => a.Average()).ToArray(), wall);
    }

    private static int ArgMax(float[] values) => Array.IndexOf(values, values.Max());

    private static double Rate(long count, double ms) => count / (ms / 1000);

    /// <summary>Paragraphs of 500–3,000 characters, whitespace collapsed.</summary>
    internal static string[] Paragraphs(string text) =>
        text.Replace("\r", "", StringComparison.Ordinal).Split("\n\n")
            .Select(p => string.Join(' ', p.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)))
            .Where(p => p.Length is >= 500 and <= 3000).ToArray();

    private static string[] BankingTexts(string path) =>
        File.ReadLines(path).Skip(1).Where(line => line.LastIndexOf(',') > 0)
            .Select(line => line[..line.LastIndexOf(',')].Trim('"')).Where(t => t.Length > 0).ToArray();

    private static string[] Cycle(string[] source, int count) =>
        source.Length == 0 ? throw new InvalidDataException("No rows to score.") : Enumerable.Range(0, count).Select(i => source[i % source.Length]).ToArray();

    /// <summary>The classifier of the default options, trained for a few steps on four arbitrary classes, with the window layout
    /// of the earlier default (<see cref="WindowLayout.LastMovedBack"/>), so that the rows stay comparable with the earlier runs;
    /// the library's default since 2026-12-06, <see cref="WindowLayout.Even"/>, is timed by <c>--window-layouts Even</c>.</summary>
    private static MemoryFormerTextClassificationTransformer Train(MLContext ml, string[] rows, int steps, int? width)
    {
        var architecture = width is int d ? TextClassifierSettings.DefaultArchitecture with { Width = d, Heads = Math.Max(1, d / 32) } : null;
        var data = ml.Data.LoadFromEnumerable(rows.Select((t, i) => new Row { Text = t, Label = ((char)('a' + i % 4)).ToString() }));
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(new MemoryFormerTextClassificationOptions
            {
                MaxSteps = steps, Seed = 1, CalibrateTemperature = false, WindowLayout = WindowLayout.LastMovedBack, Architecture = architecture,
            }));
        var clock = Stopwatch.StartNew();
        var chain = pipeline.Fit(data);
        AnsiConsole.MarkupLineInterpolated($"trained {steps} steps in {clock.Elapsed.TotalSeconds:F1} s");
        return chain.LastTransformer;
    }

    private static double TimeTransform(MemoryFormerTextClassificationTransformer transformer, IDataView data, int expected)
    {
        long start = Stopwatch.GetTimestamp();
        var scored = transformer.Transform(data);
        int count = 0;
        using (var cursor = scored.GetRowCursor(scored.Schema.Where(c => c.Name == "Score")))
        {
            var getter = cursor.GetGetter<VBuffer<float>>(scored.Schema["Score"]);
            VBuffer<float> value = default;
            while (cursor.MoveNext())
            {
                getter(ref value);
                count++;
            }
        }
        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        if (count != expected) throw new InvalidOperationException($"Scored {count} rows, expected {expected}.");
        return ms;
    }

    private static double TimeEngine(PredictionEngine<Row, Scored> engine, string[] rows)
    {
        long start = Stopwatch.GetTimestamp();
        var input = new Row();
        foreach (var text in rows)
        {
            input.Text = text;
            if (engine.Predict(input).Score.Length == 0) throw new InvalidOperationException("Empty score.");
        }
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

}
