using System.Runtime.CompilerServices;
using Microsoft.ML.MemoryFormer.Configuration;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// One dense-baseline <see cref="TransformerBlock"/> for a single token of a single sequence, the counterpart of
/// <see cref="FusedDecodeBlock"/> so that decode ratios compare equally optimised models (issue 16, item 4):
/// RMSNorm → Q/K/V GEMV (d → 3d) → rotary → write K, V into the cache → attention → W_O GEMV → residual; RMSNorm →
/// GEMV d → 4d → GELU (erf) → GEMV 4d → d → residual. Every matrix goes through <see cref="HeadGemv"/>, in bf16 or int8
/// when the model holds such copies (<c>LanguageModel.UseInferencePrecision</c>). CPU fp32, eval mode, RMSNorm only.
/// </summary>
/// <remarks>Holds raw pointers into the block's parameters: build it per generation.</remarks>
internal sealed unsafe class FusedDenseDecodeBlock : IFusedDecodeBlock
{
    private readonly TransformerBlock block;           // keeps the parameters alive
    private readonly int width;
    private readonly DecodeAttention attention;
    private readonly DecodeRmsNorm ffnNorm;
    private readonly Matrix qkv, output, expand, project;
    private readonly float[] buffers;                  // qkv [3d], hidden [4d], projected [d]; pinned

    /// <summary>Reads the block's parameters (and any bf16 or int8 copies from <paramref name="bf16"/>, <paramref name="int8"/>);
    /// <see cref="Supports"/> must be true.</summary>
    public FusedDenseDecodeBlock(TransformerBlock block, MemoryFormerConfig config, Func<Tensor, Bf16Matrix?> bf16, Func<Tensor, Int8Matrix?> int8)
    {
        this.block = block;
        var mlp = (DenseMlp)block.Ffn;
        width = config.Width;
        attention = new DecodeAttention(block, config);
        ffnNorm = new DecodeRmsNorm((RmsNorm)block.FfnNorm, width);
        qkv = new Matrix(((DenseQkv)block.Attention.Qkv).Projection, bf16, int8);
        output = new Matrix(block.Attention.Output!, bf16, int8);
        (expand, project) = (new Matrix(mlp.Expand, bf16, int8), new Matrix(mlp.Project, bf16, int8));
        buffers = GC.AllocateArray<float>((3 * width) + expand.Rows + width, pinned: true);
    }

    /// <summary>True when this step computes the block exactly: a dense block with RMSNorms and biased linear layers, CPU fp32.</summary>
    public static bool Supports(TransformerBlock block, MemoryFormerConfig config) =>
        config.Kind == TransformerKind.Dense && config.Norm == NormKind.RmsNorm
        && block.Attention.Output is { bias: not null } && block.Ffn is DenseMlp
        && block.parameters().All(p => TensorMemory.IsCpuFloat32(p) && p.is_contiguous())
        && block.buffers().All(b => TensorMemory.IsCpuFloat32(b) && b.is_contiguous());

    /// <inheritdoc/>
    public long RotaryPositions => attention.RotaryPositions;

    /// <inheritdoc/>
    public void Step(float* x, AttentionCache cache, FusedDecodeBlock.Scratch s)
    {
        float* q = At(0), k = q + width, v = k + width, hidden = At(3 * width), projected = hidden + expand.Rows;
        attention.CheckRoom(cache);
        attention.Norm.Apply(x, s.Normed);
        qkv.Apply(s.Normed, q);                                                   // [Q | K | V]
        attention.Attend(q, k, v, cache, s.Scores, s.Attended);                   // rotary, K/V into the cache
        output.Apply(s.Attended, projected);
        RowKernels.Add(projected, x, width);                                      // z = x + W_O·Attn(Norm(x))

        ffnNorm.Apply(x, s.Normed);
        expand.Apply(s.Normed, hidden);
        for (int i = 0; i < expand.Rows; i++)
            hidden[i] = Gelu(hidden[i]);
        project.Apply(hidden, projected);
        RowKernels.Add(projected, x, width);                                      // out = z + MLP(Norm(z))
        GC.KeepAlive(this);
    }

    private float* At(int offset) => (float*)Unsafe.AsPointer(ref buffers[offset]);

    /// <summary>GELU with the exact erf, as <c>nn.GELU()</c>: erf by Abramowitz and Stegun 7.1.26 (|error| ≤ 1.5·10⁻⁷).</summary>
    internal static float Gelu(float value)
    {
        double z = value / Math.Sqrt(2.0), a = Math.Abs(z), t = 1.0 / (1.0 + (0.3275911 * a));
        double poly = t * (0.254829592 + (t * (-0.284496736 + (t * (1.421413741 + (t * (-1.453152027 + (t * 1.061405429))))))));
        double erf = 1.0 - (poly * Math.Exp(-a * a));
        return (float)(0.5 * value * (1.0 + (z < 0 ? -erf : erf)));
    }

    /// <summary>A linear layer y = W x + b as raw memory, W [rows, cols] in fp32 and optionally bf16 or int8.</summary>
    private sealed class Matrix
    {
        private readonly float* weight, bias;
        private readonly Bf16Matrix? weight16;
        private readonly Int8Matrix? weight8;
        private readonly int columns;

        public Matrix(Linear linear, Func<Tensor, Bf16Matrix?> bf16, Func<Tensor, Int8Matrix?> int8)
        {
            weight8 = int8(linear.weight!);
            weight = TensorMemory.Floats(linear.weight!);
            bias = TensorMemory.Floats(linear.bias!);
            weight16 = bf16(linear.weight!);
            (Rows, columns) = ((int)linear.weight!.shape[0], (int)linear.weight!.shape[1]);
        }

        public int Rows { get; }

        public void Apply(float* x, float* y)
        {
            if (weight8 is not null)
                HeadGemv.Compute(x, 1, weight8, y);
            else
                HeadGemv.Compute(x, 1, weight, weight16 is null ? null : weight16.Pointer, Rows, columns, y);
            GC.KeepAlive(weight16);
            RowKernels.Add(bias, y, Rows);
        }
    }
}
