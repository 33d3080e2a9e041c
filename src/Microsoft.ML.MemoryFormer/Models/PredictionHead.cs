using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// The task head on top of a backbone: pooling → dropout → one linear layer d → outputs (class logits, or a single
/// regression value). It reads hidden states only, so any token front end (text tokens, tabular feature tokens
/// with a [CLS] token) can feed it.
/// </summary>
internal sealed class PredictionHead : nn.Module
{
    private readonly Layers.HashedDropout dropout;
    private readonly Linear output;

    public PredictionHead(int width, int outputs, PoolingKind pooling, double dropoutRate, double initStd = 0.02)
        : base(nameof(PredictionHead))
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(outputs, 1);
        Pooling = pooling;
        Outputs = outputs;
        dropout = new Layers.HashedDropout(dropoutRate);
        output = nn.Linear(width, outputs);
        using (no_grad())
        {
            output.weight!.normal_(0, initStd);
            output.bias!.zero_();
        }
        RegisterComponents();
    }

    /// <summary>How rows are pooled.</summary>
    public PoolingKind Pooling { get; }

    /// <summary>Outputs per row.</summary>
    public int Outputs { get; }

    /// <summary>The linear layer d → outputs (read by the ONNX export).</summary>
    internal Linear Output => output;

    /// <summary>hidden [B, T, d] and mask bool [B, T] (null = unpadded) → outputs [B, outputs].</summary>
    public Tensor Forward(Tensor hidden, Tensor? mask) => Linear(dropout.call(SequencePooling.Pool(hidden, mask, Pooling))); // [B, outputs]

    /// <summary>The linear layer over pooled rows [B, d] → [B, outputs]: at inference on the CPU each row on its own
    /// (<see cref="HeadGemv.Linear(Tensor, Tensor, Tensor?)"/>), so a row's outputs do not depend on the batch it is scored in.</summary>
    public Tensor Linear(Tensor pooled) =>
        HeadGemv.ServesRows(pooled, output.weight!) ? HeadGemv.Linear(pooled, output.weight!, output.bias) : output.call(pooled);
}
