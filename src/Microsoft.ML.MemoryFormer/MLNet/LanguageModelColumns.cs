namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>Column names a language-model transformer reads and writes (saved with the model).</summary>
/// <param name="Text">Documents column, the default of Evaluate.</param>
/// <param name="Prompt">Prompts to continue.</param>
/// <param name="GeneratedText">Where continuations go.</param>
internal sealed record LanguageModelColumns(string Text, string Prompt, string GeneratedText);
