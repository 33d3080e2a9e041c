using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Interop;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using TorchSharp;
using static Microsoft.ML.MemoryFormer.Tests.Interop.InteropFiles;

namespace Microsoft.ML.MemoryFormer.Tests.Interop;

/// <summary>
/// Checkpoints of the official MemoryFormer code (GPT-NeoX layout): the fixture written by tools/interop/make_fixture.py
/// with the official memory_module on its pure-torch path gives the same logits here, our exports read back exactly, and
/// every layout the import does not support is refused with a message that says so.
/// </summary>
public class GptNeoXCheckpointTests
{
    [Fact]
    public void Official_fixture_imports_with_the_official_codes_logits()
    {
        var (tokens, expected) = Expected();
        using var model = LanguageModel.ImportGptNeoXCheckpoint(OfficialFile);
        Assert.Equal(64, model.Config.Width);
        Assert.Equal(2, model.Config.BitsPerChunk);
        Assert.Equal(2, model.Config.Layers);
        Assert.Equal(2, model.Config.Heads);                                       // from the checkpoint's args
        Assert.Equal(32, model.Config.ContextLength);
        var error = RelativeError(Logits(model, tokens), expected);
        Assert.True(error <= 1e-5, $"max relative error {error:e3} against the official code's logits");
    }

