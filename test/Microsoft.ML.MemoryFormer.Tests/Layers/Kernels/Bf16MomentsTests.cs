using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary><see cref="FusedAdamW"/> with bfloat16 moments (<see cref="MomentPrecision.BFloat16"/>).</summary>
public class Bf16MomentsTests
{
    private static Parameter[] Tables(Generator gen) =>
        [new Parameter(randn([37, 29], generator: gen) * 0.02f), new Parameter(randn([5, 64], generator: gen) * 0.02f)];   // a scalar tail, whole vectors

    private static double MaxAbs(Tensor t) => t.abs().max().to(ScalarType.Float64).item<double>();

    [Fact]
    public void Bf16_moments_track_fp32_AdamW_within_bf16_rounding()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(5);
        var fp32 = Tables(gen);
        var start = fp32.Select(p => p.detach().clone()).ToArray();
        var bf16 = fp32.Select(p => new Parameter(p.detach().clone())).ToArray();
        using var reference = new FusedAdamW(fp32, beta2: 0.95, weightDecay: 0.1);
        using var compact = new FusedAdamW(bf16, beta2: 0.95, weightDecay: 0.1, bf16Moments: true);
        for (int step = 0; step < 20; step++)
        {
            for (int i = 0; i < fp32.Length; i++)
            {
                var g = randn(fp32[i].shape, generator: gen);
                fp32[i].grad = g.clone();
                bf16[i].grad = g.clone();
            }
            reference.Step(1e-3);
            compact.Step(1e-3);
        }
        for (int i = 0; i < fp32.Length; i++)
        {
            Assert.Equal(ScalarType.BFloat16, compact.ExpAvg(i).dtype);
            Assert.Equal(ScalarType.BFloat16, compact.ExpAvgSq(i).dtype);
            double moved = MaxAbs(fp32[i] - start[i]), apart = MaxAbs(fp32[i] - bf16[i]);
            Assert.True(moved > 1e-3, $"parameter {i} barely moved ({moved})");
            Assert.True(apart < 0.02 * moved, $"parameter {i}: bf16-moment run is {apart} from fp32 after moving {moved}");
            double momentGap = MaxAbs(compact.ExpAvgSq(i).to(ScalarType.Float32) - reference.ExpAvgSq(i)) / MaxAbs(reference.ExpAvgSq(i));
            Assert.True(momentGap < 0.02, $"second moment {i} differs by {momentGap} of its scale");
        }
    }

    [Fact]
    public void Stochastic_rounding_lets_a_slow_second_moment_decay_as_in_fp32()
    {
        // With β₂ = 0.999 a zero-gradient step shrinks v by 0.1%, below half a bf16 ulp (0.2%): rounding to nearest would
        // leave v where it was forever. Stochastic rounding decays it on average like fp32.
        using var scope = NewDisposeScope();
        var fp32 = new Parameter(zeros(1, 4096));
        var bf16 = new Parameter(zeros(1, 4096));
        using var reference = new FusedAdamW([fp32], beta2: 0.999, weightDecay: 0.0);
        using var compact = new FusedAdamW([bf16], beta2: 0.999, weightDecay: 0.0, bf16Moments: true);
        for (int step = 0; step < 350; step++)
        {
            var g = step < 50 ? ones(1, 4096) : zeros(1, 4096);
            fp32.grad = g.clone();
            bf16.grad = g.clone();
            reference.Step(1e-4);
            compact.Step(1e-4);
        }
        double expected = reference.ExpAvgSq(0).mean().to(ScalarType.Float64).item<double>();
        double actual = compact.ExpAvgSq(0).to(ScalarType.Float32).mean().to(ScalarType.Float64).item<double>();
        double afterWarm = 1 - Math.Pow(0.999, 50);
        Assert.True(expected < 0.8 * afterWarm, "the test's fp32 moment should have decayed");
        Assert.True(Math.Abs(actual - expected) < 0.01 * expected, $"mean bf16 second moment {actual} vs fp32 {expected}");
    }

    [Fact]
    public void Results_do_not_depend_on_the_thread_count()
    {
        int threads = get_num_threads();
        try
        {
            var results = new[] { 1, 2 }.Select(n =>
            {
                set_num_threads(n);
                var gen = new Generator(9);
                var p = new Parameter(randn([4096, 64], generator: gen));
                using var optimizer = new FusedAdamW([p], beta2: 0.95, weightDecay: 0.1, bf16Moments: true);
                for (int step = 0; step < 3; step++)
                {
                    p.grad = randn(p.shape, generator: gen);
                    optimizer.Step(1e-3);
                }
                return (P: p.detach().clone(), M: optimizer.ExpAvg(0).clone(), V: optimizer.ExpAvgSq(0).clone());
            }).ToArray();
            Assert.True(results[0].P.eq(results[1].P).all().item<bool>(), "parameters differ between 1 and 2 threads");
            Assert.True(results[0].M.eq(results[1].M).all().item<bool>(), "first moments differ between 1 and 2 threads");
            Assert.True(results[0].V.eq(results[1].V).all().item<bool>(), "second moments differ between 1 and 2 threads");
        }
        finally
        {
            set_num_threads(threads);
        }
    }

    [Fact]
    public void Checkpoint_state_round_trips_the_bf16_moments()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(3);
        var tables = Tables(gen);
        using var saved = new FusedAdamW(tables, bf16Moments: true);
        foreach (var t in tables) t.grad = randn(t.shape, generator: gen);
        saved.Step(1e-3);
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
            saved.SaveState(writer);
        stream.Position = 0;
        using var restored = new FusedAdamW(tables, bf16Moments: true);
        using (var reader = new BinaryReader(stream))
            restored.LoadState(reader);
        for (int i = 0; i < tables.Length; i++)
        {
            Assert.True(restored.ExpAvg(i).eq(saved.ExpAvg(i)).all().item<bool>());
            Assert.True(restored.ExpAvgSq(i).eq(saved.ExpAvgSq(i)).all().item<bool>());
            Assert.Equal(1, restored.StepCount(i));
        }
    }

    [Fact]
    public void An_undefined_precision_is_refused_by_name()
    {
        var options = new TrainingOptions { TableMomentPrecision = (MomentPrecision)7 };
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => options.Validate());
        Assert.Contains(nameof(TrainingOptions.TableMomentPrecision), error.Message);
        Assert.Contains("BFloat16", error.Message);
    }
}
