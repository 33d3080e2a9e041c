using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Onnx;
using Microsoft.ML.MemoryFormer.Text;
using Microsoft.ML.OnnxRuntime;
using DenseTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Onnx;

/// <summary>
/// The exported graphs against the torch forward pass of the same weights (ONNX Runtime CPU, tolerance
/// <see cref="OnnxRunner.RelativeTolerance"/>), on padded batches and with exact zeros in the hashed inputs.
/// </summary>
public class OnnxModelEquivalenceTests
{
    private const int ZeroedToken = 5;

    private static MemoryFormerConfig Tiny(TransformerKind kind, NormKind norm, HashWeightFunction function, double rotary) =>
        MemoryFormerConfig.Nano with
        {
            Width = 32, Heads = 2, Layers = 2, Kind = kind, Norm = norm, WeightFunction = function, Temperature = 0.7,
            RotaryFraction = rotary, Dropout = 0, NormEpsilon = norm == NormKind.LayerNorm ? 1e-5 : MemoryFormerConfig.Nano.NormEpsilon,
        };

    /// <summary>Every second element of token <see cref="ZeroedToken"/>'s embedding is exactly 0, so after RMSNorm
    /// the first hash sees exact zeros next to non-zeros (z = 0 must give bit 1).</summary>
    private static void ZeroHalfOfOneEmbedding(TransformerBackbone backbone)
    {
        using var noGrad = no_grad();
        var row = backbone.Embedding.weight![ZeroedToken];
        row.index_put_(0f, TensorIndex.Slice(0, null, 2));
    }

    private static (long[] Ids, long[] Mask, Tensor Tokens, Tensor KeyMask) PaddedRows(int[][] rows, int padId)
    {
        var (tokens, mask) = PaddedBatch.Create(rows, padId, CPU);
        Assert.NotNull(mask);
        return (tokens.data<long>().ToArray(), mask!.to(ScalarType.Int64).data<long>().ToArray(), tokens, mask);
    }

    private static byte[] Bytes(Action<Stream> write)
    {
        using var stream = new MemoryStream();
        write(stream);
        return stream.ToArray();
    }

    [Theory]
    [InlineData(TransformerKind.MemoryFormer, NormKind.RmsNorm, HashWeightFunction.L1ScaledSigmoidProduct, 0.25)]
    [InlineData(TransformerKind.MemoryFormer, NormKind.RmsNorm, HashWeightFunction.SigmoidProduct, 1.0)]
    [InlineData(TransformerKind.MemoryFormer, NormKind.LayerNorm, HashWeightFunction.L1ScaledSigmoidProduct, 0.5)]
    [InlineData(TransformerKind.Dense, NormKind.RmsNorm, HashWeightFunction.L1ScaledSigmoidProduct, 0.25)]
    public void Language_model_logits_match_torch_on_a_padded_batch_with_exact_zeros(
        TransformerKind kind, NormKind norm, HashWeightFunction function, double rotary)
    {
        torch.manual_seed(11);
        using var model = new LanguageModel(Tiny(kind, norm, function, rotary));
        model.eval();
        ZeroHalfOfOneEmbedding(model.Backbone);
        int[][] rows = [[1, ZeroedToken, 9, 33, ZeroedToken, 2, 60, 7], [ZeroedToken, 4, 8]];
        var (ids, mask, tokens, keyMask) = PaddedRows(rows, padId: 0);

        float[] expected;
        using (no_grad())
            expected = model.Forward(tokens, new AttentionContext(Causal: true, KeyMask: keyMask)).data<float>().ToArray();
        var onnx = OnnxRunner.Run(Bytes(s => model.ExportToOnnx(s)),
            OnnxRunner.Longs(MemoryFormerOnnxNames.InputIds, ids, 2, 8), OnnxRunner.Longs(MemoryFormerOnnxNames.AttentionMask, mask, 2, 8));

        var (logits, shape) = onnx[MemoryFormerOnnxNames.Logits];
        Assert.Equal([2, 8, 64], shape);
        OnnxRunner.AssertClose(expected, logits, "logits");
    }

