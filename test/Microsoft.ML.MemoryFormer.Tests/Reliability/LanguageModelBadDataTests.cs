using System.Diagnostics;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using static Microsoft.ML.MemoryFormer.Tests.LanguageModeling.LanguageModelData;

namespace Microsoft.ML.MemoryFormer.Tests.Reliability;

/// <summary>
/// Bad data for <c>mlContext.Text.MemoryFormer</c>, one row of the table per case of issue 8 that applies to a language
/// model: a clear error naming the column, or the behaviour docs/reliability.md "Bad data" documents.
/// </summary>
public class LanguageModelBadDataTests(LanguageModelBadDataTests.Trained trained) : IClassFixture<LanguageModelBadDataTests.Trained>
{
    /// <summary>A Nano model fitted once for the generation-time cases.</summary>
    public sealed class Trained : IDisposable
    {
        public MLContext Ml { get; } = new(seed: 1);
        public MemoryFormerLanguageModelTransformer Model { get; }

        public Trained() => Model = Ml.Text.MemoryFormer(NanoOptions(steps: 10)).Fit(Ml.Data.LoadFromEnumerable(Corpus));

        public void Dispose() => Model.Dispose();
    }

    private sealed class NullableDocument
    {
        public string? Text { get; set; }
    }

    private sealed class NullablePrompt
    {
        public string? Prompt { get; set; }
    }

    private sealed class NumberRow
    {
        public float Text { get; set; }
    }

    private static readonly string OneMegabyte = string.Concat(Enumerable.Repeat("the cat sat on the mat. ", (1 << 20) / 24));

    private static readonly Dictionary<string, Action<Trained>> Table = new()
    {
        ["no rows"] = t => Assert.Contains("holds no text: 0 rows", Fit(t, Array.Empty<NullableDocument>()).Message),
        ["only null and empty rows"] = t =>
            Assert.Contains("holds no text: 2 rows, all empty", Fit(t, [new NullableDocument(), new NullableDocument { Text = "" }]).Message),
        ["missing text column"] = t =>
        {
            var e = Fit(t, new[] { new NullablePrompt { Prompt = "hi" } });
            Assert.Contains("Column 'Text' (TextColumnName) was not found; the data has: 'Prompt'", e.Message);
        },
        ["training data (no prompt column) at Transform"] = t =>
        {
            var data = t.Ml.Data.LoadFromEnumerable(Corpus);   // passes through, as an Append chain needs after Fit
            Assert.Equal(data.Schema.Select(c => c.Name), t.Model.Transform(data).Schema.Select(c => c.Name));
        },
        ["text column of another type"] = t =>
            Assert.Contains("Column 'Text' (TextColumnName) must be text (String), but it is Single", Fit(t, [new NumberRow()]).Message),
        ["null, empty and whitespace text"] = t =>
        {
            // Documented: null and empty documents are skipped in training; whitespace is text like any other. An empty
            // or null prompt starts from the end-of-text token, like the start of a training document.
            var documents = Corpus.Select(d => new NullableDocument { Text = d.Text })
                .Concat([new NullableDocument(), new() { Text = "" }, new() { Text = "  \t\n " }]);
            using var model = t.Ml.Text.MemoryFormer(NanoOptions(steps: 2)).Fit(t.Ml.Data.LoadFromEnumerable(documents));
            var prompts = t.Ml.Data.LoadFromEnumerable(new[] { new NullablePrompt(), new() { Prompt = "" }, new() { Prompt = "   " } });
            var generated = t.Model.Transform(prompts).GetColumn<string>("GeneratedText").ToArray();
            Assert.Equal(t.Model.Generate(""), generated[0]);
            Assert.Equal(generated[0], generated[1]);
            Assert.Equal(t.Model.Generate("   "), generated[2]);
        },
        ["a 1 MB prompt and a 1 MB document"] = t =>
        {
            // Documented: a prompt keeps its last ContextLength tokens, and only those are tokenized.
            var tail = OneMegabyte[^200..];
            t.Model.Generate(tail);
            var clock = Stopwatch.StartNew();
            var huge = t.Model.Generate(OneMegabyte);
            Assert.True(clock.ElapsedMilliseconds < 1000, $"a 1 MB prompt took {clock.ElapsedMilliseconds} ms");
            Assert.Equal(t.Model.Generate(tail), huge);
            // A training document is used whole: 1 MB of byte-level text is 1M tokens, tokenized in linear time.
            var options = NanoOptions(steps: 2);
            options.ValidationFraction = 0;
            clock.Restart();
            using var model = t.Ml.Text.MemoryFormer(options).Fit(t.Ml.Data.LoadFromEnumerable(new[] { new NullableDocument { Text = OneMegabyte } }));
            Assert.True(clock.ElapsedMilliseconds < 10_000, $"fitting on a 1 MB document took {clock.ElapsedMilliseconds} ms");
        },
        ["unpaired UTF-16 surrogates"] = t =>
        {
            // Documented: a lone surrogate is encoded as U+FFFD, as UTF-8 encoding does; no error.
            Assert.Equal(t.Model.Generate("the \uFFFD cat"), t.Model.Generate("the \uD800 cat"));
            Assert.Equal(t.Model.Generate("the cat\uFFFD"), t.Model.Generate("the cat\uDBFF"));
            var documents = Corpus.Select(d => new NullableDocument { Text = d.Text + "\uDC00" });
            using var model = t.Ml.Text.MemoryFormer(NanoOptions(steps: 2)).Fit(t.Ml.Data.LoadFromEnumerable(documents));
            Assert.True(double.IsFinite(t.Model.Evaluate(t.Ml.Data.LoadFromEnumerable(documents)).Perplexity));
        },
        ["Evaluate on a missing or empty column"] = t =>
        {
            var prompts = t.Ml.Data.LoadFromEnumerable(new[] { new NullablePrompt { Prompt = "the" } });
            Assert.Contains("Column 'Text' (textColumnName) was not found", Assert.ThrowsAny<ArgumentException>(() => t.Model.Evaluate(prompts)).Message);
            var empty = t.Ml.Data.LoadFromEnumerable(new[] { new NullableDocument { Text = "" } });
            Assert.Contains("no text", Assert.ThrowsAny<ArgumentException>(() => t.Model.Evaluate(empty)).Message);
        },
    };

    public static TheoryData<string> Cases => new(Table.Keys);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Each_case_gets_a_clear_error_or_its_documented_behaviour(string @case) => Table[@case](trained);

    private static ArgumentException Fit<T>(Trained t, IEnumerable<T> rows) where T : class =>
        Assert.ThrowsAny<ArgumentException>(() => t.Ml.Text.MemoryFormer(NanoOptions(steps: 2)).Fit(t.Ml.Data.LoadFromEnumerable(rows)));
}
