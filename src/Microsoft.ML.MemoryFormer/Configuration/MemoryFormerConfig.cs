using System.Text.Json;
using System.Text.Json.Serialization;

namespace Microsoft.ML.MemoryFormer.Configuration;

/// <summary>
/// The architecture of a MemoryFormer (or of the dense transformer of the same shape used as its baseline).
/// Immutable; use <c>with</c> expressions to derive variants and <see cref="Validate"/> before building a model.
/// </summary>
/// <remarks>
/// Symbols follow the paper (arXiv 2411.12992): d = <see cref="Width"/>, τ = <see cref="BitsPerChunk"/>,
/// K = <see cref="ChunkCount"/> = d / τ hash tables of 2^τ rows each. Defaults follow the official code
/// (docs/model-spec.md, "Where the paper and the code differ"): the code's weight function, a learned bias per Memory Layer, RMSNorm outside
/// and LayerNorm inside the Memory Block, rotary embeddings on 25% of each head, no attention output projection.
/// </remarks>
public sealed record MemoryFormerConfig
{
    /// <summary>Which projections the model uses: hashed Memory Layers (MemoryFormer) or dense linear layers (baseline).</summary>
    public TransformerKind Kind { get; init; } = TransformerKind.MemoryFormer;

    /// <summary>Number of token ids the embedding and LM head cover.</summary>
    public int VocabularySize { get; init; } = 256;

    /// <summary>Longest sequence the model is trained on; generation crops its input to it (rotary does not extrapolate).</summary>
    public int ContextLength { get; init; } = 128;

    /// <summary>Hidden width d. Must equal K·τ for MemoryFormer (no projection before hashing; docs/model-spec.md, "Sign hash").</summary>
    public int Width { get; init; } = 256;

    /// <summary>Number of transformer blocks.</summary>
    public int Layers { get; init; } = 4;

    /// <summary>Attention heads; d must be divisible by it.</summary>
    public int Heads { get; init; } = 4;

    /// <summary>τ: bits per hash chunk, i.e. each table has 2^τ rows. The paper uses 8.</summary>
    public int BitsPerChunk { get; init; } = 8;

    /// <summary>Extra bits of the Memory Block's second layer (its chunks have τ + extra bits). The paper uses 2 (Table 5).</summary>
    public int ExtraBits { get; init; } = 2;

    /// <summary>Fraction of each head's dimensions that get rotary embeddings (0.25 as in the code).</summary>
    public double RotaryFraction { get; init; } = 0.25;

    /// <summary>Rotary base frequency.</summary>
    public double RotaryBase { get; init; } = 10000;

    /// <summary>How a chunk's bucket is weighted: the official code's ‖z‖₁·Π σ(2|zᵢ|) (default) or the paper's Π σ(2|zᵢ|/t).</summary>
    public HashWeightFunction WeightFunction { get; init; } = HashWeightFunction.L1ScaledSigmoidProduct;

    /// <summary>Temperature t of the paper's weight function (ignored by the code's function), between
    /// <see cref="MinTemperature"/> and <see cref="MaxTemperature"/>.</summary>
    public double Temperature { get; init; } = 1.0;

    /// <summary>Norm before attention, before the FFN and at the end: RMSNorm (code) or LayerNorm (Pythia).</summary>
    public NormKind Norm { get; init; } = NormKind.RmsNorm;

    /// <summary>
    /// Epsilon of the outer norms, used exactly as given. The code's RMSNorm adds 1e-8 outside the root (the default);
    /// with <see cref="NormKind.LayerNorm"/> it must be at least <see cref="MinLayerNormEpsilon"/> (Pythia's and torch's
    /// 1e-5): set it explicitly when choosing LayerNorm.
    /// </summary>
    public double NormEpsilon { get; init; } = 1e-8;

