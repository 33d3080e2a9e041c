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
internal sealed class TextClassifierModel : IDisposable
{
    /// <summary>Archive entry with the head settings (JSON).</summary>
    public const string HeadEntry = "head.json";

    private sealed record HeadSettings(int Classes, PoolingKind Pooling, int MaxTokensPerRow);

    private readonly SequenceClassifier network;
    private readonly TextPairEncoder encoder;
    private readonly Device device;

    public TextClassifierModel(SequenceClassifier network, ITextTokenizer tokenizer, int maxTokensPerRow, Device device)
    {
        this.network = network;
        this.device = device;
        Tokenizer = tokenizer;
        encoder = new TextPairEncoder(tokenizer, maxTokensPerRow);
        network.to(device).eval();
    }

    /// <summary>Number of classes.</summary>
    public int Classes => network.Head.Outputs;

    /// <summary>The tokenizer rows are encoded with.</summary>
    public ITextTokenizer Tokenizer { get; }

    /// <summary>Longest token row (see <see cref="TextPairEncoder"/> for the truncation policy).</summary>
    public int MaxTokensPerRow => encoder.MaxTokens;

    /// <summary>The network (for tests and inspection).</summary>
    public SequenceClassifier Network => network;

    /// <summary>Log-probabilities of each class for each row, as one padded batch.</summary>
    public float[][] LogProbabilities(IReadOnlyList<(string Text, string? Second)> rows)
    {
        if (rows.Count == 0) return [];
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var encoded = rows.Select(r => encoder.Encode(r.Text, r.Second)).ToArray();
        var (tokens, mask) = PaddedBatch.Create(encoded, encoder.PadId, device);           // [B, T]
        var logProbs = F.log_softmax(network.Forward(tokens, mask), 1).cpu();              // [B, C]
        var flat = logProbs.data<float>().ToArray();
        return Enumerable.Range(0, rows.Count).Select(i => flat.AsSpan(i * Classes, Classes).ToArray()).ToArray();
    }

    /// <summary>The model as archive entries: config, tokenizer, head settings and weights.</summary>
    public ModelArchive ToArchive() => new ModelArchive()
        .SetText(ModelArchive.ConfigEntry, network.Config.ToJson())
        .SetText(ModelArchive.TokenizerEntry, Tokenizer.Describe().ToJson())
        .SetText(HeadEntry, JsonSerializer.Serialize(new HeadSettings(Classes, network.Head.Pooling, MaxTokensPerRow)))
        .WithWeights(network);

    /// <summary>Rebuilds a model written by <see cref="ToArchive"/> on <paramref name="device"/>.</summary>
    public static TextClassifierModel FromArchive(ModelArchive archive, Device device)
    {
        var config = archive.GetJson(ModelArchive.ConfigEntry, MemoryFormerConfig.FromJson);
        var head = archive.GetJson(HeadEntry, json => JsonSerializer.Deserialize<HeadSettings>(json) is { Classes: >= 1, MaxTokensPerRow: >= 1 } read
            && Enum.IsDefined(read.Pooling) ? read : throw new ArgumentException("Classes and MaxTokensPerRow must be positive and Pooling known."));
        var tokenizer = archive.GetJson(ModelArchive.TokenizerEntry, json => ITextTokenizer.FromDescription(TokenizerDescription.FromJson(json)));
        ModelParts.CheckTokenizerFits(tokenizer, config);
        ModuleWeights.CheckSizeFits(config, archive, headParameters: (double)head.Classes * config.Width);
        return ModuleLoader.Load(archive, config, () => new SequenceClassifier(config, head.Classes, head.Pooling, config.Dropout),
            device, network => new TextClassifierModel(network, tokenizer, head.MaxTokensPerRow, device));
    }

    public void Dispose() => network.Dispose();
}
