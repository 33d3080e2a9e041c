using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>
/// A Memory Layer, the stand-in for one fully-connected layer d → h (paper §2.2–§2.3, eq. 11):
/// y = Σₖ w(zₖ) · Tₖ[h(zₖ)] + b. The K tables are one flat parameter [K·2^τ, h] (table k owns rows
/// k·2^τ … (k+1)·2^τ − 1), read as a weighted bag per token. The learned bias follows the official code
/// (the paper has none). Only the selected rows get a gradient (eq. 12).
/// </summary>
public sealed class MemoryLayer : nn.Module<Tensor, Tensor>
{
    private readonly EmbeddingBag table;   // [K·2^τ, h]

    /// <summary>The EmbeddingBag holding the table (the libtorch reference path).</summary>
    internal EmbeddingBag Bag => table;
    private readonly Parameter bias;       // [h]

    /// <summary>Creates a layer over inputs of <paramref name="chunkCount"/> × <paramref name="bitsPerChunk"/> elements.</summary>
    public MemoryLayer(int chunkCount, int bitsPerChunk, int outputWidth, HashWeightFunction weightFunction,
        double temperature, double tableInitStd, double biasInitStd) : base(nameof(MemoryLayer))
    {
        ChunkCount = chunkCount;
        BitsPerChunk = bitsPerChunk;
        OutputWidth = outputWidth;
        WeightFunction = weightFunction;
        Temperature = temperature;
        table = nn.EmbeddingBag(chunkCount * (1L << bitsPerChunk), outputWidth, mode: EmbeddingBagMode.Sum);
        bias = new Parameter(zeros(outputWidth));
        using (no_grad())
        {
            table.weight!.normal_(0, tableInitStd);
            bias.normal_(0, biasInitStd);
        }
        RegisterComponents();
    }

    /// <summary>K, the number of chunks and tables.</summary>
    public int ChunkCount { get; }

    /// <summary>τ, bits per chunk; each table has 2^τ rows.</summary>
    public int BitsPerChunk { get; }

    /// <summary>h, the output width.</summary>
    public int OutputWidth { get; }

    /// <summary>The weight function applied to each chunk.</summary>
    public HashWeightFunction WeightFunction { get; }

    /// <summary>Temperature of the paper's weight function.</summary>
    public double Temperature { get; }

    /// <summary>The flat table parameter [K·2^τ, h].</summary>
    public Parameter Table => table.weight!;

    /// <summary>The bias parameter [h].</summary>
    public Parameter Bias => bias;

    /// <summary>The reusable table-gradient buffer of the fused CPU backward, and the norm it measured.</summary>
    internal TableGradient Gradient { get; } = new();

    /// <summary>x [.., K·τ] → y [.., h].</summary>
    public override Tensor forward(Tensor x)
    {
        var flat = x.reshape(-1, x.shape[^1]);                                   // [N, K·τ]
        var y = Forward(Hash(flat));                                              // [N, h]
        return y.view([.. x.shape[..^1], OutputWidth]);                          // [.., h]
    }

    /// <summary>Hashes x [N, K·τ] with this layer's τ and weight function.</summary>
    internal HashCodes Hash(Tensor x) => SignHash.Compute(x, BitsPerChunk, WeightFunction, Temperature);

    /// <summary>Reads this layer's tables with precomputed codes (the shared Q/K/V hash) → [N, h].</summary>
    internal Tensor Forward(HashCodes codes) => MemoryGather.Apply(codes, this);

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) Gradient.Dispose();
        base.Dispose(disposing);
    }
}
