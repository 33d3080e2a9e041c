using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// The tiled forward's variants behind switches (<see cref="KernelSettings.TiledPairs"/>, <see cref="KernelSettings.TiledDirectStage"/>,
/// <see cref="KernelSettings.TiledPrefetchNextGroup"/>, <see cref="KernelSettings.TiledGroupBytes"/>): each gives the same bytes as the
/// default tiled forward, outputs and every gradient, on full, odd and partial tiles and with one or several chunk groups.
/// </summary>
public class TiledVariantsTests
{
    /// <summary>The switch settings compared with the default, by name.</summary>
    public static TheoryData<string> Variants => new() { "pairs", "direct", "direct pairs", "prefetch next", "direct prefetch next",
        "direct pairs prefetch next", "pairs prefetch next", "small groups", "small groups direct pairs prefetch next" };

    private static void Apply(string variant, KernelSettings s)
    {
        s.TiledPairs = variant.Contains("pairs", StringComparison.Ordinal);
        s.TiledDirectStage = variant.Contains("direct", StringComparison.Ordinal);
        s.TiledPrefetchNextGroup = variant.Contains("prefetch next", StringComparison.Ordinal);
        if (variant.Contains("small groups", StringComparison.Ordinal))
            s.TiledGroupBytes = 2 << 10;                                       // 1–2 chunks of 16 rows a group: several groups
    }

    [SkippableTheory]
    [MemberData(nameof(Variants))]
    public void Each_variant_gives_the_default_bytes_forward_and_backward(string variant)
    {
        Skip.IfNot(TiledGather.IsAccelerated, "The tiled kernel needs AVX-512.");
        using var scope = NewDisposeScope();
        const int n = 203, k = 5, bits = 4;                                     // 80 rows a table: 12.7 hits a row; n not a multiple of 8
        int[] widths = [96, 48, 67];                                            // 3 pairs; 1 pair and an odd tile; 2 pairs and a 3-column tile
        var gen = new Generator(17);
        var rows = randint(0, 1 << bits, [n, k], dtype: ScalarType.Int64, generator: gen) + (arange(k, dtype: ScalarType.Int64) * (1 << bits)).unsqueeze(0);
        var weights = rand([n, k], generator: gen);
        var tables = widths.Select(h => randn([k << bits, h], generator: gen) * 0.02f).ToArray();
        var biases = widths.Select(h => randn([h], generator: gen)).ToArray();
        var upstream = widths.Select(h => randn([n, h], generator: gen)).ToArray();

        var expected = Run(rows, weights, tables, biases, upstream, _ => { });
        var actual = Run(rows, weights, tables, biases, upstream, s => Apply(variant, s));
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(expected[i].bytes.ToArray().AsSpan().SequenceEqual(actual[i].bytes.ToArray()),
                $"tensor {i} differs: max |diff| = {(expected[i] - actual[i]).abs().max().item<float>()}");
    }

    [SkippableFact]
    public void The_variants_take_the_tiled_path_and_leave_the_default_plan_unchanged()
    {
        Skip.IfNot(TiledGather.IsAccelerated, "The tiled kernel needs AVX-512.");
        var settings = new KernelSettings();
        Assert.Equal(TiledGather.Plan.Default, FusedMemoryGather.TiledPlan(settings));            // all off by default
        Apply("direct pairs prefetch next", settings);
        var plan = FusedMemoryGather.TiledPlan(settings);
        Assert.True(plan is { TileMajor: false, Pairs: true, PrefetchNext: true, CopyAhead: TiledGather.DirectCopyAhead });
    }

    /// <summary>The outputs, the weight gradient, the tables' and biases' gradients of one fused call, tiled, under <paramref name="change"/>.</summary>
    private static Tensor[] Run(Tensor rows, Tensor weights, Tensor[] tables, Tensor[] biases, Tensor[] upstream, Action<KernelSettings> change)
    {
        Tensor[] result = [];
        KernelSettings.Current.With(s =>
        {
            s.TiledForwardMinTableBytes = 0;                                    // the tiny tables take the tiled path
            change(s);
        }, () =>
        {
            Assert.True(FusedMemoryGather.TakesTiledForward((int)rows.shape[0], (int)rows.shape[1], tables[0].shape[0],
                tables.Select(t => (int)t.shape[1]).ToArray(), tables.Select(t => t.numel() * 4).ToArray(), KernelSettings.Current));
            var w = weights.detach().clone().requires_grad_(true);
            var t = tables.Select(x => x.detach().clone().requires_grad_(true)).ToArray();
            var b = biases.Select(x => x.detach().clone().requires_grad_(true)).ToArray();
            var y = FusedMemoryGather.ApplyMany(rows, w, t, biases: b);
            autograd.backward(y, upstream);
            result = [.. y.Select(o => o.detach()), w.grad!, .. t.Select(x => x.grad!), .. b.Select(x => x.grad!)];
        });
        return result;
    }
}
