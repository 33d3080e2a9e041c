using Microsoft.ML.MemoryFormer.Configuration;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>
/// Multi-head self-attention with rotary positions (paper §2.4, eq. 13). MemoryFormer gets Q/K/V from
/// Memory Layers and has no output projection (the official code's <c>del_dense</c>; docs/model-spec.md,
/// "Attention and rotary"); the dense baseline uses linear
/// Q/K/V and an output projection W_O. Everything else is shared, so the two differ only in the projections.
/// </summary>
internal sealed class SelfAttention : nn.Module
{
    private readonly nn.Module<Tensor, (Tensor Q, Tensor K, Tensor V)> qkv;
    private readonly RotaryEmbedding rotary;
    private readonly Linear? output;
    private readonly int heads;
    private readonly int headWidth;

    public SelfAttention(MemoryFormerConfig config) : base(nameof(SelfAttention))
    {
        heads = config.Heads;
        headWidth = config.HeadWidth;
        qkv = config.Kind == TransformerKind.MemoryFormer ? new MemoryQkv(config) : new DenseQkv(config);
        rotary = new RotaryEmbedding(config.RotaryDims, config.ContextLength, config.RotaryBase);
        if (config.Kind == TransformerKind.Dense)
        {
            output = nn.Linear(config.Width, config.Width);
            DenseInit.Normal(output, config.EmbeddingInitStd / Math.Sqrt(2.0 * config.Layers));
        }
        RegisterComponents();
    }

    /// <summary>The Q/K/V projections: <see cref="MemoryQkv"/> or <see cref="DenseQkv"/>.</summary>
    internal nn.Module<Tensor, (Tensor Q, Tensor K, Tensor V)> Qkv => qkv;

    /// <summary>The rotary embedding applied to Q and K.</summary>
    internal RotaryEmbedding Rotary => rotary;

    /// <summary>The dense baseline's output projection W_O; null for MemoryFormer (read by the fused decode step).</summary>
    internal Linear? Output => output;

    /// <summary>x [B, T, d] (normalised) → [B, T, d]; <paramref name="cache"/> is this layer's KV cache, if any.</summary>
    public Tensor Forward(Tensor x, AttentionContext context, AttentionCache? cache)
    {
        long b = x.shape[0], t = x.shape[1], past = cache?.Length ?? 0;
        var (q, k, v) = qkv.call(x.reshape(b * t, -1));                         // [B·T, d] each
        q = rotary.SplitAndApply(q.view(b, t, -1), heads, past);                // [B, H, T, hd]
        k = rotary.SplitAndApply(k.view(b, t, -1), heads, past);                // [B, H, T, hd]
        v = SplitHeads(v, b, t);                                                 // [B, H, T, hd]
        if (cache is not null) (k, v) = cache.Append(k, v);                     // [B, H, past+T, hd]
        var mask = context.BuildMask(t, past, x.device);                        // [B|1, 1, T, past+T] or null
        bool causalFlag = mask is null && context.Causal && t > 1;              // top-left flag is exact only here
        var y = UsesFusedAttention(q, k, v, causalFlag && cache is null)
            ? Kernels.FusedCausalAttention.Apply(q, k, v)                        // [B, H, T, hd], token-major storage
            : PaddedKeyLengths(q, k, v, context, cache) is { } lengths
            ? Kernels.FusedCausalAttention.ApplyPadded(q, k, v, lengths)        // [B, H, T, hd], token-major storage
            : Attend(q, k, v, mask, causalFlag);                                // [B, H, T, hd]
        y = TokenMajor(y.transpose(1, 2), b, t);                                // [B, T, d]
        return output is null ? y : DenseLinear.Apply(output, y);
    }

