using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf scoring-bf16-probe</c> (issue 16, scoring target): the window attention of the scoring encoder (windows of
/// 128 tokens, 4 heads of 32) as libtorch bmm / SDPA in fp32 and bf16 (oneDNN's vdpbf16ps where the CPU has
/// avx512_bf16) beside the managed fp32 kernel (<c>WindowAttention</c>), interleaved, GFLOP/s of 4·T²·hd per (window, head).
/// </summary>
internal sealed class ScoringBf16ProbeCommand : Command<ScoringBf16ProbeCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--reps")]
        [Description("Interleaved rounds (median and fastest reported). Default 20.")]
        [DefaultValue(20)]
        public int Reps { get; init; } = 20;
    }

    public override unsafe int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        string machine = MachineFigures.Measure(settings);
        const int windows = 32, heads = 4, t = 128, hd = 32, n = windows * t, d = heads * hd;
        double flops = 4.0 * t * t * hd * windows * heads;
        using var noGrad = no_grad();
        var q = randn(windows, heads, t, hd);
        var k = randn(windows, heads, t, hd);
        var v = randn(windows, heads, t, hd);
        var (qb, kb, vb) = (q.to(ScalarType.BFloat16), k.to(ScalarType.BFloat16), v.to(ScalarType.BFloat16));
        var (q3, k3, v3) = (q.reshape(-1, t, hd), k.reshape(-1, t, hd).transpose(1, 2).contiguous(), v.reshape(-1, t, hd));
        var (q3b, k3b, v3b) = (qb.reshape(-1, t, hd), kb.reshape(-1, t, hd).transpose(1, 2).contiguous(), vb.reshape(-1, t, hd));
        var kView = kb.reshape(-1, t, hd).transpose(1, 2);
        var tokenMajor = new float[4 * n * d];
        var starts = Enumerable.Range(0, windows + 1).Select(w => w * t).ToArray();
        var random = new Random(1);
        for (int i = 0; i < 3 * n * d; i++) tokenMajor[i] = (float)((random.NextDouble() * 2) - 1);
        var bodies = new (string Name, Action Body)[]
        {
            ("bmm QKᵀ + softmax + PV, fp32", () => { using var s = q3.bmm(k3).softmax(-1); using var y = s.bmm(v3); }),
            ("bmm QKᵀ + softmax + PV, bf16", () => { using var s = q3b.bmm(k3b).softmax(-1); using var y = s.bmm(v3b); }),
            ("bmm QKᵀ only, fp32", () => { using var s = q3.bmm(k3); }),
            ("bmm QKᵀ only, bf16", () => { using var s = q3b.bmm(k3b); }),
            ("bmm QKᵀ only, bf16, K as a transposed view", () => { using var s = q3b.bmm(kView); }),
            ("SDPA fp32", () => { using var y = nn.functional.scaled_dot_product_attention(q, k, v); }),
            ("SDPA bf16", () => { using var y = nn.functional.scaled_dot_product_attention(qb, kb, vb); }),
            ("managed WindowAttention fp32 (token-major)", () =>
            {
                fixed (float* p = tokenMajor)
                    Layers.Kernels.WindowAttention.Run(p, p + (n * d), p + (2 * n * d), p + (3 * n * d), heads, hd, starts);
            }),
            ("Bf16WindowAttention (token-major: packing + 2 bf16 bmm + fp32 softmax), all 32 windows in one batch", () =>
            {
                fixed (float* p = tokenMajor)
                    Bf16WindowAttention.Run(p, p + (n * d), p + (2 * n * d), p + (3 * n * d), heads, hd, starts);
            }),
        };
        var times = Timing.InterleaveRounds(bodies.Select(b => b.Body).ToArray(), settings.Reps);
        var table = new PerfTable("scoring-bf16-probe", FormattableString.Invariant($"Window attention, {windows} windows × {heads} heads × {t} tokens × hd {hd} ({flops / 1e9:F2} GFLOP of QKᵀ and PV), {settings.Reps} interleaved rounds"),
            "variant", "median ms", "fastest ms", "GFLOP/s (fastest)");
        for (int i = 0; i < bodies.Length; i++)
        {
            double median = Timing.Median(times[i]), min = times[i].Min();
            double f = bodies[i].Name.Contains("only", StringComparison.Ordinal) ? flops / 2 : flops;
            table.AddRow(bodies[i].Name, median, min, (f / (min * 1e6)).ToString("F1", CultureInfo.InvariantCulture));
        }
        table.AddNote(FormattableString.Invariant($"largest |Bf16WindowAttention − WindowAttention| over the outputs: {LargestDifference(tokenMajor, n * d, heads, hd, starts):g3} (inputs uniform in [−1, 1])"));
        table.AddNote(machine);
        table.Publish(settings.Output);
        return 0;
    }

    /// <summary>The bf16 probe's accuracy: both kernels on the same Q, K, V (the first three blocks of
    /// <paramref name="inputs"/>), the largest absolute difference of their outputs.</summary>
    private static unsafe double LargestDifference(float[] inputs, int block, int heads, int headWidth, int[] starts)
    {
        var (fp32, bf16) = ((float[])inputs.Clone(), (float[])inputs.Clone());
        fixed (float* a = fp32, b = bf16)
        {
            Layers.Kernels.WindowAttention.Run(a, a + block, a + (2 * block), a + (3 * block), heads, headWidth, starts);
            Bf16WindowAttention.Run(b, b + block, b + (2 * block), b + (3 * block), heads, headWidth, starts);
        }
        double worst = 0;
        for (int i = 3 * block; i < 4 * block; i++) worst = Math.Max(worst, Math.Abs(fp32[i] - bf16[i]));
        return worst;
    }
}
