namespace Microsoft.ML.MemoryFormer.Configuration;

/// <summary>How a classification or regression head turns the hidden states of a row [T, d] into one vector [d].</summary>
public enum PoolingKind
{
    /// <summary>Average over the real (unpadded) tokens: robust default for encoders trained from scratch.</summary>
    Mean,

    /// <summary>The first token: the start token of a text row, or the [CLS] token of a tabular row.</summary>
    First,

    /// <summary>The last real token: what a causal language model's final position summarises.</summary>
    Last,
}