    /// <summary>
    /// Opt-in per-channel centring of every Memory Layer's hash input (<see cref="Configuration.HashCentering"/>); MemoryFormer
    /// only. <see cref="Configuration.HashCentering.None"/> (the default) is the paper's and the code's model, and leaves the
    /// config's JSON and the weights' layout as they were. With any other kind the model keeps a running statistic per hashed
    /// input (saved with its weights); the fused CPU decode and scoring paths, ONNX export and
    /// GPT-NeoX / safetensors interop do not support it (the first two fall back to the general path, the others throw
    /// <see cref="NotSupportedException"/>). A library that predates the option refuses such a model's weights. Measured in
    /// docs/benchmarks.md ("Language modelling at token level", round 5): healthier codes, no gain in loss; off by default.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public HashCentering HashCentering { get; init; } = HashCentering.None;

    /// <summary>Init std of Memory Block tables (code: 0.02).</summary>
    public double TableInitStd { get; init; } = 0.02;

    /// <summary>Init std of Q/K/V tables; null means small_init, sqrt(2 / (5d)), as the code's configs.</summary>
    public double? QkvInitStd { get; init; }

    /// <summary>Init std of Memory Layer biases (code: 0.001).</summary>
    public double BiasInitStd { get; init; } = 0.001;

    /// <summary>Init std of the token embedding, the LM head and the dense baseline's linear layers.</summary>
    public double EmbeddingInitStd { get; init; } = 0.02;

    /// <summary>Dropout on attention outputs and block outputs (0 as in the paper).</summary>
    public double Dropout { get; init; }

    /// <summary>
    /// Opt-in adaptive softmax output head for language models (Grave et al. 2017; PyTorch's
    /// <c>nn.AdaptiveLogSoftmaxWithLoss</c>): strictly increasing frequency-rank cutoffs, e.g. [2000, 10000] — a head over
    /// the 2,000 most frequent tokens plus one logit per tail cluster, tail cluster i (ranks cutoff_i … cutoff_{i+1} − 1,
    /// the last up to <see cref="VocabularySize"/>) scored through a d / 4^(i+1) projection. Probabilities stay exact and
    /// normalised. Null (the default): the full V × d head. Tokens are ranked by their count in the training text.
    /// Not supported by ONNX export and GPT-NeoX / safetensors interop (they throw <see cref="NotSupportedException"/>);
    /// generation uses the general decode path (the fused single-token step needs the full head).
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int[]? AdaptiveSoftmaxCutoffs { get; init; }

    /// <summary>Largest number of adaptive softmax tail clusters <see cref="Validate"/> accepts.</summary>
    public const int MaxAdaptiveSoftmaxClusters = 8;

    /// <summary>K: number of chunks (hash tables) per Memory Layer, d / τ.</summary>
    [JsonIgnore] public int ChunkCount => Width / BitsPerChunk;

    /// <summary>Width of one attention head, d / heads.</summary>
    [JsonIgnore] public int HeadWidth => Width / Heads;

    /// <summary>Head dimensions that get rotary embeddings (even, rounded down).</summary>
    [JsonIgnore] public int RotaryDims => (int)(HeadWidth * RotaryFraction) / 2 * 2;

    /// <summary>Width of the Memory Block's hidden layer, K·(τ + extra bits).</summary>
    [JsonIgnore] public int BlockHiddenWidth => ChunkCount * (BitsPerChunk + ExtraBits);

    /// <summary>The std actually used for Q/K/V tables.</summary>
    [JsonIgnore] public double EffectiveQkvInitStd => QkvInitStd ?? Math.Sqrt(2.0 / (5.0 * Width));

    /// <summary>A few-thousand-parameter model for tests: d = 16, τ = 4, K = 4, 2 layers, 2 heads.</summary>
    public static MemoryFormerConfig Nano { get; } = new()
    {
        VocabularySize = 64, ContextLength = 16, Width = 16, Layers = 2, Heads = 2, BitsPerChunk = 4,
    };

    /// <summary>A byte-level model that trains on a laptop CPU in minutes: d = 256, 4 layers, τ = 8 (K = 32).</summary>
    public static MemoryFormerConfig Small256 { get; } = new()
    {
        VocabularySize = 256, ContextLength = 128, Width = 256, Layers = 4, Heads = 4, BitsPerChunk = 8,
    };

    /// <summary>The paper's MF-tiny: 6 × 512, K = 64, τ = 8, 8 heads (the shape of Pythia-70M), GPT-NeoX vocabulary.</summary>
    public static MemoryFormerConfig Tiny { get; } = new()
    {
        VocabularySize = 50304, ContextLength = 2048, Width = 512, Layers = 6, Heads = 8, BitsPerChunk = 8,
    };

