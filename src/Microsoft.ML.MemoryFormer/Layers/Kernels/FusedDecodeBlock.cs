using System.Runtime.CompilerServices;
using Microsoft.ML.MemoryFormer.Configuration;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// One MemoryFormer <see cref="TransformerBlock"/> for a single token of a single sequence (batch-1 decode), as
/// managed code over the block's own parameter memory and preallocated buffers, with no torch dispatch:
/// RMSNorm → sign hash → Q/K/V rows (one shared hash) → rotary → write K, V into the <see cref="AttentionCache"/> →
/// attention over the cache → residual; RMSNorm → hash → ML₁ → LayerNorm → hash (τ+2 bits) → ML₂ → residual.
/// The same arithmetic as the general path in fp32 (tested against it); CPU fp32, eval mode, RMSNorm only. With bf16 or
/// int8 table copies (<c>LanguageModel.UseInferencePrecision(BFloat16 / Int8)</c>) the gathers read those instead
/// (<see cref="Bf16Gather"/>, <see cref="Int8Gather"/>).
/// </summary>
/// <remarks>Holds raw pointers into the block's parameters: build it per generation and do not let the model's
/// parameters be replaced (moved, reloaded into new tensors) while it is in use.</remarks>
internal sealed unsafe class FusedDecodeBlock : IFusedDecodeBlock
{
    private readonly TransformerBlock block;           // keeps the parameters alive
    private readonly int width, hidden;
    private readonly DecodeAttention attention;
    private readonly DecodeRmsNorm ffnNorm;
    private readonly float* normWeight, normBias;
    private readonly Layer query, key, value, expand, project;
    private readonly bool twoThreads;

    /// <summary>Reads the block's parameters and the bf16 or int8 copies of its tables that <paramref name="bf16"/> or
    /// <paramref name="int8"/> returns (null from both: the fp32 table); <see cref="Supports"/> must be true.
    /// <paramref name="twoThreads"/> splits the gathers between two threads (same results; <c>LanguageModel.UseTwoThreadGathers</c>).</summary>
    public FusedDecodeBlock(TransformerBlock block, MemoryFormerConfig config, Func<Tensor, Bf16Matrix?> bf16, Func<Tensor, Int8Matrix?> int8,
        bool twoThreads = false)
    {
        this.block = block;
        this.twoThreads = twoThreads;
        var qkv = (MemoryQkv)block.Attention.Qkv;
        var ffn = (MemoryBlock)block.Ffn;
        (width, hidden) = (config.Width, config.BlockHiddenWidth);
        attention = new DecodeAttention(block, config);
        ffnNorm = new DecodeRmsNorm((RmsNorm)block.FfnNorm, width);
        normWeight = TensorMemory.Floats(ffn.Norm.weight!);
        normBias = TensorMemory.Floats(ffn.Norm.bias!);
        (query, key, value) = (new Layer(qkv.Query, bf16, int8), new Layer(qkv.Key, bf16, int8), new Layer(qkv.Value, bf16, int8));
        (expand, project) = (new Layer(ffn.Expand, bf16, int8), new Layer(ffn.Project, bf16, int8));
    }

    /// <summary>True when the fused step computes this block exactly: a MemoryFormer block with RMSNorms, CPU fp32.</summary>
    public static bool Supports(TransformerBlock block, MemoryFormerConfig config) =>
        SupportsConfig(config) && block.parameters().All(p => Contiguous(p)) && block.buffers().All(b => Contiguous(b));

    /// <summary>The configuration's part of <see cref="Supports"/>: a MemoryFormer with RMSNorms and at most 16 bits a chunk.</summary>
    public static bool SupportsConfig(MemoryFormerConfig config) =>
        config.Kind == TransformerKind.MemoryFormer && config.Norm == NormKind.RmsNorm && config.BitsPerChunk + config.ExtraBits <= 16;

