using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.MemoryFormer.Configuration;

namespace Microsoft.ML.MemoryFormer.Interop;

/// <summary>
/// The <c>config.json</c> written next to <c>model.safetensors</c>: <see cref="MemoryFormerConfig"/> under the key names of
/// the Hugging Face / GPT-NeoX ecosystem where one exists (docs/scale.md lists them all).
/// </summary>
internal static class SafetensorsConfig
{
    /// <summary>The <c>model_type</c> written and required.</summary>
    public const string ModelType = "memoryformer";

    /// <summary>The format version written; a file with a newer one is refused.</summary>
    public const int FormatVersion = 1;

    /// <summary>Writes <paramref name="c"/> as JSON.</summary>
    public static string ToJson(MemoryFormerConfig c)
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray("MemoryFormerForCausalLM"),
            ["model_type"] = ModelType,
            ["memoryformer_format_version"] = FormatVersion,
            ["torch_dtype"] = "float32",
            ["transformer_kind"] = c.Kind.ToString(),
            ["vocab_size"] = c.VocabularySize,
            ["max_position_embeddings"] = c.ContextLength,
            ["hidden_size"] = c.Width,
            ["num_hidden_layers"] = c.Layers,
            ["num_attention_heads"] = c.Heads,
            ["code_length"] = c.BitsPerChunk,
            ["num_tables"] = c.ChunkCount,
            ["extra_bits"] = c.ExtraBits,
            ["rotary_pct"] = c.RotaryFraction,
            ["rotary_emb_base"] = c.RotaryBase,
            ["weight_function"] = c.WeightFunction.ToString(),
            ["temperature"] = c.Temperature,
            ["norm"] = c.Norm == NormKind.RmsNorm ? "rmsnorm" : "layernorm",
            ["norm_eps"] = c.NormEpsilon,
            ["table_init_std"] = c.TableInitStd,
            ["qkv_init_std"] = c.QkvInitStd,
            ["bias_init_std"] = c.BiasInitStd,
            ["initializer_range"] = c.EmbeddingInitStd,
            ["dropout"] = c.Dropout,
            ["tie_word_embeddings"] = false,
        };
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Reads a config written by <see cref="ToJson"/> and validates it.</summary>
    /// <exception cref="InvalidDataException">A key is missing or has the wrong type, or the config is invalid.</exception>
    public static MemoryFormerConfig FromJson(string json, string path)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"'{path}' is not valid JSON: {e.Message}", e);
        }
        if (node is not JsonObject o) throw new InvalidDataException($"'{path}' does not hold a JSON object.");
        try
        {
            if (Str(o, "model_type") != ModelType)
                throw new InvalidDataException($"'{path}' has model_type '{Str(o, "model_type")}'; only '{ModelType}' configs written by this library are read.");
            if (Int(o, "memoryformer_format_version") > FormatVersion)
                throw new InvalidDataException($"'{path}' has memoryformer_format_version {Int(o, "memoryformer_format_version")}; this library reads up to {FormatVersion}.");
            var config = new MemoryFormerConfig
            {
                Kind = Enum<TransformerKind>(o, "transformer_kind"),
                VocabularySize = Int(o, "vocab_size"),
                ContextLength = Int(o, "max_position_embeddings"),
                Width = Int(o, "hidden_size"),
                Layers = Int(o, "num_hidden_layers"),
                Heads = Int(o, "num_attention_heads"),
                BitsPerChunk = Int(o, "code_length"),
                ExtraBits = Int(o, "extra_bits"),
                RotaryFraction = Num(o, "rotary_pct"),
                RotaryBase = Num(o, "rotary_emb_base"),
                WeightFunction = Enum<HashWeightFunction>(o, "weight_function"),
                Temperature = Num(o, "temperature"),
                Norm = Str(o, "norm") switch
                {
                    "rmsnorm" => NormKind.RmsNorm,
                    "layernorm" => NormKind.LayerNorm,
                    var other => throw new InvalidDataException($"norm is '{other}'; expected 'rmsnorm' or 'layernorm'."),
                },
                NormEpsilon = Num(o, "norm_eps"),
                TableInitStd = Num(o, "table_init_std"),
                QkvInitStd = o["qkv_init_std"] is null ? null : Num(o, "qkv_init_std"),
                BiasInitStd = Num(o, "bias_init_std"),
                EmbeddingInitStd = Num(o, "initializer_range"),
                Dropout = Num(o, "dropout"),
            }.Validate();
            if (o["num_tables"] is not null && Int(o, "num_tables") != config.ChunkCount)
                throw new InvalidDataException($"num_tables is {Int(o, "num_tables")} but hidden_size / code_length is {config.ChunkCount}.");
            return config;
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or ArgumentException or InvalidDataException)
        {
            throw new InvalidDataException($"'{path}' is not a MemoryFormer config: {e.Message}", e);
        }
    }

    private static JsonNode Need(JsonObject o, string key) =>
        o[key] ?? throw new InvalidDataException($"key '{key}' is missing.");

    private static string Str(JsonObject o, string key) => Need(o, key).GetValue<string>();

    private static int Int(JsonObject o, string key) => Need(o, key).GetValue<int>();

    private static double Num(JsonObject o, string key) => Need(o, key).GetValue<double>();

    private static T Enum<T>(JsonObject o, string key) where T : struct, System.Enum =>
        System.Enum.TryParse<T>(Str(o, key), ignoreCase: false, out var v) && System.Enum.IsDefined(v) ? v
            : throw new InvalidDataException($"{key} is '{Str(o, key)}'; expected one of {string.Join(", ", System.Enum.GetNames<T>())}.");
}