    /// <summary>The paper's MF-small: 12 × 768, K = 96, τ = 8, 12 heads (the shape of Pythia-160M).</summary>
    public static MemoryFormerConfig PaperSmall { get; } = Tiny with { Width = 768, Layers = 12, Heads = 12 };

    /// <summary>The paper's MF-base: 24 × 1024, K = 128, τ = 8, 16 heads (the shape of Pythia-410M).</summary>
    public static MemoryFormerConfig Base { get; } = Tiny with { Width = 1024, Layers = 24, Heads = 16 };

    /// <summary>Largest <see cref="VocabularySize"/> <see cref="Validate"/> accepts (a bound against hostile model files).</summary>
    public const int MaxVocabularySize = 1 << 22;

    /// <summary>Largest <see cref="ContextLength"/> <see cref="Validate"/> accepts.</summary>
    public const int MaxContextLength = 1 << 17;

    /// <summary>Largest <see cref="Width"/> <see cref="Validate"/> accepts.</summary>
    public const int MaxWidth = 1 << 15;

    /// <summary>Largest <see cref="Layers"/> <see cref="Validate"/> accepts.</summary>
    public const int MaxLayers = 1 << 10;

    /// <summary>Widest chunk a Memory Layer hashes: τ + <see cref="ExtraBits"/> in the Memory Block's second layer.</summary>
    public const int MaxLayerBits = 20;

    /// <summary>
    /// Smallest <see cref="Temperature"/>: the paper's weight Π σ(2|zᵢ|/t) takes 2/t in fp32, which overflows below
    /// about 6e-39 and turns the weight of a zero element into NaN; far above that, every weight is already 0 or 1.
    /// </summary>
    public const double MinTemperature = 1e-4;

    /// <summary>Largest <see cref="Temperature"/>: beyond it every weight is 2^−τ to within fp32 rounding.</summary>
    public const double MaxTemperature = 1e4;

    /// <summary>Smallest <see cref="NormEpsilon"/> accepted with <see cref="NormKind.LayerNorm"/> (Pythia's value).</summary>
    public const double MinLayerNormEpsilon = 1e-5;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first field that breaks a rule.</summary>
    /// <returns>This config, to allow chaining.</returns>
    public MemoryFormerConfig Validate()
    {
        Require(VocabularySize is > 0 and <= MaxVocabularySize, nameof(VocabularySize), $"must be between 1 and {MaxVocabularySize}");
        Require(ContextLength is > 0 and <= MaxContextLength, nameof(ContextLength), $"must be between 1 and {MaxContextLength}");
        Require(Width is > 0 and <= MaxWidth, nameof(Width), $"must be between 1 and {MaxWidth}");
        Require(Layers is > 0 and <= MaxLayers, nameof(Layers), $"must be between 1 and {MaxLayers}");
        Require(Heads > 0 && Width % Heads == 0, nameof(Heads), $"must be positive and divide {nameof(Width)} ({Width})");
        Require(BitsPerChunk is >= 1 and <= 16, nameof(BitsPerChunk), "must be between 1 and 16 (tables have 2^τ rows)");
        Require(Width % BitsPerChunk == 0, nameof(Width),
            $"must be divisible by {nameof(BitsPerChunk)} (d = K·τ; got d = {Width}, τ = {BitsPerChunk})");
        Require(ExtraBits >= 0 && BitsPerChunk + ExtraBits <= MaxLayerBits, nameof(ExtraBits), $"must be ≥ 0 with τ + extra bits ≤ {MaxLayerBits}");
        Require(RotaryFraction is >= 0 and <= 1, nameof(RotaryFraction), "must be in [0, 1]");
        Require(RotaryBase > 1, nameof(RotaryBase), "must be greater than 1");
        Require(Temperature is >= MinTemperature and <= MaxTemperature, nameof(Temperature),
            $"must be between {MinTemperature} and {MaxTemperature} (got {Temperature}; below about 6e-39 the weight function gives NaN)");
        Require(NormEpsilon > 0, nameof(NormEpsilon), "must be positive");
        Require(Norm != NormKind.LayerNorm || NormEpsilon >= MinLayerNormEpsilon, nameof(NormEpsilon),
            $"must be at least {MinLayerNormEpsilon} with Norm = LayerNorm (got {NormEpsilon}); set NormEpsilon = {MinLayerNormEpsilon} with LayerNorm");
        Require(TableInitStd > 0 && BiasInitStd >= 0 && EmbeddingInitStd > 0 && (QkvInitStd ?? 1) > 0,
            nameof(TableInitStd), "init stds must be positive");
        Require(Dropout is >= 0 and < 1, nameof(Dropout), "must be in [0, 1)");
        Require(AdaptiveSoftmaxCutoffs is null || CutoffsValid(AdaptiveSoftmaxCutoffs), nameof(AdaptiveSoftmaxCutoffs),
            $"must be 1 to {MaxAdaptiveSoftmaxClusters} strictly increasing ranks, the first positive and the last below " +
            $"{nameof(VocabularySize)} ({VocabularySize}), with each tail projection d / 4^(i+1) at least 1 wide (d = {Width})");
        Require(Enum.IsDefined(Kind), nameof(Kind), $"must be one of {string.Join(", ", Enum.GetNames<TransformerKind>())}");
        Require(Enum.IsDefined(Norm), nameof(Norm), $"must be one of {string.Join(", ", Enum.GetNames<NormKind>())}");
        Require(Enum.IsDefined(WeightFunction), nameof(WeightFunction), $"must be one of {string.Join(", ", Enum.GetNames<HashWeightFunction>())}");
        Require(Enum.IsDefined(HashCentering), nameof(HashCentering), $"must be one of {string.Join(", ", Enum.GetNames<HashCentering>())}");
        Require(HashCentering == HashCentering.None || Kind == TransformerKind.MemoryFormer, nameof(HashCentering),
            $"applies to MemoryFormer models only (the dense baseline has no hash); got {HashCentering} with Kind = {Kind}");
        return this;
    }

