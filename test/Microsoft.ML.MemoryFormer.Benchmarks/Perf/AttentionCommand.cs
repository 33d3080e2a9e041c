using System.ComponentModel;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Spectre.Console.Cli;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf attention</c> (issue 16): causal attention at <c>perf train</c>'s two shapes, libtorch's
/// <c>scaled_dot_product_attention</c> against the blocked attention of <c>Layers/Kernels/BlockedCausalAttention.cs</c>
/// (several query blocks), forward alone and forward + backward, timed interleaved in one process. Inputs as the model
/// gives them: q and k contiguous [B, H, T, hd] (the fused rotary's output), v a transposed view of [B, T, H, hd].
/// </summary>
internal sealed class AttentionCommand : Command<AttentionCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--rounds")]
        [Description("Interleaved timing rounds after one warm-up round (median). Default 9; --quick: 3.")]
        public int? Rounds { get; init; }

        [CommandOption("--blocks")]
        [Description("Comma-separated query block sizes of the blocked attention. Default 64.")]
        [DefaultValue("64")]
        public string Blocks { get; init; } = "64";
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        string machine = MachineFigures.Measure(settings);
        int rounds = settings.Rounds ?? (settings.Quick ? 3 : 9);
        int[] blocks = settings.Blocks.Split(',').Select(int.Parse).ToArray();
        var table = new PerfTable("attention", $"Causal attention per layer call, SDPA vs fused vs blocked (ms, median of {rounds} interleaved rounds)",
            "shape", "variant", "fwd ms", "fwd+bwd ms", "fwd+bwd ÷ SDPA", "max |Δy| vs SDPA");
        foreach (var (name, b, h, t) in new[] { ("d=256 B16 H4 T128 hd64", 16L, 4L, 128L), ("d=512 B8 H8 T256 hd64", 8L, 8L, 256L) })
            Run(table, name, b, h, t, 64, blocks, rounds);
        table.AddNote("each call: forward (autograd on) or forward + backward with a fixed upstream gradient; q, k contiguous, v a transposed view, as in SelfAttention");
        table.AddNote(machine);
        table.Publish(settings.Output);
        return 0;
    }

    private static void Run(PerfTable table, string name, long b, long h, long t, long hd, int[] blocks, int rounds)
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        var q = randn(b, h, t, hd).requires_grad_(true);
        var k = randn(b, h, t, hd).requires_grad_(true);
        var v = randn(b, t, h, hd).requires_grad_(true);
        var g = randn(b, h, t, hd);
        var variants = new List<(string Name, Func<Tensor, Tensor, Tensor, Tensor> Attend)>
        {
            ("SDPA causal", (q, k, v) => F.scaled_dot_product_attention(q, k, v, null, 0.0, true)),
            ("fused managed kernel (AVX-512)", (q, k, v) => FusedCausalAttention.Apply(q, k, v)),
        };
        foreach (int block in blocks)
            variants.Add(($"blocked, {block}-row query blocks", (q, k, v) => BlockedCausalAttention.Apply(q, k, v, block)));
        var bodies = new List<Action>();
        foreach (var (_, attend) in variants)
        {
            bodies.Add(() => { using var s = NewDisposeScope(); attend(q, k, v.transpose(1, 2)); });
            bodies.Add(() =>
            {
                using var s = NewDisposeScope();
                attend(q, k, v.transpose(1, 2)).backward([g]);
                q.grad = null; k.grad = null; v.grad = null;
            });
        }
        var medians = Timing.Interleave(bodies, rounds);
        using var reference = F.scaled_dot_product_attention(q, k, v.transpose(1, 2), null, 0.0, true).detach();
        for (int i = 0; i < variants.Count; i++)
        {
            using var y = variants[i].Attend(q, k, v.transpose(1, 2)).detach();
            double diff = y.sub(reference).abs().max().item<float>();
            table.AddRow(name, variants[i].Name, medians[2 * i], medians[(2 * i) + 1], medians[(2 * i) + 1] / medians[1], diff.ToString("E1", System.Globalization.CultureInfo.InvariantCulture));
        }
    }
}
