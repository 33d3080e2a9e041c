using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Training;

public class FusedAdamWTests
{
    private static Parameter RandomTable(long rows, long width, Generator gen)
    {
        return new Parameter(randn([rows, width], generator: gen) * 0.02f);
    }

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        double maxRel = ((expected - actual).abs() / (expected.abs() + 1e-12)).max().to(ScalarType.Float64).item<double>();
        Assert.True(allclose(actual, expected, rtol: 1e-6, atol: 1e-9), $"{what}: max relative diff {maxRel}");
    }

    [Fact]
    public void Lazy_steps_over_the_backward_touched_rows_equal_lazy_steps_over_the_whole_table()
    {
        random.manual_seed(11);
        using var a = new MemoryLayer(4, 6, 16, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.1, 0.01);
        using var b = new MemoryLayer(4, 6, 16, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.1, 0.01);
        using (no_grad()) b.Table.copy_(a.Table);
        a.Gradient.Attached = true;                                      // as ModelOptimizer does for a training run
        using var rowsOnly = new FusedAdamW([a.Table], weightDecay: 0.1, skipUntouchedRows: true) { RowSources = [a.Gradient] };
        using var wholeTable = new FusedAdamW([b.Table], weightDecay: 0.1, skipUntouchedRows: true);
        foreach (int tokens in new[] { 2, 3, 40, 1 })                  // sparse backwards, a dense one, then sparse again
        {
            var x = randn(tokens, 24);
            foreach (var (layer, optimizer) in new[] { (a, rowsOnly), (b, wholeTable) })
            {
                optimizer.ZeroGrad();
                (layer.call(x) * x.narrow(1, 0, 16)).sum().backward();
                if (layer == a)
                    Assert.Equal(tokens < 40, a.Gradient.NonZeroRowsOf(a.Table) is not null);   // the row-only step runs
                optimizer.Step(1e-2, gradScale: 0.7);
            }
            Assert.True(a.Table.eq(b.Table).all().item<bool>(), $"tables differ after a {tokens}-token step");
            Assert.True(rowsOnly.ExpAvgSq(0).eq(wholeTable.ExpAvgSq(0)).all().item<bool>());
        }
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.1)]
    public void Dense_mode_matches_torch_AdamW_over_three_steps(double weightDecay)
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(42);
        var fused = new[] { RandomTable(37, 29, gen), RandomTable(5, 64, gen) };   // widths: a scalar tail, and whole vectors
        var reference = fused.Select(p => new Parameter(p.detach().clone())).ToArray();
        using var ours = new FusedAdamW(fused, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: weightDecay);
        using var theirs = optim.AdamW(reference, lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: weightDecay);

        double[] lrs = [3e-3, 2e-3, 1e-3];
        foreach (double lr in lrs)
        {
            for (int i = 0; i < fused.Length; i++)
            {
                var g = randn(fused[i].shape, generator: gen);
                fused[i].grad = g.clone();
                reference[i].grad = g.clone();
            }
            foreach (var group in theirs.ParamGroups)
                group.LearningRate = lr;
            ours.Step(lr);
            theirs.step();
        }

        for (int i = 0; i < fused.Length; i++)
            AssertClose(reference[i], fused[i], $"parameter {i}");
        Assert.Equal(3, ours.StepCount(0));
    }

    [Fact]
    public void Lazy_mode_leaves_untouched_rows_bit_identical_and_updates_touched_rows_like_dense()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(7);
        var lazyTable = RandomTable(12, 20, gen);
        var denseTable = new Parameter(lazyTable.detach().clone());
        using var lazy = new FusedAdamW([lazyTable], weightDecay: 0.1, skipUntouchedRows: true);
        using var dense = new FusedAdamW([denseTable], weightDecay: 0.1);
        var before = lazyTable.detach().clone();

        var grad = randn([12, 20], generator: gen);
        long[] untouched = [0, 3, 4, 11];
        foreach (long r in untouched)
            grad[r] = zeros(20);
        lazyTable.grad = grad.clone();
        denseTable.grad = grad.clone();
        lazy.Step(1e-2);
        dense.Step(1e-2);

        var untouchedIdx = tensor(untouched);
        var touchedIdx = tensor(Enumerable.Range(0, 12).Select(i => (long)i).Except(untouched).ToArray());
        Assert.True((lazyTable.index_select(0, untouchedIdx) == before.index_select(0, untouchedIdx)).all().item<bool>());
        Assert.Equal(0f, lazy.ExpAvg(0).index_select(0, untouchedIdx).abs().sum().item<float>());
        Assert.True((lazyTable.index_select(0, touchedIdx) == denseTable.index_select(0, touchedIdx)).all().item<bool>());
        // Dense AdamW decays and moves untouched rows (weight decay only on the first step).
        Assert.False((denseTable.index_select(0, untouchedIdx) == before.index_select(0, untouchedIdx)).all().item<bool>());
    }

    [Fact]
    public void Parameters_without_a_gradient_are_skipped_and_ZeroGrad_clears()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(3);
        var a = RandomTable(4, 8, gen);
        var b = RandomTable(4, 8, gen);
        var bBefore = b.detach().clone();
        using var opt = new FusedAdamW([a, b]);
        a.grad = ones(4, 8);
        opt.Step(1e-3);
        Assert.True((b == bBefore).all().item<bool>());
        Assert.Equal(0, opt.StepCount(1));
        opt.ZeroGrad();
        Assert.Null(a.grad);
    }

    [Fact]
    public void A_gradient_scale_equals_scaling_the_gradient_first()
    {
        var gen = new Generator(7);
        var scaled = RandomTable(9, 37, gen);
        var prescaled = new Parameter(scaled.detach().clone());
        using var a = new FusedAdamW([scaled], beta2: 0.95, weightDecay: 0.1);
        using var b = new FusedAdamW([prescaled], beta2: 0.95, weightDecay: 0.1);
        for (int step = 0; step < 3; step++)
        {
            var g = randn(scaled.shape, generator: gen);
            scaled.grad = g.clone();
            prescaled.grad = g.mul(0.37f);
            a.Step(1e-3, gradScale: 0.37);
            b.Step(1e-3);
        }
        AssertClose(prescaled, scaled, "parameters");
        AssertClose(b.ExpAvgSq(0), a.ExpAvgSq(0), "second moments");
    }
}
