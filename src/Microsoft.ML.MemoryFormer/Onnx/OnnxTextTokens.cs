using System.Globalization;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Onnx.Protobuf;
using Microsoft.ML.MemoryFormer.Text;

namespace Microsoft.ML.MemoryFormer.Onnx;

/// <summary>
/// The ML.NET step in front of an exported text classifier: encodes a text column (or a pair) with the tokenizer and
/// row layout in the ONNX model's metadata into fixed-length <c>input_ids</c> and <c>attention_mask</c> vectors of
/// max_tokens_per_row slots (padding masked out), the inputs <c>ApplyOnnxModel</c> feeds the graph.
/// </summary>
internal static class OnnxTextTokens
{
    public sealed class SingleText
    {
        public string Text { get; set; } = "";
    }

    public sealed class TextPair
    {
        public string Text { get; set; } = "";
        public string Second { get; set; } = "";
    }

    public sealed class Tokens
    {
        public long[] InputIds { get; set; } = [];
        public long[] AttentionMask { get; set; } = [];
    }

    /// <summary>The encoder described by the metadata of the ONNX model in <paramref name="onnxModel"/>.</summary>
    public static TextPairEncoder ReadEncoder(Stream onnxModel)
    {
        var metadata = ModelProto.Parser.ParseFrom(onnxModel).MetadataProps.ToDictionary(p => p.Key, p => p.Value);
        if (!metadata.TryGetValue(MemoryFormerOnnxNames.TokenizerKey, out var tokenizer)
            || !metadata.TryGetValue(MemoryFormerOnnxNames.MaxTokensPerRowKey, out var maxTokens))
            throw new ArgumentException($"The ONNX model has no '{MemoryFormerOnnxNames.TokenizerKey}' and " +
                $"'{MemoryFormerOnnxNames.MaxTokensPerRowKey}' metadata: export it with ExportToOnnx/ConvertToOnnx from a " +
                "MemoryFormer text classifier.", nameof(onnxModel));
        return new TextPairEncoder(ITextTokenizer.FromDescription(TokenizerDescription.FromJson(tokenizer)),
            int.Parse(maxTokens, CultureInfo.InvariantCulture));
    }

    /// <summary>The CustomMapping estimator reading <paramref name="text"/> (and <paramref name="second"/>).</summary>
    public static IEstimator<ITransformer> Estimator(TransformsCatalog catalog, TextPairEncoder encoder, string text, string? second)
    {
        var output = SchemaDefinition.Create(typeof(Tokens));
        var vector = new VectorDataViewType(NumberDataViewType.Int64, encoder.MaxTokens);
        (output[0].ColumnName, output[0].ColumnType) = (MemoryFormerOnnxNames.InputIds, vector);
        (output[1].ColumnName, output[1].ColumnType) = (MemoryFormerOnnxNames.AttentionMask, vector);
        if (second is null)
        {
            var input = SchemaDefinition.Create(typeof(SingleText));
            input[0].ColumnName = text;
            return catalog.CustomMapping<SingleText, Tokens>((row, tokens) => Fill(encoder.Encode(row.Text), encoder, tokens),
                contractName: null, input, output);
        }
        var pair = SchemaDefinition.Create(typeof(TextPair));
        (pair[0].ColumnName, pair[1].ColumnName) = (text, second);
        return catalog.CustomMapping<TextPair, Tokens>((row, tokens) => Fill(encoder.Encode(row.Text, row.Second), encoder, tokens),
            contractName: null, pair, output);
    }

    private static void Fill(int[] row, TextPairEncoder encoder, Tokens tokens)
    {
        int n = encoder.MaxTokens;
        tokens.InputIds = new long[n];
        tokens.AttentionMask = new long[n];
        for (int j = 0; j < n; j++)
            (tokens.InputIds[j], tokens.AttentionMask[j]) = j < row.Length ? (row[j], 1L) : (encoder.PadId, 0L);
    }
}