    [Fact]
    public void Save_folder_with_latest_and_step_folder_import_like_the_file()
    {
        var (tokens, _) = Expected();
        using var fromFile = LanguageModel.ImportGptNeoXCheckpoint(OfficialFile);
        using var fromSave = LanguageModel.ImportGptNeoXCheckpoint(OfficialFolder);
        using var fromStep = LanguageModel.ImportGptNeoXCheckpoint(Path.GetDirectoryName(OfficialFile)!);
        Assert.Equal(Logits(fromFile, tokens), Logits(fromSave, tokens));
        Assert.Equal(Logits(fromFile, tokens), Logits(fromStep, tokens));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Export_then_import_gives_identical_logits(bool pipeline)
    {
        var (tokens, _) = Expected();
        using var folder = NewFolder();
        using var model = LanguageModel.ImportGptNeoXCheckpoint(OfficialFile);
        var step = model.ExportGptNeoXCheckpoint(folder.Path, new GptNeoXExportOptions { PipelineLayout = pipeline, Iteration = 7 });
        Assert.Equal(Path.Combine(folder.Path, "global_step7"), step);
        Assert.Equal("global_step7", File.ReadAllText(Path.Combine(folder.Path, "latest")));
        if (pipeline)
        {
            var layers = Directory.GetFiles(step, "layer_*").Select(f => Path.GetFileName(f)).Order().ToArray();
            Assert.Equal(["layer_00-model_00-model_states.pt", "layer_02-model_00-model_states.pt", "layer_03-model_00-model_states.pt",
                "layer_05-model_00-model_states.pt", "layer_06-model_00-model_states.pt"], layers);
        }
        using var back = LanguageModel.ImportGptNeoXCheckpoint(folder.Path);
        Assert.Equal(Logits(model, tokens), Logits(back, tokens));
        Assert.Equal(model.Config, back.Config);
        var yaml = File.ReadAllText(Path.Combine(folder.Path, "memoryformer_model.yml"));
        foreach (var line in new[] { "\"num-layers\": 2,", "\"hidden-size\": 64,", "\"rms_norm_epsilon\": 1.0e-08,", "\"rotary_emb_base\": 10000,",
                     $"\"pipe-parallel-size\": {(pipeline ? 1 : 0)},", "\"mlp_expand_type\": \"extra_bit\",", "\"ffn_num_table\": 32, \"code_length\": 2," })
            Assert.Contains(line, yaml);
    }

    [Fact]
    public void A_fresh_model_round_trips_exactly_with_its_rotary_and_norm_settings()
    {
        torch.manual_seed(5);
        var config = MemoryFormerConfig.Nano with
        {
            Width = 32, Heads = 2, BitsPerChunk = 4, RotaryFraction = 0.5, RotaryBase = 500, ContextLength = 24, NormEpsilon = 1e-5,
        };
        using var model = new LanguageModel(config);
        using var folder = NewFolder();
        model.ExportGptNeoXCheckpoint(folder.Path);
        var tokens = new long[,] { { 1, 2, 3, 4, 5, 6 } };
        // The export records the settings the tensors do not show in the checkpoint's args: the default options take them.
        foreach (var options in new[] { null, new GptNeoXImportOptions { RotaryFraction = 0.5, RotaryBase = 500 } })
        {
            using var back = LanguageModel.ImportGptNeoXCheckpoint(folder.Path, options);
            Assert.Equal(Logits(model, tokens), Logits(back, tokens));
            Assert.Equal(config with { TableInitStd = back.Config.TableInitStd, QkvInitStd = back.Config.QkvInitStd }, back.Config);
        }
        var conflict = Assert.Throws<InvalidDataException>(() => LanguageModel.ImportGptNeoXCheckpoint(folder.Path, new GptNeoXImportOptions { RotaryBase = 400 }));
        Assert.Contains("rotary_emb_base = 500 but GptNeoXImportOptions.RotaryBase is 400", conflict.Message);
    }

    [Fact]
    public void Layer_norm_models_round_trip()
    {
        torch.manual_seed(6);
        var config = MemoryFormerConfig.Nano with { Norm = NormKind.LayerNorm, NormEpsilon = 1e-5 };
        using var model = new LanguageModel(config);
        using var folder = NewFolder();
        model.ExportGptNeoXCheckpoint(folder.Path, new GptNeoXExportOptions { PipelineLayout = true });
        using var back = LanguageModel.ImportGptNeoXCheckpoint(folder.Path);
        Assert.Equal(NormKind.LayerNorm, back.Config.Norm);
        var tokens = new long[,] { { 3, 1, 4, 1, 5 } };
        Assert.Equal(Logits(model, tokens), Logits(back, tokens));
    }

    [Theory]
    [InlineData(NormKind.RmsNorm)]
    [InlineData(NormKind.LayerNorm)]
    public void The_names_checked_before_allocation_are_the_names_of_the_model(NormKind norm)
    {
        using var model = new LanguageModel(MemoryFormerConfig.Nano with { Norm = norm, NormEpsilon = norm == NormKind.LayerNorm ? MemoryFormerConfig.MinLayerNormEpsilon : MemoryFormerConfig.Nano.NormEpsilon });
        Assert.Equal(GptNeoXLayout.Names(model.Config).Select(n => $"{n.Stage}|{n.Name}|{string.Join(",", n.Shape)}"),
            GptNeoXLayout.Slots(model).Select(s => $"{s.Stage}|{s.Name}|{string.Join(",", s.Tensor.shape)}"));
        Assert.Equal(model.parameters().Count(), GptNeoXLayout.Slots(model).Count);  // every parameter has a place
    }

    [Fact]
    public void Tensor_parallel_shards_are_refused()
    {
        using var folder = NewFolder();
        using var model = LanguageModel.ImportGptNeoXCheckpoint(OfficialFile);
        var step = model.ExportGptNeoXCheckpoint(folder.Path);
        File.Copy(Path.Combine(step, "mp_rank_00_model_states.pt"), Path.Combine(step, "mp_rank_01_model_states.pt"));
        var e = Assert.Throws<NotSupportedException>(() => LanguageModel.ImportGptNeoXCheckpoint(folder.Path));
        Assert.Contains("tensor (model) parallelism", e.Message);
        Assert.Contains("mp_rank_01", e.Message);
    }

    [Fact]
    public void Tensor_parallel_layer_files_and_recorded_world_sizes_are_refused()
    {
        using var model = LanguageModel.ImportGptNeoXCheckpoint(OfficialFile);
        using (var folder = NewFolder())
        {
            var step = model.ExportGptNeoXCheckpoint(folder.Path, new GptNeoXExportOptions { PipelineLayout = true });
            File.Copy(Path.Combine(step, "layer_02-model_00-model_states.pt"), Path.Combine(step, "layer_02-model_01-model_states.pt"));
            Assert.Contains("layer_02-model_01", Assert.Throws<NotSupportedException>(() => LanguageModel.ImportGptNeoXCheckpoint(folder.Path)).Message);
        }
        using (var folder = NewFolder())
        {
            var path = Path.Combine(folder.Path, "mp_rank_00_model_states.pt");
            var module = new PickleDict { Ordered = true };
            foreach (var s in GptNeoXLayout.Slots(model)) module.Set(s.SequentialKey, s.Tensor);
            var root = new PickleDict();
            root.Set("module", module);
            root.Set("mp_world_size", 2L);
            TorchCheckpointWriter.Write(path, root);
            Assert.Contains("mp_world_size = 2", Assert.Throws<NotSupportedException>(() => LanguageModel.ImportGptNeoXCheckpoint(path)).Message);
        }
    }

    [Fact]
    public void An_extra_table_memory_block_is_refused()
    {
        using var model = LanguageModel.ImportGptNeoXCheckpoint(OfficialFile);
        // extra_table: ML1 d -> 2d over K tables of 2^tau rows, ML2 over 2K tables of 2^tau rows (d = 64, K = 32, tau = 2).
        var slots = GptNeoXLayout.Slots(model).Select(s => s.Name switch
        {
            "mlp.0.tables" => s with { Tensor = torch.zeros(128, 128) },
            "mlp.2.tables" => s with { Tensor = torch.zeros(256, 64) },
            _ => s,
        });
        Assert.Contains("extra_table", ImportNotSupported(slots).Message);
    }

    [Fact]
    public void Other_weight_functions_dense_models_and_other_extra_bits_are_refused_on_export()
    {
        using var folder = NewFolder();
        foreach (var (config, expected) in new (MemoryFormerConfig, string)[]
                 {
                     (MemoryFormerConfig.Nano with { WeightFunction = HashWeightFunction.SigmoidProduct }, "weight function"),
                     (MemoryFormerConfig.Nano with { Kind = TransformerKind.Dense }, "dense baseline"),
                     (MemoryFormerConfig.Nano with { ExtraBits = 3 }, "ExtraBits = 3"),
                     (MemoryFormerConfig.Nano with { Width = 24, Heads = 2, BitsPerChunk = 4, RotaryFraction = 0.25 }, "odd"),
                     (MemoryFormerConfig.Nano with { Dropout = 0.1 }, "Dropout = 0.1"),
                 })
        {
            using var model = new LanguageModel(config);
            var e = Assert.Throws<NotSupportedException>(() => model.ExportGptNeoXCheckpoint(folder.Path));
            Assert.Contains(expected, e.Message);
        }
    }

    [Fact]
    public void Missing_unexpected_and_misshapen_tensors_are_refused()
    {
        using var model = LanguageModel.ImportGptNeoXCheckpoint(OfficialFile);
        var slots = GptNeoXLayout.Slots(model);

        var missing = Import(slots.Where(s => s.Name != "mlp.1.bias" || s.Stage != 3));
        Assert.Contains("lacks", missing.Message);
        Assert.Contains("mlp.1.bias", missing.Message);

        var extra = Import(slots.Append(new GptNeoXLayout.Slot(2, "attention.qk_layernorm.weight", torch.ones(4))));
        Assert.Contains("no place for", extra.Message);
        Assert.Contains("qk_layernorm", extra.Message);

        var misshapen = Import(slots.Select(s => s.Stage == 3 && s.Name == "mlp.1.weight" ? s with { Tensor = torch.ones(7) } : s));
        Assert.Contains("mlp.1.weight", misshapen.Message);
        Assert.Contains("[7]", misshapen.Message);

        var projection = Import(slots.Append(new GptNeoXLayout.Slot(2, "attention.query_proj.hash.projection.weight", torch.ones(4, 4))));
        Assert.Contains("projection", projection.Message);
    }

    [Fact]
    public void Unsupported_official_layouts_are_refused_with_the_option_named()
    {
        using var model = LanguageModel.ImportGptNeoXCheckpoint(OfficialFile);
        var slots = GptNeoXLayout.Slots(model);
        var single = ImportNotSupported(slots.Where(s => !s.Name.StartsWith("mlp.", StringComparison.Ordinal))
            .Append(new GptNeoXLayout.Slot(2, "mlp.tables", torch.ones(4, 4))));
        Assert.Contains("double_mlp_table", single.Message);
        var fcQkv = ImportNotSupported(slots.Append(new GptNeoXLayout.Slot(2, "attention.query_proj.weight", torch.ones(4, 4))));
        Assert.Contains("fc_qkv", fcQkv.Message);
    }

    [Fact]
    public void A_checkpoint_without_args_needs_the_heads()
    {
        using var model = LanguageModel.ImportGptNeoXCheckpoint(OfficialFile);
        using var folder = NewFolder();
        var path = Path.Combine(folder.Path, "bare.pt");
        var sd = new PickleDict { Ordered = true };
        foreach (var s in GptNeoXLayout.Slots(model)) sd.Set(s.SequentialKey, s.Tensor);
        TorchCheckpointWriter.Write(path, sd);                                     // torch.save(state_dict): no args
        var e = Assert.Throws<InvalidDataException>(() => LanguageModel.ImportGptNeoXCheckpoint(path));
        Assert.Contains("GptNeoXImportOptions.Heads", e.Message);
        var (tokens, expected) = Expected();
        using var back = LanguageModel.ImportGptNeoXCheckpoint(path, new GptNeoXImportOptions { Heads = 2, ContextLength = 32 });
        Assert.True(RelativeError(Logits(back, tokens), expected) <= 1e-5);
    }

    [Fact]
    public void Wrong_rotary_base_is_caught_by_a_saved_inv_freq_buffer()
    {
        using var model = LanguageModel.ImportGptNeoXCheckpoint(OfficialFile);
        var slots = GptNeoXLayout.Slots(model).ToList();
        var invFreq = 1.0 / torch.pow(10000, torch.arange(0, 8, 2, dtype: torch.ScalarType.Float32) / 8);
        slots.Add(new GptNeoXLayout.Slot(2, "attention.rotary_emb.inv_freq", invFreq));
        using var folder = NewFolder();
        var path = Write(folder.Path, slots);
        using (LanguageModel.ImportGptNeoXCheckpoint(path, new GptNeoXImportOptions { Heads = 2, ContextLength = 32 })) { }
        var e = Assert.Throws<InvalidDataException>(() =>
            LanguageModel.ImportGptNeoXCheckpoint(path, new GptNeoXImportOptions { Heads = 2, ContextLength = 32, RotaryBase = 500 }));
        Assert.Contains("rotary", e.Message);
    }

    [Fact]
    public void MLContext_import_of_a_checkpoint_needs_a_tokenizer_that_fits_its_vocabulary()
    {
        var ml = new MLContext(seed: 1);
        var tokenizer = new ByteLevelTokenizer();
        var e = Assert.Throws<ArgumentException>(() => ml.Text.ImportLanguageModel(OfficialFolder));
        Assert.Contains("tokenizer", e.Message);
        var tooBig = Assert.Throws<ArgumentException>(() => ml.Text.ImportLanguageModel(OfficialFolder, tokenizer));
        Assert.Equal("tokenizer", tooBig.ParamName);                               // 256 byte ids do not fit 64 rows: the wrong argument
        Assert.Contains("has a vocabulary of 64: pass the tokenizer the model was trained with", tooBig.Message);
    }

    private static InvalidDataException Import(IEnumerable<GptNeoXLayout.Slot> slots)
    {
        using var folder = NewFolder();
        var path = Write(folder.Path, slots);
        return Assert.Throws<InvalidDataException>(() => LanguageModel.ImportGptNeoXCheckpoint(path, new GptNeoXImportOptions { Heads = 2, ContextLength = 32 }).Dispose());
    }

    private static NotSupportedException ImportNotSupported(IEnumerable<GptNeoXLayout.Slot> slots)
    {
        using var folder = NewFolder();
        var path = Write(folder.Path, slots);
        return Assert.Throws<NotSupportedException>(() => LanguageModel.ImportGptNeoXCheckpoint(path, new GptNeoXImportOptions { Heads = 2, ContextLength = 32 }).Dispose());
    }

    private static string Write(string folder, IEnumerable<GptNeoXLayout.Slot> slots)
    {
        var path = Path.Combine(folder, "mp_rank_00_model_states.pt");
        var module = new PickleDict { Ordered = true };
        foreach (var s in slots) module.Set(s.SequentialKey, s.Tensor);
        var root = new PickleDict();
        root.Set("module", module);
        TorchCheckpointWriter.Write(path, root);
        return path;
    }
}