    /// <summary>libtorch's <c>scaled_dot_product_attention</c>; while a training runs on the CPU with
    /// <see cref="Runtime.KernelSettings.SerialAttentionGemms"/> on, with MKL told to run the GEMMs of its blocks on their own threads
    /// (<see cref="Kernels.OpenMPTeam.SerialGemms"/>): they run there anyway, inside libtorch's parallel region, but otherwise each of
    /// them opens a nested one-thread OpenMP region (≈ 11,000 a training step at d = 256, ≈ 7,300 of them skipped so; docs/benchmarks.md,
    /// "The training step's overheads at d = 256"). With <see cref="Runtime.KernelSettings.SerialAttentionBackward"/> on, causal attention
    /// without a mask runs inside <see cref="Kernels.SerialAttention"/>'s autograd node, whose backward does the same on the autograd
    /// thread (≈ 3,600 more regions a d = 256 step). The same GEMM on the same thread either way.</summary>
    private static Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor? mask, bool causal)
    {
        if (!Runtime.KernelSettings.Current.SerialAttentionGemms || !Kernels.KernelBuffers.TrainingRuns || !Kernels.OpenMPTeam.CanSetMklThreads
            || q.device_type != DeviceType.CPU || Kernels.KernelParallel.Workers < 2)
            return F.scaled_dot_product_attention(q, k, v, mask, 0.0, causal);
        Kernels.OpenMPTeam.SerialGemmsOnWorkers(Kernels.KernelParallel.Workers);
        if (mask is null && causal && Runtime.KernelSettings.Current.SerialAttentionBackward && is_grad_enabled()
            && (q.requires_grad || k.requires_grad || v.requires_grad))
            return Kernels.SerialAttention.Apply(q, k, v);                      // the backward's GEMMs serial too
        int previous = Kernels.OpenMPTeam.SerialGemms(1);
        try
        {
            return F.scaled_dot_product_attention(q, k, v, mask, 0.0, causal);
        }
        finally
        {
            Kernels.OpenMPTeam.SerialGemms(previous);
        }
    }

    /// <summary>Training on the CPU (gradients on, causal, no mask or cache) takes the managed causal attention
    /// (<see cref="Kernels.FusedCausalAttention"/>); everything else libtorch's SDPA.</summary>
    private static bool UsesFusedAttention(Tensor q, Tensor k, Tensor v, bool plainCausal)
    {
        var settings = Runtime.KernelSettings.Current;
        return plainCausal && settings.UseFusedKernels && settings.FusedCausalAttention && is_grad_enabled()
            && (q.requires_grad || k.requires_grad || v.requires_grad) && Kernels.FusedCausalAttention.IsSupported(q, k, v);
    }

    /// <summary>
    /// Each batch row's count of real keys when a training step on the CPU attends bidirectionally over right-padded rows
    /// (the text classifier's windows: <see cref="AttentionContext.KeyMask"/> a prefix of trues in every row, no cache) and
    /// <see cref="Runtime.KernelSettings.FusedPaddedAttention"/> is on: that attention then takes the managed kernel
    /// (<see cref="Kernels.FusedCausalAttention.ApplyPadded"/>). Null for everything else, which keeps libtorch's SDPA.
    /// </summary>
    private static int[]? PaddedKeyLengths(Tensor q, Tensor k, Tensor v, AttentionContext context, AttentionCache? cache)
    {
        var settings = Runtime.KernelSettings.Current;
        if (context.Causal || cache is not null || context.KeyMask is not { } keyMask || !settings.UseFusedKernels || !settings.FusedPaddedAttention
            || !is_grad_enabled() || !(q.requires_grad || k.requires_grad || v.requires_grad) || !Kernels.FusedCausalAttention.IsSupported(q, k, v)
            || keyMask.shape[0] != q.shape[0] || keyMask.shape[1] != q.shape[2])
            return null;
        return context.RightPaddedLengths;
    }

    /// <summary>
    /// The heads' outputs [B, T, H, hd] as one [B, T, d]. libtorch's CPU scaled_dot_product_attention returns head-major
    /// storage, so this is a copy; while a training runs it goes into a reused kernel block (<see cref="Kernels.KernelBuffers"/>)
    /// instead of the fresh memory <c>reshape</c> would allocate (6 × 4 MB a d = 512 step). The same values, and the same
    /// gradient for y: the copy's backward hands ∂L/∂out on unchanged, as the reshape's view did.
    /// </summary>
    private Tensor TokenMajor(Tensor y, long b, long t)
    {
        if (y.is_contiguous() || !Runtime.KernelSettings.Current.PooledAttentionOutput || !Kernels.TensorMemory.IsCpuFloat32(y)
            || !Kernels.KernelBuffers.Reusing)
            return y.reshape(b, t, heads * headWidth);
        var output = Kernels.KernelBuffers.Empty(y.shape);                     // [B, T, H, hd]
        output.copy_(y);                                                        // recorded by autograd when y needs a gradient
        return output.view(b, t, heads * headWidth);
    }

    private Tensor SplitHeads(Tensor x, long b, long t) =>
        x.view(b, t, heads, headWidth).transpose(1, 2);                          // [B, H, T, hd]
}
