using System.Buffers.Binary;
using System.Text;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Interop;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using TorchSharp;
using static Microsoft.ML.MemoryFormer.Tests.Interop.InteropFiles;

namespace Microsoft.ML.MemoryFormer.Tests.Interop;

/// <summary>safetensors export/import: exact round trips, config.json, tokenizer description, and a header validated before any allocation.</summary>
public class SafetensorsTests
{
    private static readonly long[,] Tokens = { { 1, 7, 3, 9, 2, 5 }, { 4, 4, 8, 0, 6, 1 } };

    [Theory]
    [InlineData(TransformerKind.MemoryFormer, NormKind.RmsNorm)]
    [InlineData(TransformerKind.Dense, NormKind.LayerNorm)]
    public void Export_then_import_gives_identical_logits_and_config(TransformerKind kind, NormKind norm)
    {
        torch.manual_seed(3);
        var config = MemoryFormerConfig.Nano with { Kind = kind, Norm = norm, NormEpsilon = 1e-5, QkvInitStd = 0.03, RotaryBase = 777 };
        using var model = new LanguageModel(config);
        using var folder = NewFolder();
        model.ExportSafetensors(folder.Path, new ByteLevelTokenizer().Describe());
        using var back = LanguageModel.ImportSafetensors(folder.Path);
        Assert.Equal(config, back.Config);
        Assert.Equal(Logits(model, Tokens), Logits(back, Tokens));
        Assert.Equal(new ByteLevelTokenizer().Describe().Kind, LanguageModel.ReadSafetensorsTokenizer(folder.Path)!.Kind);
    }

    [Fact]
    public void MLContext_imports_a_safetensors_folder_as_a_transformer_that_generates_and_saves()
    {
        torch.manual_seed(8);
        using var model = new LanguageModel(MemoryFormerConfig.Nano with { VocabularySize = 258 });
        using var folder = NewFolder();
        model.ExportSafetensors(folder.Path, new ByteLevelTokenizer().Describe());
        var ml = new MLContext(seed: 1);
        using var transformer = ml.Text.ImportLanguageModel(folder.Path);
        Assert.Equal(model.Config, transformer.Config);
        var text = transformer.Generate("ab", new MemoryFormer.Generation.GenerationOptions { MaxNewTokens = 3, Temperature = 0 });
        Assert.NotNull(text);
        var saved = Path.Combine(folder.Path, "model.mfa");
        transformer.Save(saved);
        using var reloaded = ml.Text.LoadLanguageModel(saved);
        Assert.Equal(text, reloaded.Generate("ab", new MemoryFormer.Generation.GenerationOptions { MaxNewTokens = 3, Temperature = 0 }));
        var again = Path.Combine(folder.Path, "again");
        reloaded.ExportSafetensors(again);                                         // the transformer's own export carries its tokenizer
        Assert.Equal("byte-level", LanguageModel.ReadSafetensorsTokenizer(again)!.Kind);
        using var neox = NewFolder();
        reloaded.ExportGptNeoXCheckpoint(neox.Path);
        using var back = LanguageModel.ImportGptNeoXCheckpoint(neox.Path);
        Assert.Equal(Logits(model, Tokens), Logits(back, Tokens));
    }

    [Fact]
    public void A_transformer_with_an_adaptive_head_refuses_both_exports_and_writes_nothing()
    {
        // The transformer's exports take the model's own checks: safetensors' config cannot carry the cutoffs, so an export
        // that went through would write a folder no import can read.
        var options = LanguageModeling.LanguageModelData.NanoOptions(steps: 1);
        options.Architecture = options.Architecture with { AdaptiveSoftmaxCutoffs = [64, 128] };
        var ml = new MLContext(seed: 1);
        using var transformer = ml.Text.MemoryFormer(options).Fit(ml.Data.LoadFromEnumerable(LanguageModeling.LanguageModelData.Corpus));
        using var folder = NewFolder();
        foreach (var export in new Action[] { () => transformer.ExportSafetensors(folder.Path), () => transformer.ExportGptNeoXCheckpoint(folder.Path) })
            Assert.Contains(nameof(MemoryFormerConfig.AdaptiveSoftmaxCutoffs), Assert.Throws<NotSupportedException>(export).Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(folder.Path));
    }