    [Theory]
    [InlineData(TransformerKind.MemoryFormer)]
    [InlineData(TransformerKind.Dense)]
    public void Language_model_with_a_kv_cache_decodes_step_by_step_like_torch(TransformerKind kind)
    {
        torch.manual_seed(13);
        var config = Tiny(kind, NormKind.RmsNorm, HashWeightFunction.L1ScaledSigmoidProduct, 0.25);
        using var model = new LanguageModel(config);
        model.eval();
        ZeroHalfOfOneEmbedding(model.Backbone);
        using var session = new InferenceSession(Bytes(s => model.ExportToOnnx(s, kvCache: true)));
        var caches = model.Backbone.NewCaches(2, CPU);
        int[] cacheShape = [2, config.Heads, 0, config.HeadWidth];
        var past = Enumerable.Range(0, 2 * config.Layers).Select(_ => new DenseTensor(Array.Empty<float>(), cacheShape)).ToArray();
        long[][] steps = [[3, 9, ZeroedToken, 2, 0, 0, 7, 5], [8, 11], [1, ZeroedToken]];   // a prompt of 4 (row 1 left-padded), then 2 steps
        var mask = new List<long[]> { new long[] { 1, 1, 1, 1 }, new long[] { 0, 0, 1, 1 } };
        try
        {
            foreach (var step in steps)
            {
                int t = step.Length / 2;
                if (mask[0].Length < caches[0].Length + t)
                    for (int r = 0; r < 2; r++) mask[r] = [.. mask[r], .. Enumerable.Repeat(1L, t)];
                var flatMask = mask.SelectMany(m => m).ToArray();
                float[] expected;
                using (no_grad())
                {
                    var keyMask = tensor(flatMask.Select(m => m == 1).ToArray(), [2, flatMask.Length / 2]);
                    expected = model.Forward(tensor(step, [2, t]), new AttentionContext(true, keyMask, caches)).data<float>().ToArray();
                }
                var inputs = new List<NamedOnnxValue>
                {
                    OnnxRunner.Longs(MemoryFormerOnnxNames.InputIds, step, 2, t),
                    OnnxRunner.Longs(MemoryFormerOnnxNames.AttentionMask, flatMask, 2, flatMask.Length / 2),
                };
                for (int i = 0; i < config.Layers; i++)
                {
                    inputs.Add(NamedOnnxValue.CreateFromTensor(MemoryFormerOnnxNames.PastKeyPrefix + i, past[2 * i]));
                    inputs.Add(NamedOnnxValue.CreateFromTensor(MemoryFormerOnnxNames.PastValuePrefix + i, past[2 * i + 1]));
                }
                using var results = session.Run(inputs);
                var byName = results.ToDictionary(r => r.Name, r => r.AsTensor<float>());
                OnnxRunner.AssertClose(expected, byName[MemoryFormerOnnxNames.Logits].ToArray(), $"logits after {caches[0].Length - t} cached positions");
                for (int i = 0; i < config.Layers; i++)
                {
                    past[2 * i] = byName[MemoryFormerOnnxNames.PresentKeyPrefix + i].ToDenseTensor();
                    past[2 * i + 1] = byName[MemoryFormerOnnxNames.PresentValuePrefix + i].ToDenseTensor();
                }
                Assert.Equal(caches[0].Length, past[0].Dimensions[2]);
            }
        }
        finally
        {
            foreach (var cache in caches) cache.Dispose();
        }
    }

    [Fact]
    public void The_exact_zero_embedding_reaches_the_first_hash_as_exact_zeros()
    {
        torch.manual_seed(11);
        using var model = new LanguageModel(Tiny(TransformerKind.MemoryFormer, NormKind.RmsNorm, HashWeightFunction.L1ScaledSigmoidProduct, 0.25));
        ZeroHalfOfOneEmbedding(model.Backbone);
        using var noGrad = no_grad();
        var normed = model.Backbone.Blocks[0].AttentionNorm.call(model.Backbone.Embed(tensor(new long[] { ZeroedToken })));
        var values = normed.data<float>().ToArray();
        Assert.All(values.Where((_, i) => i % 2 == 0), v => Assert.Equal(0f, v));
        Assert.All(values.Where((_, i) => i % 2 == 1), v => Assert.NotEqual(0f, v));
        var codes = SignHash.Reference(normed, 4, HashWeightFunction.L1ScaledSigmoidProduct, 1);
        Assert.All(codes.Rows.data<long>().ToArray().Select((row, k) => (row - (k << 4)) & 0b1010), bits => Assert.Equal(0b1010, bits));
    }

    [Theory]
    [InlineData(PoolingKind.First)]
    [InlineData(PoolingKind.Mean)]
    [InlineData(PoolingKind.Last)]
    public void Text_classifier_logits_match_torch_for_each_pooling_on_a_padded_batch(PoolingKind pooling)
    {
        torch.manual_seed(5);
        var tokenizer = new ByteLevelTokenizer();
        var config = Tiny(TransformerKind.MemoryFormer, NormKind.RmsNorm, HashWeightFunction.L1ScaledSigmoidProduct, 0.25)
            with { VocabularySize = tokenizer.ModelVocabularySize, ContextLength = 24 };
        var network = new SequenceClassifier(config, 3, pooling, 0);
        using var model = new TextClassifierModel(network, tokenizer, 24, CPU);
        var encoder = new TextPairEncoder(model.Tokenizer, 24);
        int[][] rows = [encoder.Encode("a longer row of text"), encoder.Encode("short"), encoder.Encode("mid length", "pair")];
        var (ids, mask, tokens, keyMask) = PaddedRows(rows, encoder.PadId);
        int t = (int)tokens.shape[1];

        float[] expected;
        using (no_grad()) expected = network.Forward(tokens, keyMask).data<float>().ToArray();
        var onnx = OnnxRunner.Run(Bytes(s => OnnxModelExporter.Write(
                OnnxModelExporter.TextClassifier(model, PredictionKind.MulticlassClassification, ["a", "b", "c"]), s)),
            OnnxRunner.Longs(MemoryFormerOnnxNames.InputIds, ids, 3, t), OnnxRunner.Longs(MemoryFormerOnnxNames.AttentionMask, mask, 3, t));

        OnnxRunner.AssertClose(expected, onnx[MemoryFormerOnnxNames.Logits].Values, "logits");
        var probabilities = onnx[MemoryFormerOnnxNames.Probabilities].Values;
        for (int r = 0; r < 3; r++)
            Assert.Equal(1f, probabilities.AsSpan(r * 3, 3).ToArray().Sum(), 4);
    }

