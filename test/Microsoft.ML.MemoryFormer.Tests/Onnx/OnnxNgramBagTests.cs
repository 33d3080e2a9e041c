using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Onnx;
using Microsoft.ML.MemoryFormer.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Onnx;

/// <summary>A text classifier with the wide branch (<see cref="HashedNgramBag"/>) exports the logits it computes.</summary>
public class OnnxNgramBagTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Text_classifier_with_an_ngram_bag_matches_torch_on_a_padded_batch(int ngramLength)
    {
        torch.manual_seed(5);
        var tokenizer = new ByteLevelTokenizer();
        var config = MemoryFormerConfig.Nano with      // the configuration OnnxModelEquivalenceTests checks without the bag
        {
            Width = 32, Heads = 2, Layers = 2, Kind = TransformerKind.MemoryFormer, Norm = NormKind.RmsNorm,
            WeightFunction = HashWeightFunction.L1ScaledSigmoidProduct, Temperature = 0.7, RotaryFraction = 0.25, Dropout = 0,
            VocabularySize = tokenizer.ModelVocabularySize, ContextLength = 24,
        };
        var network = new SequenceClassifier(config, 3, PoolingKind.Mean, 0, ngramBuckets: 97, ngramLength);
        using (no_grad())
            network.NgramBag!.Table.copy_(arange(network.NgramBag.Table.numel(), dtype: ScalarType.Float32).view(97, 32).sin());
        using var model = new TextClassifierModel(network, tokenizer, 24, CPU);
        var encoder = new TextPairEncoder(model.Tokenizer, 24);
        int[][] rows = [encoder.Encode("a longer row of text"), encoder.Encode("short"), encoder.Encode("mid length", "pair")];
        var (tokens, keyMask) = PaddedBatch.Create(rows, encoder.PadId, CPU);
        var ids = tokens.data<long>().ToArray();
        var mask = keyMask!.to(ScalarType.Int64).data<long>().ToArray();
        int t = (int)tokens.shape[1];

        float[] expected, withoutBag;
        using (no_grad())
        {
            expected = network.Forward(tokens, keyMask).data<float>().ToArray();
            withoutBag = network.Head.Forward(network.Backbone.Forward(tokens, new Microsoft.ML.MemoryFormer.Layers.AttentionContext(Causal: false, KeyMask: keyMask)), keyMask)
                .data<float>().ToArray();
        }
        Assert.NotEqual(withoutBag, expected);
        using var stream = new MemoryStream();
        OnnxModelExporter.Write(OnnxModelExporter.TextClassifier(model, PredictionKind.MulticlassClassification, ["a", "b", "c"]), stream);
        var onnx = OnnxRunner.Run(stream.ToArray(),
            OnnxRunner.Longs(MemoryFormerOnnxNames.InputIds, ids, 3, t), OnnxRunner.Longs(MemoryFormerOnnxNames.AttentionMask, mask, 3, t));
        OnnxRunner.AssertClose(expected, onnx[MemoryFormerOnnxNames.Logits].Values, "logits");
    }
}
