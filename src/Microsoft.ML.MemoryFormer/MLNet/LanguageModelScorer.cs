using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Generation;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// Continues a batch of prompts at once (<see cref="TextGenerator.GenerateBatch(IReadOnlyList{string}, GenerationOptions, CancellationToken)"/>): prompt text → generated text.
/// Training data (it has the training text column but no prompt column, as when the estimator sits in an
/// <c>Append</c> chain and the chain transforms the training data) passes through: no input, no output column. Other
/// data without the prompt column gets an error naming it.
/// </summary>
internal sealed class LanguageModelScorer : IBatchScorer
{
    private readonly MemoryFormerLanguageModelTransformer owner;

    public LanguageModelScorer(MemoryFormerLanguageModelTransformer owner, DataViewSchema inputSchema)
    {
        this.owner = owner;
        bool hasPrompts = inputSchema.GetColumnOrNull(owner.PromptColumnName) is not null
            || inputSchema.GetColumnOrNull(owner.TextColumnName) is null;
        InputColumns = hasPrompts ? [TextColumn.Find(inputSchema, owner.PromptColumnName, "PromptColumnName")] : [];
        OutputColumns = hasPrompts ? [new DataViewSchema.DetachedColumn(owner.GeneratedTextColumnName, TextDataViewType.Instance)] : [];
    }

    public IReadOnlyList<DataViewSchema.Column> InputColumns { get; }
    public IReadOnlyList<DataViewSchema.DetachedColumn> OutputColumns { get; }
    public int BatchSize => owner.GenerationBatchSize;

    public IBatchReader CreateReader(DataViewRow row) => InputColumns.Count == 0 ? new PassThrough()
        : new Reader(owner, row.GetGetter<ReadOnlyMemory<char>>(InputColumns[0]));

    private sealed class PassThrough : IBatchReader
    {
        public void Read() { }

        public Array[] Score() => [];
    }

    private sealed class Reader(MemoryFormerLanguageModelTransformer owner, ValueGetter<ReadOnlyMemory<char>> prompt) : IBatchReader
    {
        private readonly List<string> prompts = [];

        public void Read()
        {
            ReadOnlyMemory<char> value = default;
            prompt(ref value);
            prompts.Add(value.ToString());
        }

        public Array[] Score()
        {
            var texts = owner.Generator.GenerateBatch(prompts, owner.DefaultGenerationOptions);
            prompts.Clear();
            return [texts.Select(t => t.AsMemory()).ToArray()];
        }
    }
}