    /// <summary>Positions the rotary tables cover; a cache position at or past it cannot be decoded.</summary>
    public long RotaryPositions => attention.RotaryPositions;

    /// <summary>Runs the block on x [d] in place for the token at position <c>cache.Length</c>, appending its K and V.</summary>
    /// <remarks>The caller checks first that the position is below the cache's capacity and <see cref="RotaryPositions"/>
    /// (<see cref="FusedDecodeStep"/> does, for every layer, before anything is written); this re-checks so that no
    /// caller can make it write outside the cache.</remarks>
    public void Step(float* x, AttentionCache cache, Scratch s)
    {
        attention.CheckRoom(cache);
        attention.Norm.Apply(x, s.Normed);
        Hash(s.Normed, width, value, s);                                          // one hash for Q, K, V
        // With twoThreads: Q on one thread, V on another, K split between them by columns (with bf16 or int8 tables;
        // fp32 tables give K whole to the first): the gathers wait on scattered rows, so two cores could keep twice as
        // many misses in flight (the dense step's GEMVs use both cores). Each output column is written by one thread
        // with the same arithmetic as one thread, so the results are bit for bit the same.
        if (twoThreads)
        {
            PairFork.Run((long)s.Chunks * width * 3 / 2, part =>
            {
                int split = key.Splits && Half(width) > 0 ? Half(width) : width;
                Gather(part == 0 ? query : value, s, part == 0 ? s.Query : s.Value, 0, width);
                if (part == 0)
                    Gather(key, s, s.Key, 0, split);
                else if (split < width)
                    Gather(key, s, s.Key, split, width);
            });
        }
        else
        {
            Gather(query, s, s.Query, 0, width);                                 // one pass over each table's rows
            Gather(key, s, s.Key, 0, width);
            Gather(value, s, s.Value, 0, width);
        }
        attention.Attend(s.Query, s.Key, s.Value, cache, s.Scores, s.Attended);  // rotary, K/V into the cache
        RowKernels.Add(s.Attended, x, width);                                     // z = x + Attn(Norm(x))

        ffnNorm.Apply(x, s.Normed);
        Hash(s.Normed, width, expand, s);
        GatherOnTwoThreads(expand, s, s.Hidden);                                  // [K·(τ+2)]
        VectorKernels.LayerNorm(s.Hidden, normWeight, normBias, hidden, (float)MemoryBlock.NormEpsilon, s.HiddenNormed);
        Hash(s.HiddenNormed, hidden, project, s);                                 // K chunks of τ+2 bits
        GatherOnTwoThreads(project, s, s.Attended);
        RowKernels.Add(s.Attended, x, width);                                     // out = z + FFN(Norm(z))
    }

    private static bool Contiguous(Tensor t) => TensorMemory.IsCpuFloat32(t) && t.is_contiguous();

    private static void Hash(float* input, int n, Layer layer, Scratch s)
    {
        int chunks = n / layer.Bits;
        SignHashKernel.HashRow(input, chunks, layer.Bits, layer.L1Scaled, layer.Scale, s.Rows, s.Weights, null);
        for (int c = 0; c < chunks; c++)
            s.RowIndex[c] = (int)s.Rows[c];
        s.Chunks = chunks;
    }

    /// <summary>One gather with its columns split between two threads where its table copy allows (bf16, int8), else whole.</summary>
    private void GatherOnTwoThreads(Layer layer, Scratch s, float* output)
    {
        if (!layer.Splits || Half(layer.Width) == 0 || !twoThreads)
        {
            Gather(layer, s, output, 0, layer.Width);
            return;
        }
        nint target = (nint)output;
        PairFork.Run((long)s.Chunks * layer.Width / 2, part =>
            Gather(layer, s, (float*)target, part == 0 ? 0 : Half(layer.Width), part == 0 ? Half(layer.Width) : layer.Width));
    }

