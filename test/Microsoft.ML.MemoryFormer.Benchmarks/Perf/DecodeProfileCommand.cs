using System.ComponentModel;
using System.Diagnostics;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.Generation.Sampling;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf decode-profile</c>: where one batch-1 decode step of the <c>perf decode</c> models goes — the LM head
/// alone (managed GEMV vs torch), and whole steps of MemoryFormer (fused single-token path and the general torch
/// path) and dense, interleaved round by round so that a loaded machine slows every variant alike.
/// </summary>
internal sealed class DecodeProfileCommand : Command<DecodeProfileCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--parts")]
        [Description("Substrings separated by commas, or by semicolons when the list has one (part names contain commas): time only the parts whose name contains one (e.g. head,blocks or \"gathers on two threads, rows;step: MF fused\"). Default all.")]
        public string? Parts { get; init; }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        Measure(settings).Publish(settings.Output);
        return 0;
    }

    public static PerfTable Measure(Settings settings)
    {
        int width = settings.Quick ? 512 : 1024, rounds = settings.Quick ? 2 : 5, tokens = settings.Quick ? 24 : 64;
        string machine = MachineFigures.Measure(settings);
        var table = new PerfTable("decode-profile", $"One batch-1 decode step, d={width}, 6 layers, vocab 50304: median ms over {rounds} interleaved rounds",
            "part", "median ms", "min ms", "GB/s");
        using var mf = NewModel(TransformerKind.MemoryFormer, width);
        using var dense = NewModel(TransformerKind.Dense, width);
        var weight = mf.named_parameters().First(p => p.name == "head.weight").parameter;
        var x = randn(1, width);
        double headMb = weight.numel() * 4 / 1e6;
        var weight16 = Bf16Matrix.From(weight);                                  // LanguageModel.UseBFloat16Inference's copy
        var weight8 = Int8Matrix.From(weight);                                   // UseInferencePrecision(Int8)'s copy
        var weight8Small = SmallPages(() => Int8Matrix.From(weight));            // the same on 4 KB pages
        var parts = new (string Name, double MegaBytes, Func<double> Time)[]
        {
            ("head: managed HeadGemv", headMb, () => Time(() => HeadGemv.Apply(x, weight))),
            ("head: managed HeadGemv, bf16 weights", headMb / 2, () => Time(() => HeadBf16(x, weight, weight16))),
            ("head: managed HeadGemv, int8 weights", headMb / 4, () => Time(() => HeadInt8(x, weight8))),
            ("head: managed HeadGemv, int8 weights, 4 KB pages", headMb / 4, () => Time(() => HeadInt8(x, weight8Small))),
            ("head: torch linear", headMb, () => Time(() => nn.functional.linear(x, weight))),
            ("head: torch mv", headMb, () => Time(() => mv(weight, x[0]))),
            ("MF fused blocks only, gathers on one thread", double.NaN, () => Gathers(mf, twoThreads: false, () => BlocksMs(mf, tokens))),
            ("MF fused blocks only, gathers on two threads (default)", double.NaN, () => Gathers(mf, twoThreads: true, () => BlocksMs(mf, tokens))),
            ("MF fused blocks only, bf16 tables, gathers on one thread", double.NaN, () => Gathers(mf, twoThreads: false, () => ReducedBlocksMs(mf, InferencePrecision.BFloat16, tokens))),
            ("MF fused blocks only, bf16 tables, gathers on two threads", double.NaN, () => Gathers(mf, twoThreads: true, () => ReducedBlocksMs(mf, InferencePrecision.BFloat16, tokens))),
            ("MF fused blocks only, bf16 tables, gathers on two threads, rows prefetched into L1 (before 2026-12-06 07:00)", double.NaN, () => IntoL1(() => Gathers(mf, twoThreads: true, () => ReducedBlocksMs(mf, InferencePrecision.BFloat16, tokens)))),
            ("MF fused blocks only, int8 tables, gathers on two threads, rows prefetched into L1 (before)", double.NaN, () => IntoL1(() => Gathers(mf, twoThreads: true, () => ReducedBlocksMs(mf, InferencePrecision.Int8, tokens)))),
            ("step: MF fused, bf16", double.NaN, () => Reduced(mf, InferencePrecision.BFloat16, () => StepMs(mf, fused: true, tokens))),
            ("step: MF fused, bf16, rows prefetched into L1 (before)", double.NaN, () => IntoL1(() => Reduced(mf, InferencePrecision.BFloat16, () => StepMs(mf, fused: true, tokens)))),
            ("step: MF fused, int8, rows prefetched into L1 (before)", double.NaN, () => IntoL1(() => Reduced(mf, InferencePrecision.Int8, () => StepMs(mf, fused: true, tokens)))),
            ("MF fused blocks only, int8 tables, gathers on one thread", double.NaN, () => Gathers(mf, twoThreads: false, () => ReducedBlocksMs(mf, InferencePrecision.Int8, tokens))),
            ("MF fused blocks only, int8 tables, gathers on two threads", double.NaN, () => Gathers(mf, twoThreads: true, () => ReducedBlocksMs(mf, InferencePrecision.Int8, tokens))),
            ("MF fused blocks only, int8 tables on 4 KB pages, gathers on one thread", double.NaN,
                () => SmallPages(() => Gathers(mf, twoThreads: false, () => ReducedBlocksMs(mf, InferencePrecision.Int8, tokens)))),
            ("MF fused blocks only, int8 tables on 4 KB pages, gathers on two threads", double.NaN,
                () => SmallPages(() => Gathers(mf, twoThreads: true, () => ReducedBlocksMs(mf, InferencePrecision.Int8, tokens)))),
            ("MF fused blocks only, int8 tables, gathers on two threads, PairFork helper", double.NaN,
                () => ForkHelper(() => Gathers(mf, twoThreads: true, () => ReducedBlocksMs(mf, InferencePrecision.Int8, tokens)))),
            ("step: MF fused, int8, PairFork helper", double.NaN, () => ForkHelper(() => Reduced(mf, InferencePrecision.Int8, () => StepMs(mf, fused: true, tokens)))),
            ("step: dense fused, int8, PairFork helper", double.NaN, () => ForkHelper(() => Reduced(dense, InferencePrecision.Int8, () => StepMs(dense, fused: true, tokens)))),
            ("step: MF fused, int8", double.NaN, () => Reduced(mf, InferencePrecision.Int8, () => StepMs(mf, fused: true, tokens))),
            ("step: dense fused, int8", double.NaN, () => Reduced(dense, InferencePrecision.Int8, () => StepMs(dense, fused: true, tokens))),
            ("step: MF fused", double.NaN, () => StepMs(mf, fused: true, tokens)),
            ("step: MF general", double.NaN, () => StepMs(mf, fused: false, tokens)),
            ("step: dense fused", double.NaN, () => StepMs(dense, fused: true, tokens)),
            ("step: dense general", double.NaN, () => StepMs(dense, fused: false, tokens)),
        };
        if (!string.IsNullOrEmpty(settings.Parts))
        {
            var wanted = settings.Parts.Split(settings.Parts.Contains(';') ? ';' : ',', StringSplitOptions.RemoveEmptyEntries);
            parts = parts.Where(p => wanted.Any(o => p.Name.Contains(o, StringComparison.Ordinal))).ToArray();
        }
        var samples = parts.Select(_ => new List<double>()).ToArray();
        for (int round = 0; round <= rounds; round++)
        {
            for (int p = 0; p < parts.Length; p++)
            {
                double ms = parts[p].Time();
                if (round > 0) samples[p].Add(ms);                                  // round 0 warms up
            }
        }
        for (int p = 0; p < parts.Length; p++)
        {
            var s = samples[p].Order().ToArray();
            double median = s[s.Length / 2];
            table.AddRow(parts[p].Name, median, s[0], parts[p].MegaBytes / median);
        }
        table.AddNote(machine);
        table.AddNote("head: x [1, d] · Wᵀ, W [50304, d], median of 20 calls per round; step: median step of a greedy generation of " +
            $"{tokens} tokens after a 16-token prompt (prefill excluded); GB/s = weight bytes / median time");
        return table;
    }

    private static LanguageModel NewModel(TransformerKind kind, int width)
    {
        random.manual_seed(3);
        var model = new LanguageModel(new MemoryFormerConfig
        {
            Kind = kind, VocabularySize = 50304, Width = width, Layers = 6, Heads = width / 64, ContextLength = 256,
        });
        model.eval();
        return model;
    }

    /// <summary>The head GEMV over the bf16 copy, as the fused decode step runs it after <c>UseBFloat16Inference()</c>.</summary>
    private static unsafe Tensor HeadBf16(Tensor x, Tensor weight, Bf16Matrix weight16)
    {
        var y = empty(1, weight.shape[0]);
        HeadGemv.Compute(TensorMemory.Floats(x), 1, TensorMemory.Floats(weight), weight16.Pointer, (int)weight.shape[0], (int)weight.shape[1], TensorMemory.Floats(y));
        GC.KeepAlive(weight16);
        return y;
    }

    /// <summary>The head GEMV over the int8 row-wise copy, as the fused decode step runs it after <c>UseInferencePrecision(Int8)</c>.</summary>
    private static unsafe Tensor HeadInt8(Tensor x, Int8Matrix weight8)
    {
        var y = empty(1, weight8.Rows);
        HeadGemv.Compute(TensorMemory.Floats(x), 1, weight8, TensorMemory.Floats(y));
        return y;
    }

    /// <summary>Times <paramref name="time"/> with the decode gathers prefetching into L1 as before 2026-12-06 (<see cref="Runtime.KernelSettings.DecodePrefetchIntoL2"/> off).</summary>
    private static double IntoL1(Func<double> time)
    {
        double result = 0;
        Runtime.KernelSettings.Current.With(k => k.DecodePrefetchIntoL2 = false, () => result = time());
        return result;
    }

    /// <summary><paramref name="time"/> with the blocks' gathers on one or two threads (<c>LanguageModel.UseTwoThreadGathers</c>).</summary>
    private static double Gathers(LanguageModel model, bool twoThreads, Func<double> time)
    {
        bool before = model.UseTwoThreadGathers;
        model.UseTwoThreadGathers = twoThreads;
        try
        {
            return time();
        }
        finally
        {
            model.UseTwoThreadGathers = before;
        }
    }

    /// <summary><paramref name="make"/> with the inference copies it makes left on 4 KB pages (<c>HugePages.Enabled</c> off).</summary>
    private static T SmallPages<T>(Func<T> make)
    {
        HugePages.Enabled = false;
        try
        {
            return make();
        }
        finally
        {
            HugePages.Enabled = true;
        }
    }

    /// <summary><paramref name="time"/> with the decode step's two-part forks on the spinning helper thread (<c>PairFork.Enabled</c>,
    /// off by default: forks take <c>Parallel.For</c>).</summary>
    private static double ForkHelper(Func<double> time)
    {
        PairFork.Enabled = true;
        try
        {
            return time();
        }
        finally
        {
            PairFork.Enabled = false;
        }
    }

    /// <summary><see cref="BlocksMs"/> with bf16 or int8 copies of the tables, made before and dropped after the timed steps.</summary>
    private static double ReducedBlocksMs(LanguageModel model, InferencePrecision precision, int tokens) =>
        Reduced(model, precision, () => BlocksMs(model, tokens));

    /// <summary><paramref name="time"/> with bf16 or int8 copies of the weights, made before and dropped after it.</summary>
    private static double Reduced(LanguageModel model, InferencePrecision precision, Func<double> time)
    {
        model.UseInferencePrecision(precision);
        try
        {
            return time();
        }
        finally
        {
            model.UseInferencePrecision(InferencePrecision.Float32);
            GC.Collect();                                                           // ≈ 1.7 GB of int8, 3.3 GB of bf16 tables at d=1024
        }
    }

    private static double Time(Func<Tensor> body)
    {
        using var noGrad = no_grad();
        var times = new double[20];
        for (int i = 0; i < times.Length; i++)
        {
            using var scope = NewDisposeScope();
            long start = Stopwatch.GetTimestamp();
            body();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        Array.Sort(times);
        return times[times.Length / 2];
    }

    private static double BlocksMs(LanguageModel model, int tokens)
    {
        using var noGrad = no_grad();
        model.UseFusedDecode = true;
        var caches = model.Backbone.NewCaches(1, CPU);
        model.Forward(tensor(Enumerable.Range(0, 16).Select(i => (long)((i * 7919) % 50304)).ToArray(), [1, 16]),
            new Layers.AttentionContext(true, Caches: caches)).Dispose();
        var fused = FusedDecodeStep.TryCreate(model, caches) ?? throw new InvalidOperationException("no fused step");
        var times = new double[tokens];
        for (int i = 0; i < tokens; i++)
        {
            long start = Stopwatch.GetTimestamp();
            fused.Hidden((i * 31) % 50304);
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        foreach (var c in caches) c.Dispose();
        return times.Order().ElementAt(tokens / 2);
    }

    private static double StepMs(LanguageModel model, bool fused, int tokens)
    {
        model.UseFusedDecode = fused;
        return DecodeCommand.MedianStepMs(model, tokens);
    }
}
