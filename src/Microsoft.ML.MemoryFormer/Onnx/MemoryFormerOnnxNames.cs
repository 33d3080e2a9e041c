namespace Microsoft.ML.MemoryFormer.Onnx;

/// <summary>
/// The input, output and metadata names of the ONNX graphs this library exports. Batch and sequence axes are
/// dynamic (symbolic dimensions <c>batch</c> and <c>sequence</c>); the tokenizer stays outside the graph and is
/// described in the metadata.
/// </summary>
public static class MemoryFormerOnnxNames
{
    /// <summary>Input: token ids, int64 [batch, sequence] (language model and text classifier).</summary>
    public const string InputIds = "input_ids";

    /// <summary>Input: int64 [batch, sequence], 1 for a real token and 0 for padding (language model and text classifier).</summary>
    public const string AttentionMask = "attention_mask";

    /// <summary>Input: the raw feature vector, float [batch, features], NaN for a missing value (tabular model).</summary>
    public const string Features = "features";

    /// <summary>Output: float logits, [batch, sequence, vocabulary] (language model) or [batch, classes] (classifiers).</summary>
    public const string Logits = "logits";

    /// <summary>Output: class probabilities (softmax of <see cref="Logits"/>), float [batch, classes] (classifiers).</summary>
    public const string Probabilities = "probabilities";

    /// <summary>Output: the predicted value in label units, float [batch, 1] (tabular regression).</summary>
    public const string Score = "score";

    /// <summary>Input prefix (language model with a KV cache): <c>past_key.{layer}</c>, float [batch, heads,
    /// past_sequence, head_width], the keys after rotary of the positions already seen (past_sequence = 0 at the start).</summary>
    public const string PastKeyPrefix = "past_key.";

    /// <summary>Input prefix (language model with a KV cache): <c>past_value.{layer}</c>, as <see cref="PastKeyPrefix"/>.</summary>
    public const string PastValuePrefix = "past_value.";

    /// <summary>Output prefix (language model with a KV cache): <c>present_key.{layer}</c>, float [batch, heads,
    /// past_sequence + sequence, head_width]; feed it back as <see cref="PastKeyPrefix"/> on the next step.</summary>
    public const string PresentKeyPrefix = "present_key.";

    /// <summary>Output prefix (language model with a KV cache): <c>present_value.{layer}</c>, as <see cref="PresentKeyPrefix"/>.</summary>
    public const string PresentValuePrefix = "present_value.";

    /// <summary>Metadata key: which model the graph holds (<c>LanguageModel</c>, <c>TextClassifier</c> or <c>Tabular</c>).</summary>
    public const string ModelKindKey = "memoryformer.model_kind";

    /// <summary>Metadata key: the architecture as JSON (<see cref="Configuration.MemoryFormerConfig.ToJson"/>).</summary>
    public const string ConfigKey = "memoryformer.config";

    /// <summary>Metadata key: the tokenizer as JSON (<see cref="Text.TokenizerDescription.ToJson"/>); rebuild it with
    /// <see cref="Text.ITextTokenizer.FromDescription"/>.</summary>
    public const string TokenizerKey = "memoryformer.tokenizer";

    /// <summary>Metadata key (text classifier): how a row of token ids is laid out, and its longest length.</summary>
    public const string RowLayoutKey = "memoryformer.row_layout";

    /// <summary>Metadata key (text classifier): the longest token row the model was trained with.</summary>
    public const string MaxTokensPerRowKey = "memoryformer.max_tokens_per_row";

    /// <summary>Metadata key: the id padded positions hold (any id works: padded keys are masked out).</summary>
    public const string PadIdKey = "memoryformer.pad_id";

    /// <summary>Metadata key (classifiers): the class names in output order as a JSON array, when known.</summary>
    public const string ClassNamesKey = "memoryformer.class_names";

    /// <summary>Metadata key: the prediction task (<c>MulticlassClassification</c>, <c>BinaryClassification</c>, <c>Regression</c>).</summary>
    public const string PredictionKindKey = "memoryformer.prediction_kind";

    /// <summary>Metadata key of a tabular model: how many ensemble members the graph averages ("1" for a single model).</summary>
    public const string EnsembleSizeKey = "memoryformer.ensemble_size";
}
