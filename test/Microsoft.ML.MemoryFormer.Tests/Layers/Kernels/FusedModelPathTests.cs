using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The whole model on the fused kernels against the plain libtorch path (EmbeddingBag + torch AdamW).</summary>
public class FusedModelPathTests
{
    private static T WithKernels<T>(bool fused, Func<T> body)
    {
        bool previous = TorchRuntime.UseFusedKernels;
        TorchRuntime.UseFusedKernels = fused;
        try
        {
            T result = default!;
            // The fp32 row pass: the bf16 one (opt-in) differs by ∂L/∂y's rounding (Bf16GradientRowsTests).
            KernelSettings.Current.With(k => k.Bf16GradientRows = false, () => result = body());
            return result;
        }
        finally { TorchRuntime.UseFusedKernels = previous; }
    }

    [Fact]
    public void Logits_and_gradients_match_the_reference_path()
    {
        random.manual_seed(2);
        using var model = new LanguageModel(MemoryFormerConfig.Nano with { Width = 32, BitsPerChunk = 8 });
        var tokens = randint(0, 64, [3, 13]);
        (Tensor Logits, Tensor[] Grads) Run() 
        {
            model.zero_grad();
            var logits = model.call(tokens);
            (logits * logits).mean().backward();
            return (logits.detach().clone(), model.parameters().Select(p => p.grad!.clone()).ToArray());
        }
        var fused = WithKernels(true, Run);
        var reference = WithKernels(false, Run);
        Assert.True(allclose(fused.Logits, reference.Logits, 1e-4, 1e-5));
        for (int i = 0; i < fused.Grads.Length; i++)
            Assert.True(allclose(fused.Grads[i], reference.Grads[i], 1e-3, 1e-6), $"gradient {i} differs");
    }

    [Theory]
    [InlineData(MomentPrecision.Float32, 3)]
    [InlineData(MomentPrecision.BFloat16, 2)]   // the reference path rounds bf16 moments to nearest, the kernels stochastically
    public void Training_losses_match_the_reference_path(MomentPrecision moments, int decimals)
    {
        IReadOnlyList<double> Train()
        {
            random.manual_seed(6);
            using var model = new LanguageModel(MemoryFormerConfig.Nano);
            var windows = randint(0, 64, [8, 17]);
            var task = new LanguageModelTask(model, windows, null, batchSize: 4, seed: 6, CPU);
            return TrainingLoop.Run(model, task, new TrainingOptions { MaxSteps = 8, WarmupSteps = 2, TableMomentPrecision = moments }).LossHistory;
        }
        var fused = WithKernels(true, Train);
        var reference = WithKernels(false, Train);
        for (int i = 0; i < fused.Count; i++) Assert.Equal(reference[i], fused[i], decimals);
    }
}