    [Fact]
    public void Config_json_uses_the_documented_keys()
    {
        using var model = new LanguageModel(MemoryFormerConfig.Nano);
        using var folder = NewFolder();
        model.ExportSafetensors(folder.Path);
        var json = File.ReadAllText(Path.Combine(folder.Path, "config.json"));
        foreach (var key in new[] { "\"model_type\": \"memoryformer\"", "\"hidden_size\": 16", "\"num_hidden_layers\": 2", "\"num_attention_heads\": 2",
                     "\"vocab_size\": 64", "\"code_length\": 4", "\"num_tables\": 4", "\"extra_bits\": 2", "\"rotary_pct\": 0.25", "\"norm\": \"rmsnorm\"" })
            Assert.Contains(key, json);
        Assert.Null(LanguageModel.ReadSafetensorsTokenizer(folder.Path));
        using var file = SafetensorsFile.Open(Path.Combine(folder.Path, "model.safetensors"));
        var names = file.Entries.Select(e => e.Name).ToList();
        Assert.Equal(model.state_dict().Keys, names);                              // the state-dict names, in order
        Assert.Contains("head.weight", names);
        Assert.All(file.Entries, e => Assert.Equal("F32", e.Dtype));
        Assert.True(file.Metadata.ContainsKey(SafetensorsFile.ChecksumKey));
    }

    [Fact]
    public void The_official_fixture_can_be_converted_to_safetensors_and_back()
    {
        var (tokens, expected) = Expected();
        using var model = LanguageModel.ImportGptNeoXCheckpoint(OfficialFile);
        using var folder = NewFolder();
        model.ExportSafetensors(folder.Path);
        using var back = LanguageModel.ImportSafetensors(folder.Path);
        Assert.True(RelativeError(Logits(back, tokens), expected) <= 1e-5);
    }

    [Fact]
    public void A_config_that_does_not_fit_the_weights_is_refused_before_the_model_is_built()
    {
        using var model = new LanguageModel(MemoryFormerConfig.Nano);
        using var folder = NewFolder();
        model.ExportSafetensors(folder.Path);
        var configPath = Path.Combine(folder.Path, "config.json");
        File.WriteAllText(configPath, File.ReadAllText(configPath).Replace("\"vocab_size\": 64", "\"vocab_size\": 4000000"));
        var e = Assert.Throws<InvalidDataException>(() => LanguageModel.ImportSafetensors(folder.Path));
        Assert.Contains("do not belong together", e.Message);
        File.WriteAllText(configPath, File.ReadAllText(configPath).Replace("\"model_type\": \"memoryformer\"", "\"model_type\": \"gpt_neox\""));
        Assert.Contains("model_type", Assert.Throws<InvalidDataException>(() => LanguageModel.ImportSafetensors(folder.Path)).Message);
    }

    [Fact]
    public void Damaged_values_are_caught_by_the_recorded_checksum()
    {
        using var model = new LanguageModel(MemoryFormerConfig.Nano);
        using var folder = NewFolder();
        model.ExportSafetensors(folder.Path);
        var path = Path.Combine(folder.Path, "model.safetensors");
        var bytes = File.ReadAllBytes(path);
        bytes[^3] ^= 0x10;
        File.WriteAllBytes(path, bytes);
        Assert.Contains("SHA-256", Assert.Throws<InvalidDataException>(() => LanguageModel.ImportSafetensors(folder.Path)).Message);
    }

    [Theory]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 8, null)]
    [InlineData("""{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}""", 8, "unknown dtype")]
    [InlineData("""{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", 8, "range holds 8")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 4, "data section")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "overlaps")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "hole")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 12, "cover 8 bytes")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}""", 16, "twice")]
    [InlineData("""{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}""", 8, "non-negative")]
    [InlineData("""{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}""", 8, "too many elements")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}}""", 4, "rank")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2]}}""", 8, "lacks")]
    [InlineData("""[1,2]""", 0, "not a JSON object")]
    [InlineData("""{"a":""", 0, "not valid JSON")]
    public void Headers_are_validated_before_any_tensor_is_read(string header, int dataBytes, string? error)
    {
        using var folder = NewFolder();
        var path = Path.Combine(folder.Path, "t.safetensors");
        File.WriteAllBytes(path, Bytes(header, dataBytes));
        if (error is null)
        {
            using var ok = SafetensorsFile.Open(path);
            Assert.Single(ok.Entries);
            return;
        }
        var e = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Contains(error, e.Message);
    }

    [Theory]
    [InlineData(ulong.MaxValue)]
    [InlineData(200_000_000UL)]
    [InlineData(1UL)]
    public void Header_lengths_beyond_the_limit_or_the_file_are_refused(ulong declared)
    {
        using var folder = NewFolder();
        var path = Path.Combine(folder.Path, "t.safetensors");
        var bytes = Bytes("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 8);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declared);
        File.WriteAllBytes(path, bytes);
        Assert.Contains("header declares", Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path).Dispose()).Message);
    }

    private static byte[] Bytes(string header, int dataBytes)
    {
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)json.Length);
        json.CopyTo(bytes, 8);
        return bytes;
    }
}
