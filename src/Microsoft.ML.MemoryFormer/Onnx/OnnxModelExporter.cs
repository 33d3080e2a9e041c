using System.Globalization;
using System.Text.Json;
using Google.Protobuf;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Onnx.Protobuf;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;
using DataType = Microsoft.ML.MemoryFormer.Onnx.Protobuf.TensorProto.Types.DataType;
using N = Microsoft.ML.MemoryFormer.Onnx.MemoryFormerOnnxNames;

namespace Microsoft.ML.MemoryFormer.Onnx;

/// <summary>
/// Builds the ONNX model of each model kind (names in <see cref="MemoryFormerOnnxNames"/>): the weights are copied
/// from the torch modules, the graph is the eval-mode forward pass (dropout is the identity) in standard operators.
/// </summary>
internal static class OnnxModelExporter
{
    /// <summary>ONNX IR version 8 (the first with opset 18 readers; ONNX Runtime 1.14 and later).</summary>
    private const long IrVersion = 8;

    private const long MaxModelBytes = int.MaxValue;   // protobuf's 2 GiB message limit

    private static readonly object[] TokenDims = ["batch", "sequence"];

    /// <summary>
    /// Token ids (and attention mask) → next-token logits [batch, sequence, vocabulary], causal. With
    /// <paramref name="kvCache"/>, the graph also takes each layer's past keys/values and returns the present ones
    /// (incremental decoding; see <see cref="MemoryFormerOnnxNames.PastKeyPrefix"/>).
    /// </summary>
    public static ModelProto LanguageModel(LanguageModel model, ITextTokenizer? tokenizer, bool kvCache = false)
    {
        model.ThrowIfAdaptiveHead("ONNX export");
        var config = model.Config;
        var g = new OnnxGraphBuilder();
        g.Graph.Name = kvCache ? "MemoryFormerLanguageModelWithCache" : "MemoryFormerLanguageModel";
        var writer = new OnnxBackboneWriter(g, model.Backbone);
        var (ids, mask) = TokenInputs(g, kvCache ? "total_sequence" : "sequence");
        object[] cacheDims = ["batch", config.Heads, "past_sequence", config.HeadWidth];
        var caches = !kvCache ? null : Enumerable.Range(0, config.Layers).Select(i => new OnnxBackboneWriter.LayerCache(
            g.Input(N.PastKeyPrefix + i, DataType.Float, cacheDims, $"Layer {i}'s keys (after rotary) of the past positions."),
            g.Input(N.PastValuePrefix + i, DataType.Float, cacheDims, $"Layer {i}'s values of the past positions."))).ToArray();
        var pass = writer.NewPass(ids, causal: true, mask, caches);
        var hidden = writer.Blocks(writer.Embed(ids), pass);                                    // [B, T, d]
        var logits = g.Linear(hidden, model.Head.weight!, null, "lm_head");                     // [B, T, V]
        g.Output(logits, N.Logits, DataType.Float, ["batch", "sequence", config.VocabularySize],
            "Next-token logits at every position (causal: position t sees positions 0 … t, after the past ones).");
        object[] presentDims = ["batch", config.Heads, "total_sequence", config.HeadWidth];
        for (int i = 0; caches is not null && i < caches.Length; i++)
        {
            g.Output(caches[i].PresentKey!, N.PresentKeyPrefix + i, DataType.Float, presentDims, $"Layer {i}'s past and new keys.");
            g.Output(caches[i].PresentValue!, N.PresentValuePrefix + i, DataType.Float, presentDims, $"Layer {i}'s past and new values.");
        }
        var metadata = new Dictionary<string, string> { [N.ModelKindKey] = "LanguageModel", [N.ConfigKey] = config.ToJson() };
        if (tokenizer is not null)
        {
            metadata[N.TokenizerKey] = tokenizer.Describe().ToJson();
            metadata[N.PadIdKey] = (tokenizer.PadId ?? tokenizer.EndOfTextId).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        return Model(g, "MemoryFormer causal language model: input_ids and attention_mask [batch, sequence] → logits " +
            "[batch, sequence, vocabulary]. Rows may be left-padded (rotary scores depend on relative positions only)." +
            (kvCache ? " With a KV cache: attention_mask covers past and new positions; feed present_key.i/present_value.i " +
                "back as past_key.i/past_value.i (start with past_sequence = 0)." : ""), metadata);
    }

    /// <summary>Token ids and attention mask → class logits and probabilities [batch, classes].</summary>
    public static ModelProto TextClassifier(TextClassifierModel model, PredictionKind kind, IReadOnlyList<string>? classNames)
    {
        var network = model.Network;
        var g = new OnnxGraphBuilder();
        g.Graph.Name = "MemoryFormerTextClassifier";
        var writer = new OnnxBackboneWriter(g, network.Backbone);
        var (ids, mask) = TokenInputs(g);
        var hidden = writer.Blocks(writer.Embed(ids), writer.NewPass(ids, causal: false, mask)); // [B, T, d]
        var logits = Head(g, network.Head, Pool(g, hidden, mask, network.Head.Pooling));        // [B, C]
        if (network.NgramBag is { } bag) logits = OnnxNgramBagWriter.AddTo(g, bag, network.Head, ids, mask, logits);
        if (model.Temperature != 1) logits = g.Div(logits, g.Float((float)model.Temperature), "calibrated_logits");
        ClassOutputs(g, logits, model.Classes);
        var tokenizer = model.Tokenizer;
        var metadata = new Dictionary<string, string>
        {
            [N.ModelKindKey] = "TextClassifier",
            [N.ConfigKey] = network.Config.ToJson(),
            [N.TokenizerKey] = tokenizer.Describe().ToJson(),
            [N.MaxTokensPerRowKey] = model.MaxTokensPerRow.ToString(System.Globalization.CultureInfo.InvariantCulture),
            [N.PadIdKey] = (tokenizer.PadId ?? tokenizer.EndOfTextId).ToString(System.Globalization.CultureInfo.InvariantCulture),
            [N.RowLayoutKey] = $"[{tokenizer.EndOfTextId}] + tokens(text) (+ [{tokenizer.EndOfTextId}] + tokens(second text)), " +
                $"at most {model.MaxTokensPerRow} ids; padded positions have attention_mask 0" + (model.MaxWindowsPerRow == 1 ? "" :
                $"; the trained model reads a longer single text as up to {model.MaxWindowsPerRow} such windows" +
                (model.WindowLayout == WindowLayout.LastMovedBack ? "" : $" (cut as WindowLayout.{model.WindowLayout})") +
                " and averages their logits: this graph scores one window, so average its logits over the windows outside it"),
            [N.PredictionKindKey] = kind.ToString(),
        };
        if (classNames is not null) metadata[N.ClassNamesKey] = JsonSerializer.Serialize(classNames);
        return Model(g, "MemoryFormer text classifier: input_ids and attention_mask [batch, sequence] → logits and " +
            "probabilities [batch, classes]. Tokenize outside the graph with the tokenizer in the metadata.", metadata);
    }

    /// <summary>
    /// Raw features [batch, F] → logits and probabilities, or the regression score in label units. Several members (a deep
    /// ensemble) predict as <see cref="TabularEnsemblePredictor"/> does: each standardises with its own statistics, and the
    /// graph returns the members' mean score, or their mean class probabilities with the log of that mean as the logits.
    /// </summary>
    public static ModelProto Tabular(IReadOnlyList<TabularPredictor> members)
    {
        var info = members[0].Info;
        var g = new OnnxGraphBuilder();
        g.Graph.Name = "MemoryFormerTabular";
        int f = info.InputCount;
        var features = g.Input(N.Features, DataType.Float, ["batch", f],
            "The raw feature vector (before the training standardisation, which the graph applies); NaN = missing.");
        var outputs = members.Select(m => MemberOutputs(g, m.Model, m.Info, features)).ToArray();        // each [B, outputs]
        if (info.Label.Kind == PredictionKind.Regression)
        {
            var scores = members.Select((m, i) => g.Add(g.Mul(outputs[i], g.Float(m.Info.LabelStd), "score_scaled"),
                g.Float(m.Info.LabelMean), "score_value")).ToArray();
            g.Output(Mean(g, scores, "score_mean"), N.Score, DataType.Float, ["batch", 1], "The predicted value in label units" +
                (members.Count > 1 ? $", the mean of the {members.Count} ensemble members'." : "."));
        }
        else if (members.Count == 1) ClassOutputs(g, outputs[0], info.OutputCount);
        else
        {
            var mean = Mean(g, [.. outputs.Select(o => g.Softmax(o, 1, "member_probabilities"))], "mean_probabilities");
            g.Output(g.Unary("Log", mean, "log_mean_probabilities"), N.Logits, DataType.Float, ["batch", info.OutputCount],
                $"The log of the {members.Count} ensemble members' mean class probabilities.");
            g.Output(mean, N.Probabilities, DataType.Float, ["batch", info.OutputCount],
                "The ensemble members' mean class probabilities, in the order of the class names.");
        }
        var metadata = new Dictionary<string, string>
        {
            [N.ModelKindKey] = "Tabular",
            [N.ConfigKey] = members[0].Model.Config.ToJson(),
            [N.PredictionKindKey] = info.Label.Kind.ToString(),
            [N.EnsembleSizeKey] = members.Count.ToString(CultureInfo.InvariantCulture),
        };
        if (info.Label.ClassNames is { } names) metadata[N.ClassNamesKey] = JsonSerializer.Serialize(names);
        return Model(g, $"MemoryFormer tabular model{(members.Count > 1 ? $" (ensemble of {members.Count})" : "")}: features [batch, {f}] → " +
            (info.Label.Kind == PredictionKind.Regression ? "score [batch, 1]." : "logits and probabilities [batch, classes]."), metadata);
    }

    /// <summary>One member's head outputs [B, outputs] from the raw features: its feature expansion, standardisation, tokens,
    /// blocks and head.</summary>
    private static string MemberOutputs(OnnxGraphBuilder g, TabularModel model, TabularModelInfo info, string features)
    {
        int f = info.FeatureCount;
        if (info.Expansion is { } expansion) features = OnnxFeatureExpansionWriter.Apply(g, expansion, features);   // [B, F']
        var scaled = g.Div(g.Sub(features, g.Weight("scaler.means", info.Scaler.Means, [f]), "centred"),
            g.Weight("scaler.stds", info.Scaler.Stds, [f]), "standardised");                   // [B, F]
        var tokens = FeatureTokens(g, model.Tokenizer, scaled);                                  // [B, 1 + G, d]
        var writer = new OnnxBackboneWriter(g, model.Backbone);
        var hidden = writer.Blocks(tokens, writer.NewPass(tokens, causal: false, keyMask: null));
        return Head(g, model.Head, g.Gather(hidden, g.Ints([0], scalar: true), 1, "cls"));       // [B, outputs]
    }

    /// <summary>The elementwise mean of <paramref name="values"/> (the value itself when there is one).</summary>
    private static string Mean(OnnxGraphBuilder g, string[] values, string hint) =>
        values.Length == 1 ? values[0] : g.Div(g.Node("Sum", hint + "_sum", values), g.Float(values.Length), hint);

    /// <summary>Serialises <paramref name="model"/> to <paramref name="stream"/>.</summary>
    public static void Write(ModelProto model, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        long bytes = model.Graph.Initializer.Sum(t => (long)t.RawData.Length);
        if (bytes >= MaxModelBytes)
            throw new NotSupportedException($"The model's weights take {bytes / (1 << 20)} MiB; an ONNX file holds at most 2 GiB " +
                "(protobuf's limit) and external-data export is not implemented. Export a smaller model.");
        model.WriteTo(stream);
    }

    private static (string Ids, string Mask) TokenInputs(OnnxGraphBuilder g, string maskLength = "sequence")
    {
        var ids = g.Input(N.InputIds, DataType.Int64, TokenDims, "Token ids of each row, padded to the longest row.");
        var mask = g.Input(N.AttentionMask, DataType.Int64, ["batch", maskLength], "1 for a real token, 0 for a padded position.");
        return (ids, g.Cast(mask, DataType.Bool, "key_mask"));
    }

    /// <summary>Pools hidden [B, T, d] to [B, d] as <see cref="SequencePooling.Pool"/>, with the key mask bool [B, T].</summary>
    private static string Pool(OnnxGraphBuilder g, string hidden, string mask, Configuration.PoolingKind kind)
    {
        switch (kind)
        {
            case Configuration.PoolingKind.First:
                return g.Gather(hidden, g.Ints([0], scalar: true), 1, "pooled");
            case Configuration.PoolingKind.Mean:
                var weights = g.Unsqueeze(g.Cast(mask, DataType.Float, "mask_f"), [-1], "mask_w");       // [B, T, 1]
                var counts = g.Node("Max", "counts", [g.ReduceSum(weights, [1], false, "count"), g.Float(1f)]); // [B, 1]
                return g.Div(g.ReduceSum(g.Mul(hidden, weights, "masked_hidden"), [1], false, "hidden_sum"), counts, "pooled");
            case Configuration.PoolingKind.Last:
                var lengths = g.ReduceSum(g.Cast(mask, DataType.Int64, "mask_i"), [1], true, "lengths");    // [B, 1]
                var last = g.Node("Max", "last", [g.Sub(lengths, g.Ints([1], scalar: true), "last_raw"), g.Ints([0], scalar: true)]);
                var index = g.Node("Expand", "last_index", [g.Unsqueeze(last, [-1], "last3"),
                    g.Concat([g.Dim(hidden, 0, "b"), g.Ints([1]), g.Dim(hidden, 2, "d")], 0, "index_shape")]); // [B, 1, d]
                return g.Squeeze(g.Node("GatherElements", "last_hidden", [hidden, index], OnnxGraphBuilder.Int("axis", 1)), [1], "pooled");
            default:
                throw new NotSupportedException($"ONNX export does not know the pooling '{kind}'.");
        }
    }

    private static string Head(OnnxGraphBuilder g, PredictionHead head, string pooled) =>
        g.Linear(pooled, head.Output.weight!, head.Output.bias, "head");

    private static void ClassOutputs(OnnxGraphBuilder g, string logits, int classes)
    {
        g.Output(logits, N.Logits, DataType.Float, ["batch", classes], "Class logits.");
        g.Output(g.Softmax(logits, 1, "class_probabilities"), N.Probabilities, DataType.Float, ["batch", classes],
            "Class probabilities (softmax of the logits), in the order of the class names.");
    }

    /// <summary>Scaled features [B, F] → tokens [B, 1 + G, d], as <see cref="FeatureTokenizer"/> (G = F without slot groups).</summary>
    private static string FeatureTokens(OnnxGraphBuilder g, FeatureTokenizer tokenizer, string x)
    {
        var missing = g.Unsqueeze(g.Unary("IsNaN", x, "is_missing"), [-1], "is_missing3");        // [B, F, 1]
        var values = g.Unsqueeze(g.Where(g.Unary("IsNaN", x, "is_nan"), g.Float(0f), x, "values"), [-1], "values3");
        var tokens = g.Add(NumericTokens(g, tokenizer, values), g.Weight("features.bias", tokenizer.Bias), "feature_tokens"); // [B, F, d]
        if (tokenizer.Embedding == Configuration.TabularNumericEmbedding.Periodic) tokens = g.Unary("Relu", tokens, "feature_tokens_relu");
        tokens = g.Where(missing, g.Weight("features.missing", tokenizer.Missing), tokens, "feature_tokens_or_missing");
        if (tokenizer.Groups is { } groups)                                                         // one-hot groups: [G, F] · [B, F, d]
            tokens = g.MatMul(g.Weight("features.groups", groups), tokens, "group_tokens");           // [B, G, d]
        var d = tokenizer.Cls.shape[0];
        var clsShape = g.Concat([g.Dim(x, 0, "rows"), g.Ints([1, d])], 0, "cls_shape");
        var cls = g.Node("Expand", "cls_tokens", [g.Reshape(g.Weight("features.cls", tokenizer.Cls), [1, 1, d], "cls3"), clsShape]);
        return g.Concat([cls, tokens], 1, "tokens");                                              // [B, 1 + F, d]
    }

    /// <summary>Present values [B, F, 1] → each slot's numeric token before the bias [B, F, d]: x · W (linear),
    /// [cos 2πcx, sin 2πcx] · P (periodic) or PLE(x) · P (piecewise-linear), as <see cref="FeatureTokenizer"/>.</summary>
    private static string NumericTokens(OnnxGraphBuilder g, FeatureTokenizer tokenizer, string values)
    {
        if (tokenizer.Weight is { } weight) return g.Mul(values, g.Weight("features.weight", weight), "feature_scaled");
        string encoded;
        if (tokenizer.BinConstants is var (left, width, low, high, mask))
        {
            var ratio = g.Div(g.Sub(values, g.Weight("features.bin_left", left), "bin_offset"),
                g.Weight("features.bin_width", width), "bin_ratio");                               // [B, F, T]
            var clipped = g.Node("Min", "bin_clip_high", [g.Node("Max", "bin_clip_low", [ratio, g.Weight("features.bin_low", low)]),
                g.Weight("features.bin_high", high)]);
            encoded = g.Mul(clipped, g.Weight("features.bin_mask", mask), "ple");                    // [B, F, T]
        }
        else if (tokenizer.Frequencies is { } frequencies)
        {
            var angles = g.Mul(g.Mul(values, g.Weight("features.frequencies", frequencies), "phase"),
                g.Float((float)(2 * Math.PI)), "angles");                                           // [B, F, k]
            encoded = g.Concat([g.Unary("Cos", angles, "cos"), g.Unary("Sin", angles, "sin")], -1, "periodic"); // [B, F, 2k]
        }
        else throw new NotSupportedException($"ONNX export does not know the numeric embedding '{tokenizer.Embedding}'.");
        var bySlot = g.Transpose(encoded, [1, 0, 2], "encoded_by_slot");                             // [F, B, T]
        var projected = g.MatMul(bySlot, g.Weight("features.projection", tokenizer.Projection!), "projected_by_slot"); // [F, B, d]
        return g.Transpose(projected, [1, 0, 2], "projected");                                       // [B, F, d]
    }

    private static ModelProto Model(OnnxGraphBuilder g, string doc, Dictionary<string, string> metadata)
    {
        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "Microsoft.ML.MemoryFormer",
            ProducerVersion = typeof(OnnxModelExporter).Assembly.GetName().Version?.ToString() ?? "",
            Domain = "ai.memoryformer",
            ModelVersion = 1,
            DocString = doc,
            Graph = g.Graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = OnnxGraphBuilder.Opset });
        foreach (var (key, value) in metadata)
            model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        return model;
    }
}
