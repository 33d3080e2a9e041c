using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// Gradients computed through the fused CPU kernels (fp32 sign hash and gather with their custom backwards) against
/// central finite differences of a float64 twin of the same module (same weights, libtorch path), for the Memory Block
/// and a whole small language model.
/// </summary>
public class FusedGradientCheckTests
{
    private const double Step = 1e-6;

    /// <summary>
    /// For each (analytic fp32 gradient, float64 twin parameter): the largest-gradient element and a few random ones,
    /// each against (L(θ + h) − L(θ − h)) / 2h of the twin's loss.
    /// </summary>
    private static void CheckAgainstFiniteDifferences(IEnumerable<(string Name, Tensor Analytic, Tensor Twin)> items, Func<double> twinLoss, int perTensor)
    {
        var random = new Random(1);
        int checkedNonZero = 0;
        using var noGrad = no_grad();
        foreach (var (name, analytic, twin) in items)
        {
            var a = analytic.to(ScalarType.Float64).reshape(-1);
            var flat = twin.view(-1);
            var picks = new SortedSet<long> { a.abs().argmax().item<long>() };
            while (picks.Count < Math.Min(perTensor, flat.numel()))
                picks.Add(random.NextInt64(flat.numel()));
            foreach (long i in picks)
            {
                double original = flat[i].item<double>();
                flat[i] = tensor(original + Step);
                double plus = twinLoss();
                flat[i] = tensor(original - Step);
                double minus = twinLoss();
                flat[i] = tensor(original);
                double numeric = (plus - minus) / (2 * Step), fused = a[i].item<double>();
                Assert.True(Math.Abs(numeric - fused) <= 1e-5 + (1e-3 * Math.Abs(numeric)),
                    $"{name}[{i}]: fused gradient {fused}, float64 finite difference {numeric}");
                if (Math.Abs(numeric) > 1e-4) checkedNonZero++;
            }
        }
        Assert.True(checkedNonZero > 0, "every checked gradient was zero");
    }

    [Theory]
    [InlineData(HashWeightFunction.L1ScaledSigmoidProduct)]
    [InlineData(HashWeightFunction.SigmoidProduct)]
    public void The_Memory_Block_matches_float64_finite_differences(HashWeightFunction function)
    {
        var config = MemoryFormerConfig.Nano with { WeightFunction = function, Temperature = 0.8 };   // d 16, τ 4, K 4, hidden 24 of τ+2 = 6 bits
        random.manual_seed(3);
        using var block = new MemoryBlock(config);
        random.manual_seed(3);
        using var twin = new MemoryBlock(config);
        twin.to(ScalarType.Float64);
        // inputs away from 0, so that no step flips a sign bit of the first hash
        var x = (randn(12, 16).sign() * (rand(12, 16) + 0.3)).requires_grad_(true);
        var probe = randn(12, 16);
        Assert.True(TorchRuntime.UseFusedKernels && FusedSignHash.IsSupported(x, config.BitsPerChunk) && FusedMemoryGather.IsSupported(block.Expand.Table));

        (block.call(x) * probe).sum().backward();

        var x64 = x.detach().to(ScalarType.Float64);
        var probe64 = probe.to(ScalarType.Float64);
        double TwinLoss() => (twin.call(x64) * probe64).sum().item<double>();
        var items = new List<(string, Tensor, Tensor)> { ("x", x.grad!, x64) };
        items.AddRange(block.named_parameters().Zip(twin.named_parameters(), (a, b) => (a.name, a.parameter.grad!, (Tensor)b.parameter)));
        Assert.Equal(7, items.Count);                                     // x, 2 × (table, bias), LayerNorm weight and bias
        CheckAgainstFiniteDifferences(items, TwinLoss, perTensor: 4);
    }

    [Fact]
    public void A_whole_nano_language_model_matches_float64_finite_differences()
    {
        var config = MemoryFormerConfig.Nano;
        random.manual_seed(4);
        using var model = new LanguageModel(config);
        random.manual_seed(4);
        using var twin = new LanguageModel(config);
        twin.to(ScalarType.Float64);
        var gen = new Generator(5);
        var tokens = randint(0, config.VocabularySize, [2, 9], dtype: ScalarType.Int64, generator: gen);
        var (input, target) = (tokens[.., ..8], tokens[.., 1..].reshape(-1));
        Tensor Loss(LanguageModel m) => F.cross_entropy(m.call(input).reshape(-1, config.VocabularySize), target);

        Loss(model).backward();                                           // fp32, fused hash and gather

        var items = model.named_parameters().Zip(twin.named_parameters(), (a, b) => (a.name, a.parameter.grad!, (Tensor)b.parameter)).ToList();
        Assert.All(items, i => Assert.NotNull(i.Item2));
        CheckAgainstFiniteDifferences(items, () => Loss(twin).item<double>(), perTensor: 2);
    }
}
