using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Training;
using Microsoft.ML.MemoryFormer.Tests.Training;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// libtorch's causal attention inside the custom node that runs its backward with MKL serial (<see cref="SerialAttention"/>,
/// <see cref="KernelSettings.SerialAttentionBackward"/>): the output and every gradient byte-equal to plain SDPA's, for operands
/// laid out as the model gives them, and whole training steps of both models byte-equal with the switch on and off.
/// </summary>
public class SerialAttentionTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_output_and_gradients_are_sdpas_bytes(bool strided)
    {
        if (!OperatingSystem.IsLinux())
            return;
        random.manual_seed(11);
        long b = 3, h = 4, t = 130, hd = 64;                                        // T over SDPA's 32-query and 512-key blocks' edges
        using var qs = randn(b, h, t, hd);
        using var ks = randn(b, h, t, hd);
        using var vs = strided ? randn(b, t, h, hd).transpose(1, 2) : randn(b, h, t, hd);   // v split into heads, as the model does
        using var g = randn(b, t, h, hd).transpose(1, 2);                           // ∂L/∂y as the heads' merge hands it back
        var (yRef, gradsRef) = Run(qs, ks, vs, g, (q, k, v) => F.scaled_dot_product_attention(q, k, v, null, 0.0, true));
        long calls = SerialAttention.Calls;
        var (y, grads) = Run(qs, ks, vs, g, SerialAttention.Apply);
        Assert.Equal(calls + 1, SerialAttention.Calls);
        Assert.True(y.AsSpan().SequenceEqual(yRef), "outputs differ");
        for (int i = 0; i < 3; i++)
            Assert.True(grads[i].AsSpan().SequenceEqual(gradsRef[i]), $"gradient {i} differs");
        Assert.Contains(gradsRef[0], x => x != 0);
    }

    [Fact]
    public void A_graph_kept_for_a_second_backward_gives_sdpas_bytes_twice()
    {
        random.manual_seed(12);
        using var qs = randn(2, 2, 40, 64);
        using var ks = randn(2, 2, 40, 64);
        using var vs = randn(2, 40, 2, 64).transpose(1, 2);
        using var g = randn(2, 2, 40, 64);
        var twice = (Func<Tensor, Tensor, Tensor, Tensor> attend) => (Func<Tensor, Tensor, Tensor, Tensor>)((q, k, v) =>
        {
            var y = attend(q, k, v);
            y.backward([g], retain_graph: true);                                    // the second backward below adds to the grads
            return y;
        });
        var (_, gradsRef) = Run(qs, ks, vs, g, twice((q, k, v) => F.scaled_dot_product_attention(q, k, v, null, 0.0, true)));
        var (_, grads) = Run(qs, ks, vs, g, twice(SerialAttention.Apply));
        for (int i = 0; i < 3; i++)
            Assert.True(grads[i].AsSpan().SequenceEqual(gradsRef[i]), $"gradient {i} differs");
    }

    [Theory]
    [InlineData(TransformerKind.MemoryFormer)]
    [InlineData(TransformerKind.Dense)]
    public void Training_steps_give_the_same_bytes_with_the_attention_backward_serial_or_not(TransformerKind kind)
    {
        if (!OperatingSystem.IsLinux())
            return;
        Assert.True(OpenMPTeam.CanSetMklThreads);
        int before = OpenMPTeam.SerialGemms(3);                                     // this thread's MKL setting, 3 meanwhile
        var plain = Train(kind, k => k.SerialAttentionBackward = false);
        long calls = SerialAttention.Calls;
        var serial = Train(kind, k => k.SerialAttentionBackward = true);
        Assert.True(SerialAttention.Calls > calls, "the node was not taken");
        int after = OpenMPTeam.SerialGemms(before);
        Assert.Equal(plain.Losses, serial.Losses);
        for (int i = 0; i < plain.Parameters.Length; i++)
            Assert.True(plain.Parameters[i].AsSpan().SequenceEqual(serial.Parameters[i]), $"parameter {i} differs");
        Assert.Equal(3, after);                                                     // the caller's own MKL setting restored
    }

    /// <summary>y and ∂L/∂q, ∂L/∂k, ∂L/∂v of <paramref name="attend"/> on leaf copies of the operands (their layouts kept).</summary>
    private static (float[] Y, float[][] Grads) Run(Tensor qs, Tensor ks, Tensor vs, Tensor g, Func<Tensor, Tensor, Tensor, Tensor> attend)
    {
        using var scope = NewDisposeScope();
        Tensor[] leaves = [Leaf(qs), Leaf(ks), Leaf(vs)];
        var y = attend(leaves[0], leaves[1], leaves[2]);                            // [B, H, T, hd]
        y.backward([g]);
        return (y.contiguous().data<float>().ToArray(), leaves.Select(l => l.grad!.contiguous().data<float>().ToArray()).ToArray());
    }

    private static Tensor Leaf(Tensor x)
    {
        var leaf = x.transpose(1, 2).contiguous().transpose(1, 2);                   // token-major storage, as the model's v
        if (x.is_contiguous()) leaf = x.clone();
        return leaf.detach().requires_grad_(true);
    }

    /// <summary>Three steps of a small model with two threads; every parameter's bytes and the losses.</summary>
    private static (byte[][] Parameters, IReadOnlyList<double> Losses) Train(TransformerKind kind, Action<KernelSettings> change)
        => SeededTraining.Run(change, MemoryFormerConfig.Nano with { Kind = kind, Width = 256, Heads = 2, BitsPerChunk = 4, Layers = 2, ContextLength = 32 },
            seed: 5, windowSeed: 6, batchSize: 16, new TrainingOptions { MaxSteps = 3, WarmupSteps = 1, ReportEvery = 1 });
}
