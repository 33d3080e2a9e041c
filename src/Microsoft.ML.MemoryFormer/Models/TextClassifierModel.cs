using System.Text.Json;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Text;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// A trained text classifier, independent of ML.NET: encodes rows with its tokenizer, runs the encoder in eval mode
/// and returns log-probabilities; saves to and loads from a <see cref="ModelArchive"/>.
/// </summary>
/// <remarks>
/// A row longer than one window is read as up to <see cref="MaxWindowsPerRow"/> windows whose logits are averaged
/// (<see cref="TextPairEncoder.EncodeWindows"/>, <see cref="SequencePooling.MeanOverWindows"/>); the logits are divided by
/// <see cref="Temperature"/> before the softmax. Models saved before these settings existed load with one window,
/// temperature 1 and no n-gram bag (<see cref="HashedNgramBag"/>), and score exactly as before.
/// </remarks>
internal sealed class TextClassifierModel : IDisposable
{
    /// <summary>Archive entry with the head settings (JSON).</summary>
    public const string HeadEntry = "head.json";

    private sealed record HeadSettings(int Classes, PoolingKind Pooling, int MaxTokensPerRow, int MaxWindowsPerRow = 1, double Temperature = 1,
        int NgramBuckets = 0, int NgramLength = 2);

    private readonly SequenceClassifier network;
    private readonly TextPairEncoder encoder;
    private readonly Device device;

    public TextClassifierModel(SequenceClassifier network, ITextTokenizer tokenizer, int maxTokensPerRow, Device device,
        int maxWindowsPerRow = 1, double temperature = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxWindowsPerRow, 1);
        if (!(temperature > 0 && double.IsFinite(temperature)))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "The temperature must be positive and finite.");
        this.network = network;
        this.device = device;
        Tokenizer = tokenizer;
        MaxWindowsPerRow = maxWindowsPerRow;
        Temperature = temperature;
        encoder = new TextPairEncoder(tokenizer, maxTokensPerRow);
        network.to(device).eval();
    }

    /// <summary>Number of classes.</summary>
    public int Classes => network.Head.Outputs;

    /// <summary>The tokenizer rows are encoded with.</summary>
    public ITextTokenizer Tokenizer { get; }

    /// <summary>Longest token row (see <see cref="TextPairEncoder"/> for the truncation policy).</summary>
    public int MaxTokensPerRow => encoder.MaxTokens;

    /// <summary>Most windows of <see cref="MaxTokensPerRow"/> tokens read from one row (1 = the row's head only).</summary>
    public int MaxWindowsPerRow { get; }

    /// <summary>The logits are divided by this before the softmax (1 = uncalibrated; fitted on validation rows).</summary>
    public double Temperature { get; }

    /// <summary>The network (for tests and inspection).</summary>
    public SequenceClassifier Network => network;

    /// <summary>Log-probabilities of each class for each row, as one padded batch.</summary>
    public float[][] LogProbabilities(IReadOnlyList<(string Text, string? Second)> rows)
    {
        if (rows.Count == 0) return [];
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var encoded = rows.Select(r => encoder.EncodeWindows(r.Text, r.Second, MaxWindowsPerRow)).ToArray();
        var (tokens, mask) = PaddedBatch.Create(encoded.SelectMany(w => w).ToArray(), encoder.PadId, device); // [W, T]
        var logits = SequencePooling.MeanOverWindows(network.Forward(tokens, mask), encoded.Select(w => w.Length).ToArray()); // [B, C]
        if (Temperature != 1) logits = logits / Temperature;
        var logProbs = F.log_softmax(logits, 1).cpu();                                     // [B, C]
        var flat = logProbs.data<float>().ToArray();
        return Enumerable.Range(0, rows.Count).Select(i => flat.AsSpan(i * Classes, Classes).ToArray()).ToArray();
    }

    /// <summary>The model as archive entries: config, tokenizer, head settings and weights.</summary>
    public ModelArchive ToArchive() => new ModelArchive()
        .SetText(ModelArchive.ConfigEntry, network.Config.ToJson())
        .SetText(ModelArchive.TokenizerEntry, Tokenizer.Describe().ToJson())
        .SetText(HeadEntry, JsonSerializer.Serialize(new HeadSettings(Classes, network.Head.Pooling, MaxTokensPerRow, MaxWindowsPerRow, Temperature,
            network.NgramBag?.Buckets ?? 0, network.NgramBag?.NgramLength ?? 2)))
        .WithWeights(network);

    /// <summary>Rebuilds a model written by <see cref="ToArchive"/> on <paramref name="device"/>.</summary>
    public static TextClassifierModel FromArchive(ModelArchive archive, Device device)
    {
        var config = archive.GetJson(ModelArchive.ConfigEntry, MemoryFormerConfig.FromJson);
        var head = archive.GetJson(HeadEntry, json => JsonSerializer.Deserialize<HeadSettings>(json) is { Classes: >= 1, MaxTokensPerRow: >= 1, MaxWindowsPerRow: >= 1 } read
            && Enum.IsDefined(read.Pooling) && read.Temperature > 0 && double.IsFinite(read.Temperature)
            && read.NgramBuckets >= 0 && read.NgramLength is >= 1 and <= 3 ? read
            : throw new ArgumentException("Classes, MaxTokensPerRow, MaxWindowsPerRow and Temperature must be positive, Pooling known, " +
                "NgramBuckets ≥ 0 and NgramLength in [1, 3]."));
        var tokenizer = archive.GetJson(ModelArchive.TokenizerEntry, json => ITextTokenizer.FromDescription(TokenizerDescription.FromJson(json)));
        ModelParts.CheckTokenizerFits(tokenizer, config);
        ModuleWeights.CheckSizeFits(config, archive, headParameters: ((double)head.Classes + head.NgramBuckets) * config.Width);
        return ModuleLoader.Load(archive, config,
            () => new SequenceClassifier(config, head.Classes, head.Pooling, config.Dropout, head.NgramBuckets, head.NgramLength),
            device, network => new TextClassifierModel(network, tokenizer, head.MaxTokensPerRow, device, head.MaxWindowsPerRow, head.Temperature));
    }

    public void Dispose() => network.Dispose();
}