    /// <summary>Where a gather of width <paramref name="h"/> is split between two threads: about half, on a 128-column tile
    /// (so both halves take the same tiles as the whole: bit for bit the same sums); 0 (no split) below 256 columns.</summary>
    private static int Half(int h) => h / 2 / 128 * 128;

    /// <summary>Columns <paramref name="first"/> … <paramref name="last"/>−1 of the layer's gather (+ bias) into
    /// <paramref name="output"/>; the fp32 table takes only the whole width.</summary>
    private static void Gather(Layer layer, Scratch s, float* output, int first, int last)
    {
        if (layer.Table8 is { } table8)
            Int8Gather.WeightedBagSum(table8.Pointer, table8.Scales, layer.Width, s.RowIndex, s.Weights, s.Chunks, output, HeadGemv.VectorBits, first, last);
        else if (layer.Table16 is { } table16)
            Bf16Gather.WeightedBagSum(table16.Pointer, layer.Width, s.RowIndex, s.Weights, s.Chunks, output, HeadGemv.VectorBits, first, last);
        else if (first == 0 && last == layer.Width)
            RowKernels.WeightedBagSum(layer.Table, layer.Width, s.RowIndex, s.Weights, s.Chunks, output);
        else
            throw new InvalidOperationException("An fp32 table is gathered whole (RowKernels has no column range).");
        RowKernels.Add(layer.Bias + first, output + first, last - first);
    }

    /// <summary>One Memory Layer's table (and its bf16 or int8 copy, if any), bias and hash settings as raw memory.</summary>
    private sealed class Layer(MemoryLayer layer, Func<Tensor, Bf16Matrix?> bf16, Func<Tensor, Int8Matrix?> int8)
    {
        public readonly float* Table = TensorMemory.Floats(layer.Table);
        public readonly Bf16Matrix? Table16 = bf16(layer.Table);
        public readonly Int8Matrix? Table8 = int8(layer.Table);
        public readonly float* Bias = TensorMemory.Floats(layer.Bias);
        public readonly int Width = layer.OutputWidth, Bits = layer.BitsPerChunk;
        public readonly bool L1Scaled = layer.WeightFunction == HashWeightFunction.L1ScaledSigmoidProduct;
        public readonly float Scale = -2f / (layer.WeightFunction == HashWeightFunction.L1ScaledSigmoidProduct ? 1f : (float)layer.Temperature);

        /// <summary>Whether the gather can be split by columns between threads (a bf16 or int8 copy is read).</summary>
        public bool Splits => Table16 is not null || Table8 is not null;
    }

    /// <summary>Working vectors shared by all blocks of one decode step; pinned, so their addresses never change.</summary>
    public sealed class Scratch(MemoryFormerConfig config)
    {
        private readonly float[] floats = GC.AllocateArray<float>(
            (6 * config.Width) + (2 * config.BlockHiddenWidth) + (2 * config.ChunkCount) + config.ContextLength, pinned: true);
        private readonly long[] rows = GC.AllocateArray<long>(config.ChunkCount, pinned: true);
        private readonly int[] rowIndex = GC.AllocateArray<int>(config.ChunkCount, pinned: true);

        private float* At(int offset) => (float*)Unsafe.AsPointer(ref floats[offset]);
        private int D => config.Width;
        private int M => config.BlockHiddenWidth;

        public float* Normed => At(0);
        public float* Query => At(D);
        public float* Key => At(2 * D);
        public float* Value => At(3 * D);
        public float* Attended => At(4 * D);
        public float* Residual => At(5 * D);
        public float* Hidden => At(6 * D);
        public float* HiddenNormed => At((6 * D) + M);
        public float* Weights => At((6 * D) + (2 * M));
        public float* Scores => At((6 * D) + (2 * M) + (2 * config.ChunkCount));
        public long* Rows => (long*)Unsafe.AsPointer(ref rows[0]);
        public int* RowIndex => (int*)Unsafe.AsPointer(ref rowIndex[0]);
        public int Chunks { get; set; }
    }
}