    /// <summary>Throws <see cref="NotSupportedException"/> naming <paramref name="what"/> when <see cref="HashCentering"/> is set.</summary>
    internal void ThrowIfHashCentering(string what)
    {
        if (HashCentering != HashCentering.None)
            throw new NotSupportedException($"{what} does not support {nameof(MemoryFormerConfig)}.{nameof(HashCentering)} = {HashCentering} " +
                $"(the model subtracts a running mean from each hash input, which that format has no place for). " +
                $"Train with {nameof(HashCentering)} = {HashCentering.None} to use it.");
    }

    /// <summary>Serialises the config as indented JSON (enums as names).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Parses a config written by <see cref="ToJson"/> and validates it.</summary>
    /// <remarks>Files written before LayerNorm configs had to state their epsilon may hold a LayerNorm with the RMSNorm
    /// default 1e-8; those models always ran with <see cref="MinLayerNormEpsilon"/>, which is what they load with.</remarks>
    public static MemoryFormerConfig FromJson(string json)
    {
        var config = JsonSerializer.Deserialize<MemoryFormerConfig>(json, JsonOptions)
            ?? throw new ArgumentException("The JSON text holds no MemoryFormer config.", nameof(json));
        if (config.Norm == NormKind.LayerNorm && config.NormEpsilon is > 0 and < MinLayerNormEpsilon)
            config = config with { NormEpsilon = MinLayerNormEpsilon };
        return config.Validate();
    }

    internal static JsonSerializerOptions JsonOptions { get; } = new()
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
    };

    private bool CutoffsValid(int[] cutoffs) =>
        cutoffs.Length is >= 1 and <= MaxAdaptiveSoftmaxClusters && cutoffs[0] > 0 && cutoffs[^1] < VocabularySize
        && cutoffs.Zip(cutoffs.Skip(1)).All(p => p.First < p.Second)
        && Width / Math.Pow(4, cutoffs.Length) >= 1;

    private static void Require(bool ok, string field, string rule)
    {
        if (!ok) throw new ArgumentException($"MemoryFormerConfig.{field} {rule}.", field);
    }
}
