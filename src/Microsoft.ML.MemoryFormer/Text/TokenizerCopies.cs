namespace Microsoft.ML.MemoryFormer.Text;

/// <summary>Tokenizers that encode like a given one and share no state with it, so that threads can encode at once without
/// waiting on one another (Microsoft.ML.Tokenizers' Tiktoken takes a lock on its word cache for every word).</summary>
internal static class TokenizerCopies
{
    /// <summary>A tokenizer that gives the same ids as <paramref name="tokenizer"/> and shares no cache with it (the same
    /// instance where it keeps no state), or null where none can be built (an adapter built by <see cref="TokenizerAdapter.Wrap"/>
    /// or a tokenizer of another type: encode on one thread then).</summary>
    public static ITextTokenizer? Independent(ITextTokenizer tokenizer) => tokenizer switch
    {
        ByteLevelTokenizer => tokenizer,
        Gpt2Tokenizer gpt2 => gpt2.WithOwnCache(),
        TokenizerAdapter { CanBeStored: true } adapter => TokenizerAdapter.FromDescription(adapter.Describe()),
        _ => null,
    };
}
