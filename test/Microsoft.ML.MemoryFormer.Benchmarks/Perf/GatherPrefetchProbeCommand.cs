using System.ComponentModel;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf probe-gather-prefetch</c> (issue 16): the training forward's token-major gather alone (<see cref="RowKernels"/>, as
/// <see cref="FusedMemoryGather"/> runs it over a thread's tokens, bias on) without and with the whole rows prefetched a few hits
/// ahead, into L2 or L1, interleaved. Default shape: ML₂ of <c>perf train --width 512</c> (a [65536, 512] table of 128 MB, K = 64,
/// τ = 10, N = 2048: 2 hits a row), and the mixed-precision forward's bf16 kernel (<see cref="EncoderKernels.BagSumBf16"/>) without and
/// with the same prefetch. Wall and CPU time both (CPU time is the steadier on a shared machine); every variant's output is
/// checked byte for byte against the plain kernel's.
/// </summary>
internal sealed unsafe class GatherPrefetchProbeCommand : Command<GatherPrefetchProbeCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--width")]
        [Description("h, the table's width. Default 512.")]
        [DefaultValue(512)]
        public int Width { get; init; } = 512;

        [CommandOption("--chunks")]
        [Description("K. Default 64.")]
        [DefaultValue(64)]
        public int Chunks { get; init; } = 64;

        [CommandOption("--tau")]
        [Description("τ: 2^τ rows a chunk. Default 10 (ML₂).")]
        [DefaultValue(10)]
        public int Tau { get; init; } = 10;

        [CommandOption("--tokens")]
        [Description("N. Default 2048 (perf train's step).")]
        [DefaultValue(2048)]
        public int Tokens { get; init; } = 2048;

        [CommandOption("--rounds")]
        [Description("Interleaved rounds (median). Default 9; --quick uses 3.")]
        [DefaultValue(9)]
        public int Rounds { get; init; } = 9;

        [CommandOption("--variants")]
        [Description("Comma-separated indices of the variants to time (0 = no prefetch, the ratios' baseline). Default all.")]
        public string? Variants { get; init; }
    }

    private sealed record Variant(string Name, Action Body);

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        string machine = MachineFigures.Measure(settings);
        int h = settings.Width, k = settings.Chunks, bucketRows = 1 << settings.Tau, rowCount = k * bucketRows, n = settings.Tokens;
        int rounds = settings.Quick ? 3 : settings.Rounds;
        random.manual_seed(11);
        using var table = randn(rowCount, h).mul_(0.02);
        using var bias = randn(h);
        using var weights = rand(n, k);
        using var reference = empty(n, h);
        using var output = empty(n, h);
        var rows = new int[n * k];
        var generator = new Random(11);
        for (int i = 0; i < rows.Length; i++)
            rows[i] = ((i % k) * bucketRows) + generator.Next(bucketRows);
        nint tablePtr = (nint)TensorMemory.Floats(table), biasPtr = (nint)TensorMemory.Floats(bias), wPtr = (nint)TensorMemory.Floats(weights);
        nint refPtr = (nint)TensorMemory.Floats(reference), outPtr = (nint)TensorMemory.Floats(output);

        // As FusedMemoryGather's token-major forward: a thread's range of tokens, the next token's rows visible to the prefetch.
        void Gather(nint dst, int ahead, bool l1 = false)
        {
            RowKernels.PrefetchIntoL1 = l1;                              // set around the fork, not inside it: the workers share it
            KernelParallel.For(n, (long)k * h, (start, end) => GatherRange(dst, ahead, start, end));
            RowKernels.PrefetchIntoL1 = false;
        }
        void GatherRange(nint dst, int ahead, int start, int end)
        {
            fixed (int* r = rows)
            {
                for (int i = start; i < end; i++)
                {
                    if (ahead == 0)
                        RowKernels.WeightedBagSum((float*)tablePtr, h, r + ((long)i * k), (float*)wPtr + ((long)i * k), k, (float*)dst + ((long)i * h),
                            (float*)biasPtr);
                    else
                        RowKernels.WeightedBagSumPrefetched((float*)tablePtr, h, r + ((long)i * k), (float*)wPtr + ((long)i * k), k,
                            (float*)dst + ((long)i * h), (float*)biasPtr, ahead, i + 1 < end ? 2 * k : k);
                }
            }
        }
        // The mixed-precision forward's kernel (KernelSettings.Bf16ForwardTables, bias folded) over a bf16 copy of the table.
        var table16 = new ushort[(long)rowCount * h];
        fixed (ushort* d16 = table16)
            for (long e = 0; e < table16.LongLength; e++)
                d16[e] = (ushort)(BitConverter.SingleToUInt32Bits(((float*)tablePtr)[e]) >> 16);
        var bf16Reference = new float[n * h];
        void GatherBf16(float[] dst, int ahead) => KernelParallel.For(n, (long)k * h, (start, end) =>
        {
            fixed (int* r = rows)
            fixed (ushort* t16 = table16)
            fixed (float* d = dst)
                for (int i = start; i < end; i++)
                    EncoderKernels.BagSumBf16(t16, h, r + ((long)i * k), (float*)wPtr + ((long)i * k), k, d + ((long)i * h), (float*)biasPtr,
                        ahead, i + 1 < end ? 2 * k : k);
        });
        GatherBf16(bf16Reference, 0);
        var bf16Output = new float[n * h];
        var variants = new List<Variant>
        {
            new("no prefetch (before)", () => Gather(outPtr, 0)),
            new($"whole rows {RowKernels.GatherPrefetchAhead} ahead into L2 (the library's)", () => Gather(outPtr, RowKernels.GatherPrefetchAhead)),
            new("whole rows 4 ahead into L2", () => Gather(outPtr, 4)),
            new("whole rows 16 ahead into L2", () => Gather(outPtr, 16)),
            new("whole rows 4 ahead into L1", () => Gather(outPtr, 4, l1: true)),
            new("whole rows 8 ahead into L1", () => Gather(outPtr, 8, l1: true)),
            new("bf16 table (mixed precision), no prefetch", () => GatherBf16(bf16Output, 0)),
            new($"bf16 table, whole rows {RowKernels.GatherPrefetchAhead} ahead into L2 (the library's)", () => GatherBf16(bf16Output, RowKernels.GatherPrefetchAhead)),
            new("whole rows 12 ahead into L2", () => Gather(outPtr, 12)),
            new("whole rows 24 ahead into L2", () => Gather(outPtr, 24)),
            new("whole rows 32 ahead into L2", () => Gather(outPtr, 32)),
        };
        Gather(refPtr, 0);
        string check = Check(variants.Where(v => !v.Name.StartsWith("bf16", StringComparison.Ordinal)).ToList(), reference, output);
        GatherBf16(bf16Output, RowKernels.GatherPrefetchAhead);
        check += bf16Output.AsSpan().SequenceEqual(bf16Reference) ? "; the bf16 kernel's output is the same bytes with and without its prefetch"
            : "; DIFFERS: the bf16 kernel with its prefetch";
        if (settings.Variants is { } only)
            variants = only.Split(',').Select(int.Parse).Select(i => variants[i]).ToList();
        var (times, cpu) = TimeWithCpu(variants, rounds);
        var result = new PerfTable($"probe-gather-prefetch-h{h}-t{settings.Tau}", $"Token-major forward gather alone, h={h}, K={k}, τ={settings.Tau}, " +
            $"R={rowCount} ({(long)rowCount * h * 4 >> 20} MB), N={n} ({(double)n * k / rowCount:F1} hits a row): ms, median of {rounds} interleaved rounds",
            "variant", "ms", "first ÷ this (> 1: this faster)", "CPU ms (both threads)", "first ÷ this, CPU time");
        for (int v = 0; v < variants.Count; v++)
            result.AddRow(variants[v].Name, Timing.Median(times[v]), Timing.Median(times[0].Zip(times[v], (a, b) => a / b)),
                Timing.Median(cpu[v]), Timing.Median(cpu[0].Zip(cpu[v], (a, b) => a / b)));
        result.AddNote("CPU ms = the process's processor time during the call (both threads; it leaves out time spent waiting for a core on a loaded machine)");
        result.AddNote("rows: a uniform random bucket per chunk; bias on; the int64 → int32 row copy excluded");
        result.AddNote(check);
        result.AddNote(machine);
        result.Publish(settings.Output);
        return 0;
    }

    /// <summary>Each variant's output against the plain kernel's, byte for byte.</summary>
    private static string Check(List<Variant> variants, Tensor reference, Tensor output)
    {
        var differing = new List<string>();
        foreach (var v in variants.Skip(1))
        {
            output.fill_(float.NaN);
            v.Body();
            if (!output.bytes.ToArray().AsSpan().SequenceEqual(reference.bytes.ToArray()))
                differing.Add(v.Name);
        }
        return differing.Count == 0 ? "every variant's output equals the plain kernel's byte for byte" : "DIFFERS: " + string.Join("; ", differing);
    }

    /// <summary>Wall and CPU milliseconds per variant and round, the variants' order rotated each round.</summary>
    private static (double[][] Wall, double[][] Cpu) TimeWithCpu(IReadOnlyList<Variant> variants, int rounds)
    {
        var cpu = variants.Select(_ => new List<double>()).ToArray();
        var process = System.Diagnostics.Process.GetCurrentProcess();
        var timed = variants.Select((v, i) => (Action)(() =>
        {
            process.Refresh();
            var before = process.TotalProcessorTime;
            v.Body();
            process.Refresh();
            cpu[i].Add((process.TotalProcessorTime - before).TotalMilliseconds);
        })).ToArray();
        var wall = Timing.InterleaveRounds(timed, rounds);
        return (wall, cpu.Select(c => c.Skip(1).ToArray()).ToArray());     // InterleaveRounds' warm-up round first
    }
}
