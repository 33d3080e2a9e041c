using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Diagnostics;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers;

/// <summary>
/// A Memory Layer, the stand-in for one fully-connected layer d → h (paper §2.2–§2.3, eq. 11):
/// y = Σₖ w(zₖ) · Tₖ[h(zₖ)] + b. The K tables are one flat parameter [K·2^τ, h] (table k owns rows
/// k·2^τ … (k+1)·2^τ − 1), read as a weighted bag per token. The learned bias follows the official code
/// (the paper has none). Only the selected rows get a gradient (eq. 12). See docs/model-spec.md, "Memory Layer".
/// </summary>
/// <remarks>
/// <para>Used on its own, the layer is an ordinary autograd module on every path: the table's gradient comes back
/// through autograd, so <c>torch.autograd.grad</c> and <c>backward(inputs: …)</c> see it (as would tensor hooks,
/// which TorchSharp 0.107 does not expose), it is accumulated into <c>Table.grad</c> (a kept <c>grad</c> is never
/// overwritten), and a graph built with <c>retain_graph</c> can be run backward again.</para>
/// <para>The library's training loop (<c>Training/ModelOptimizer.cs</c>) switches its own layers to a faster mode for
/// the duration of a run: the fused CPU backward then writes the table gradient into a buffer the layer reuses every
/// step and sets it as <c>Table.grad</c> directly, which autograd does not see. It switches them back when the run
/// ends.</para>
/// <para>Inputs must have a last dimension of exactly K·τ (<see cref="InputWidth"/>); anything else is refused with
/// the expected and actual widths.</para>
/// </remarks>
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
        Require(chunkCount > 0, nameof(chunkCount), chunkCount, "must be positive");
        Require(bitsPerChunk is >= 1 and <= MemoryFormerConfig.MaxLayerBits, nameof(bitsPerChunk), bitsPerChunk,
            $"must be between 1 and {MemoryFormerConfig.MaxLayerBits} (each table has 2^τ rows)");
        Require(outputWidth > 0, nameof(outputWidth), outputWidth, "must be positive");
        Require(Enum.IsDefined(weightFunction), nameof(weightFunction), weightFunction, "is not a defined weight function");
        Require(temperature is >= MemoryFormerConfig.MinTemperature and <= MemoryFormerConfig.MaxTemperature, nameof(temperature), temperature,
            $"must be between {MemoryFormerConfig.MinTemperature} and {MemoryFormerConfig.MaxTemperature}");
        Require(tableInitStd > 0 && biasInitStd >= 0, nameof(tableInitStd), tableInitStd, "and biasInitStd must be positive and non-negative");
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

    /// <summary>K·τ, the width of the inputs the layer hashes.</summary>
    public int InputWidth => ChunkCount * BitsPerChunk;

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

    /// <summary>The reusable table-gradient buffer of the fused CPU backward, and the norm it measured; used only while
    /// a training loop has attached it (<see cref="TableGradient.Attached"/>).</summary>
    internal TableGradient Gradient { get; } = new();

    /// <summary>The bf16 copy of the table that the training forward reads while <see cref="Runtime.KernelSettings.Bf16ForwardTables"/>
    /// is on (made on first use, kept current; <see cref="Bf16TableCopy"/>).</summary>
    internal Bf16TableCopy ForwardCopy { get; } = new();

    /// <summary>The table's tile-major copy that the tiled training forward reads while <see cref="Runtime.KernelSettings.TileMajorCopyFromUpdate"/>
    /// is on (made by the first such forward, kept current by the fused update; <see cref="TileMajorTableCopy"/>).</summary>
    internal TileMajorTableCopy TileCopy { get; } = new();

    /// <summary>x [.., K·τ] → y [.., h].</summary>
    /// <exception cref="ArgumentException">The last dimension of <paramref name="x"/> is not K·τ.</exception>
    public override Tensor forward(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        CheckWidth(x);
        var flat = x.reshape(-1, x.shape[^1]);                                   // [N, K·τ]
        var y = Forward(Hash(flat));                                              // [N, h]
        return y.view([.. x.shape[..^1], OutputWidth]);                          // [.., h]
    }

    /// <summary>Hashes x [N, K·τ] with this layer's τ and weight function.</summary>
    internal HashCodes Hash(Tensor x)
    {
        CheckWidth(x);
        var codes = SignHash.Compute(x, BitsPerChunk, WeightFunction, Temperature);
        if (UsageCounter is { } counter && (training || !counter.TrainingOnly))
            counter.Record(codes.Rows);
        return codes;
    }

    /// <summary>Hit counts of the table rows, while a <see cref="BucketUsageRecorder"/> is attached (else null).</summary>
    internal BucketCounter? UsageCounter { get; set; }

    private void CheckWidth(Tensor x)
    {
        if (x.dim() == 0 || x.shape[^1] != InputWidth)
            throw new ArgumentException($"MemoryLayer expects inputs whose last dimension is K·τ = {ChunkCount}·{BitsPerChunk} = {InputWidth}; " +
                $"got {(x.dim() == 0 ? "a scalar" : x.shape[^1].ToString(System.Globalization.CultureInfo.InvariantCulture))} " +
                $"(shape [{string.Join(", ", x.shape)}]). Reshape the input, or build the layer with chunkCount·bitsPerChunk equal to its width.", nameof(x));
    }

    private static void Require<T>(bool ok, string name, T value, string rule)
    {
        if (!ok) throw new ArgumentOutOfRangeException(name, value, $"MemoryLayer: {name} {rule}; got {value}.");
    }

    /// <summary>Reads this layer's tables with precomputed codes (the shared Q/K/V hash) → [N, h].</summary>
    internal Tensor Forward(HashCodes codes) => MemoryGather.Apply(codes, this);

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Gradient.Dispose();
            ForwardCopy.Dispose();
            TileCopy.Dispose();
        }
        base.Dispose(disposing);
    }
}
