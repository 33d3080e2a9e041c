using System.Text;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Tests.MLNet;
using Microsoft.ML.MemoryFormer.Text;

namespace Microsoft.ML.MemoryFormer.Tests.Text;

/// <summary>Microsoft.ML.Tokenizers tokenizers plug in through <see cref="TokenizerAdapter"/> and round-trip through a saved description.</summary>
public class TokenizerAdapterTests
{
    private const string Gpt2Pattern = @"'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>Every byte, then "he", "ll", "llo", " w" as merges; "&lt;|endoftext|&gt;" is special id 260.</summary>
    private static TokenizerAdapter TinyTiktoken()
    {
        var lines = Enumerable.Range(0, 256).Select(b => $"{Convert.ToBase64String([(byte)b])} {b}")
            .Concat(new[] { "he", "ll", "llo", " w" }.Select((t, i) => $"{Convert.ToBase64String(Encoding.UTF8.GetBytes(t))} {256 + i}"));
        return TokenizerAdapter.Tiktoken(Encoding.UTF8.GetBytes(string.Join('\n', lines)), Gpt2Pattern,
            new Dictionary<string, int> { ["<|endoftext|>"] = 260 }, "<|endoftext|>");
    }

    private static TokenizerAdapter TinyBert(IEnumerable<string>? words = null) =>
        TokenizerAdapter.Bert(Encoding.UTF8.GetBytes(string.Join('\n',
            new[] { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" }.Concat(words ?? ["hello", "world", "##s", "!"])) + "\n"));

    private static ITextTokenizer RoundTrip(ITextTokenizer tokenizer) =>
        ITextTokenizer.FromDescription(TokenizerDescription.FromJson(tokenizer.Describe().ToJson()));

    [Fact]
    public void Malformed_descriptions_are_argument_errors_and_missing_parameters_are_empty()
    {
        var notJson = Assert.Throws<ArgumentException>(() => TokenizerDescription.FromJson("not json"));
        Assert.Equal("json", notJson.ParamName);
        Assert.Contains("'kind' is missing", Assert.Throws<ArgumentException>(() => TokenizerDescription.FromJson("{}")).Message);
        foreach (var kind in new[] { "byte-level", "gpt2" })
            Assert.Equal(kind, ITextTokenizer.FromDescription(new TokenizerDescription(kind, null!)).Describe().Kind);
    }

    [Fact]
    public void Tiktoken_encodes_text_losslessly_and_rebuilds_from_its_description()
    {
        var tokenizer = TinyTiktoken();
        const string text = "hello world <|endoftext|> ünï 😀";
        var ids = tokenizer.Encode(text);
        Assert.Equal(261, tokenizer.VocabularySize);
        Assert.Equal(320, tokenizer.ModelVocabularySize);
        Assert.Equal(260, tokenizer.EndOfTextId);
        Assert.Equal(new[] { 256, 258 }, ids.Take(2));                 // "he" + "llo": the merges apply
        Assert.DoesNotContain(260, ids);                               // the special token in the text is plain text
        Assert.Equal(text, tokenizer.Decode(ids));

        var rebuilt = RoundTrip(tokenizer);
        Assert.IsType<TokenizerAdapter>(rebuilt);
        Assert.Equal(ids, rebuilt.Encode(text));
        Assert.Equal((tokenizer.VocabularySize, tokenizer.EndOfTextId, tokenizer.PadId), (rebuilt.VocabularySize, rebuilt.EndOfTextId, rebuilt.PadId));
    }

    [Fact]
    public void Bpe_from_vocabulary_and_merges_rebuilds_from_its_description()
    {
        var vocabulary = """{"[UNK]":0,"h":1,"e":2,"l":3,"o":4,"w":5,"r":6,"d":7,"he":8,"ll":9,"llo":10,"hello":11,"<|endoftext|>":12}""";
        var merges = "#version: 0.2\nh e\nl l\nll o\nhe llo\n";
        var tokenizer = TokenizerAdapter.Bpe(Encoding.UTF8.GetBytes(vocabulary), Encoding.UTF8.GetBytes(merges),
            new Dictionary<string, int> { ["<|endoftext|>"] = 12 }, "<|endoftext|>", unknownToken: "[UNK]");
        var ids = tokenizer.Encode("hello world <|endoftext|>");
        Assert.Equal(new[] { 11, 5, 4, 6, 3, 7 }, ids.Take(6));
        Assert.DoesNotContain(12, ids);
        Assert.Equal(13, tokenizer.VocabularySize);

        var rebuilt = RoundTrip(tokenizer);
        Assert.Equal(ids, rebuilt.Encode("hello world <|endoftext|>"));
        Assert.Equal(tokenizer.Decode(ids), rebuilt.Decode(ids));
    }

    [Fact]
    public void SentencePiece_pieces_decode_to_the_text_and_rebuild_from_the_description()
    {
        KeyValuePair<string, float>[] pieces =
            [.. new (string, float)[] { ("<unk>", 0), ("<s>", 0), ("</s>", 0), ("▁hello", -1), ("▁world", -1), ("▁", -2),
                ("h", -3), ("e", -3), ("l", -3), ("o", -3), ("w", -3), ("r", -3), ("d", -3) }.Select(p => KeyValuePair.Create(p.Item1, p.Item2))];
        var tokenizer = TokenizerAdapter.SentencePiece(pieces, unknownId: 0);
        var ids = tokenizer.Encode("hello world");
        Assert.Equal(new[] { 3, 4 }, ids);
        Assert.Equal("hello world", tokenizer.Decode(ids));
        Assert.Equal(2, tokenizer.EndOfTextId);
        Assert.DoesNotContain(2, tokenizer.Encode("hello </s> world"));

        var rebuilt = RoundTrip(tokenizer);
        Assert.Equal(ids, rebuilt.Encode("hello world"));
        Assert.Equal(2, rebuilt.EndOfTextId);
    }

    [Fact]
    public void Bert_wordpiece_adds_no_special_tokens_and_pads_with_its_pad_token()
    {
        var tokenizer = TinyBert();
        var ids = tokenizer.Encode("Hello worlds! [SEP]");
        Assert.Equal(new[] { 5, 6, 7, 8 }, ids.Take(4));               // lower-cased, "world" + "##s", no [CLS] first
        Assert.DoesNotContain(3, ids);                                 // "[SEP]" in the text is not the separator
        Assert.DoesNotContain(2, ids);
        Assert.Equal((9, 3, (int?)0), (tokenizer.VocabularySize, tokenizer.EndOfTextId, tokenizer.PadId));

        var rebuilt = RoundTrip(tokenizer);
        Assert.Equal(ids, rebuilt.Encode("Hello worlds! [SEP]"));
        Assert.Equal(tokenizer.PadId, rebuilt.PadId);
    }

    [Fact]
    public void A_wrapped_tokenizer_works_but_is_refused_clearly_when_a_model_would_store_it()
    {
        var wrapped = TokenizerAdapter.Wrap(TinyBert().Tokenizer, vocabularySize: 9, endOfTextId: 3, padId: 0);
        Assert.False(wrapped.CanBeStored);
        Assert.NotEmpty(wrapped.Encode("hello"));
        var e = Assert.Throws<NotSupportedException>(() => wrapped.Describe());
        Assert.Contains("cannot be saved", e.Message);
        Assert.Contains("TokenizerAdapter.Tiktoken", e.Message);
    }

    [Fact]
    public void A_description_of_an_unknown_type_or_without_its_files_is_refused_by_name()
    {
        var unknown = new TokenizerDescription(TokenizerAdapter.Kind, new Dictionary<string, string> { ["type"] = "morse" });
        Assert.Contains("'morse'", Assert.Throws<ArgumentException>(() => ITextTokenizer.FromDescription(unknown)).Message);
        var missing = new TokenizerDescription(TokenizerAdapter.Kind, new Dictionary<string, string> { ["type"] = "bert" });
        Assert.Contains("'vocabulary'", Assert.Throws<ArgumentException>(() => ITextTokenizer.FromDescription(missing)).Message);
        var garbage = new Dictionary<string, string>(TinyTiktoken().Describe().Parameters)
        {
            ["vocabulary"] = Convert.ToBase64String(Encoding.UTF8.GetBytes("not base64!! x\n")),
        };
        Assert.Throws<ArgumentException>(() => ITextTokenizer.FromDescription(new TokenizerDescription(TokenizerAdapter.Kind, garbage)));
    }

    [Fact]
    public void A_text_classifier_with_a_wordpiece_tokenizer_saves_and_loads_with_identical_scores()
    {
        var words = ClassificationRows.Multiclass().SelectMany(r => r.Text.Split(' ')).Distinct().Order(StringComparer.Ordinal);
        var options = ClassificationRows.Options(epochs: 3);
        options.Tokenizer = TinyBert(words);
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(ClassificationRows.Multiclass());
        var model = ml.Transforms.Conversion.MapValueToKey("Label").Append(ml.MulticlassClassification.Trainers.MemoryFormerTextClassification(options)).Fit(data);
        var expected = model.Transform(data).GetColumn<float[]>("Score").ToArray();
        using var stream = new MemoryStream();
        ml.Model.Save(model, data.Schema, stream);
        stream.Position = 0;

        var fresh = new MLContext();
        fresh.ComponentCatalog.RegisterMemoryFormer();
        var loaded = fresh.Model.Load(stream, out _);
        Assert.Equal(expected, loaded.Transform(fresh.Data.LoadFromEnumerable(ClassificationRows.Multiclass())).GetColumn<float[]>("Score").ToArray());
    }

    [Fact]
    public void A_language_model_with_a_tiktoken_tokenizer_trains_saves_and_loads_with_identical_text()
    {
        var ml = new MLContext(seed: 1);
        var options = LanguageModeling.LanguageModelData.NanoOptions(steps: 10);
        options.CustomTokenizer = TinyTiktoken();
        using var model = ml.Text.MemoryFormer(options).Fit(ml.Data.LoadFromEnumerable(LanguageModeling.LanguageModelData.Corpus));
        Assert.Equal(TokenizerAdapter.Kind, model.Tokenizer.Describe().Kind);
        string expected = model.Generate("the cat", LanguageModeling.LanguageModelData.Greedy);

        string path = Path.Combine(Path.GetTempPath(), $"mf-tiktoken-{Guid.NewGuid():N}.mfckpt");
        try
        {
            model.Save(path);
            using var loaded = MemoryFormerLanguageModelTransformer.Load(path);
            Assert.Equal(TokenizerAdapter.Kind, loaded.Tokenizer.Describe().Kind);
            Assert.Equal(expected, loaded.Generate("the cat", LanguageModeling.LanguageModelData.Greedy));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
