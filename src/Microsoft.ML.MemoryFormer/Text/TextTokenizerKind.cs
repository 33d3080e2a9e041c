namespace Microsoft.ML.MemoryFormer.Text;

/// <summary>Which tokenizer a language-model estimator builds.</summary>
public enum TextTokenizerKind
{
    /// <summary><see cref="ByteLevelTokenizer"/>: UTF-8 bytes, vocabulary 258, no vocabulary file; best for small corpora.</summary>
    ByteLevel,

    /// <summary><see cref="Gpt2Tokenizer"/>: GPT-2 byte-pair encoding (vocabulary 50257, model vocabulary 50304), offline.</summary>
    Gpt2,
}