    [Fact]
    public void A_temperature_scaled_text_classifier_exports_the_probabilities_it_scores()
    {
        torch.manual_seed(5);
        var tokenizer = new ByteLevelTokenizer();
        var config = Tiny(TransformerKind.MemoryFormer, NormKind.RmsNorm, HashWeightFunction.L1ScaledSigmoidProduct, 0.25)
            with { VocabularySize = tokenizer.ModelVocabularySize, ContextLength = 24 };
        var network = new SequenceClassifier(config, 3, PoolingKind.Mean, 0);
        using (no_grad()) network.Head.named_parameters().ToList().ForEach(p => p.parameter.mul_(30));   // logits of a few units
        using var model = new TextClassifierModel(network, tokenizer, 24, CPU, temperature: 2.5);
        var encoder = new TextPairEncoder(model.Tokenizer, 24);
        (string, string?)[] texts = [("a longer row of text", null), ("short", null), ("mid length", "pair")];
        var (ids, mask, tokens, _) = PaddedRows(texts.Select(r => encoder.Encode(r.Item1, r.Item2)).ToArray(), encoder.PadId);
        int t = (int)tokens.shape[1];

        var expected = model.LogProbabilities(texts).SelectMany(row => row.Select(MathF.Exp)).ToArray();
        var onnx = OnnxRunner.Run(Bytes(s => OnnxModelExporter.Write(
                OnnxModelExporter.TextClassifier(model, PredictionKind.MulticlassClassification, ["a", "b", "c"]), s)),
            OnnxRunner.Longs(MemoryFormerOnnxNames.InputIds, ids, 3, t), OnnxRunner.Longs(MemoryFormerOnnxNames.AttentionMask, mask, 3, t));
        OnnxRunner.AssertClose(expected, onnx[MemoryFormerOnnxNames.Probabilities].Values, "probabilities");
    }

    [Fact]
    public void Metadata_describes_the_tokenizer_and_the_axes_are_dynamic()
    {
        torch.manual_seed(2);
        var tokenizer = new ByteLevelTokenizer();
        using var model = new LanguageModel(MemoryFormerConfig.Nano with { VocabularySize = tokenizer.ModelVocabularySize });
        using var session = new InferenceSession(Bytes(s => model.ExportToOnnx(s, tokenizer)));

        var metadata = session.ModelMetadata.CustomMetadataMap;
        Assert.Equal("LanguageModel", metadata[MemoryFormerOnnxNames.ModelKindKey]);
        var rebuilt = ITextTokenizer.FromDescription(TokenizerDescription.FromJson(metadata[MemoryFormerOnnxNames.TokenizerKey]));
        Assert.Equal(tokenizer.Encode("héllo, onnx"), rebuilt.Encode("héllo, onnx"));
        Assert.Equal(model.Config, MemoryFormerConfig.FromJson(metadata[MemoryFormerOnnxNames.ConfigKey]));
        Assert.Equal(["batch", "sequence"], session.InputMetadata[MemoryFormerOnnxNames.InputIds].SymbolicDimensions);
        Assert.Equal(["batch", "sequence", ""], session.OutputMetadata[MemoryFormerOnnxNames.Logits].SymbolicDimensions);
        Assert.Equal(tokenizer.ModelVocabularySize, session.OutputMetadata[MemoryFormerOnnxNames.Logits].Dimensions[2]);
    }

    [Fact]
    public void Exporting_the_same_model_twice_gives_identical_bytes()
    {
        torch.manual_seed(4);
        using var model = new LanguageModel(MemoryFormerConfig.Nano);
        var first = Bytes(s => model.ExportToOnnx(s, kvCache: true));
        Assert.Equal(first, Bytes(s => model.ExportToOnnx(s, kvCache: true)));
        Assert.NotEqual(first, Bytes(s => model.ExportToOnnx(s)));
    }

    [Fact]
    public void Export_to_a_read_only_stream_is_refused_with_a_clear_message()
    {
        using var model = new LanguageModel(MemoryFormerConfig.Nano);
        using var readOnly = new MemoryStream([], writable: false);
        var e = Assert.Throws<ArgumentException>(() => model.ExportToOnnx(readOnly));
        Assert.Contains("writable", e.Message, StringComparison.Ordinal);
    }
}
