using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Diagnostics;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Interop;

/// <summary>
/// Imports and exports <see cref="LanguageModel"/>s as checkpoints of the official MemoryFormer code (a GPT-NeoX fork on
/// DeepSpeed): <c>{save}/global_step{N}/mp_rank_00_model_states.pt</c> with the weights under <c>module</c>
/// (keys <c>sequential.{stage}.{name}</c>), or per-stage files <c>layer_{stage:02d}-model_00-model_states.pt</c>
/// (see <see cref="GptNeoXLayout"/>). Only weights travel: optimizer state, learning-rate schedule and RNG states are
/// neither read nor written.
/// </summary>
internal static partial class GptNeoXCheckpoint
{
    private const string ModelStates = "mp_rank_00_model_states.pt";

    [GeneratedRegex(@"^mp_rank_(\d+)_model_states\.pt$")]
    private static partial Regex MpRankFile();

    [GeneratedRegex(@"^layer_(\d+)-model_(\d+)-model_states\.pt$")]
    private static partial Regex LayerFile();

    [GeneratedRegex(@"^(?:module\.)?(?:sequential\.)?(\d+)\.(.+)$")]
    private static partial Regex ModuleKey();

    /// <summary>Reads a checkpoint: the <c>.pt</c> file, its <c>global_step</c> folder, or the save folder holding <c>latest</c>.</summary>
    public static LanguageModel Import(string path, GptNeoXImportOptions options)
    {
        var (folder, file) = Resolve(path);
        CheckNoTensorParallel(folder);
        var opened = new List<TorchCheckpointFile>();
        try
        {
            var views = new Dictionary<string, (TorchCheckpointFile File, PickleTensor View)>(StringComparer.Ordinal);
            PickleDict? args = null;
            bool moduleFound = false;
            if (file is not null)
            {
                var mp = TorchCheckpointFile.Open(file);
                opened.Add(mp);
                var root = mp.Root as PickleDict ?? throw new InvalidDataException($"'{file}' does not hold a dict.");
                args = root.Get("args") as PickleDict;
                if (root.Get("mp_world_size") is long world && world > 1) throw TensorParallel($"'{file}' records mp_world_size = {world}");
                if (root.Has("module"))
                {
                    if (root.Get("module") is PickleDict module) { Collect(module, mp, file, null, views); moduleFound = true; }
                }
                else if (root.Entries.Count > 0 && root.Entries.All(e => e.Value is PickleTensor))
                {
                    Collect(root, mp, file, null, views);                                 // a bare torch.save(state_dict)
                    moduleFound = true;
                }
            }
            if (args?.Get("model_parallel_size") is long mpSize && mpSize > 1) throw TensorParallel($"the checkpoint's args record model_parallel_size = {mpSize}");
            if (!moduleFound)
            {
                var layers = Directory.GetFiles(folder, "layer_*-model_00-model_states.pt").Order(StringComparer.Ordinal).ToList();
                if (layers.Count == 0)
                    throw new InvalidDataException($"'{path}' holds no weights: neither a 'module' in {ModelStates} nor layer_XX-model_00-model_states.pt files in '{folder}'.");
                foreach (var layer in layers)
                {
                    var match = LayerFile().Match(Path.GetFileName(layer));
                    if (!match.Success || !int.TryParse(match.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int stage))
                        throw new InvalidDataException($"'{layer}' is not named layer_<stage>-model_00-model_states.pt.");
                    var lf = TorchCheckpointFile.Open(layer);
                    opened.Add(lf);
                    Collect(lf.Root as PickleDict ?? throw new InvalidDataException($"'{layer}' does not hold a state dict."), lf, layer, stage, views);
                }
            }
            var config = InferConfig(views, args, options);
            CheckNames(config, views);
            long stored = views.Values.DistinctBy(v => (v.File, v.View.Storage.Key)).Sum(v => v.View.Storage.Numel);
            long needed = CostEstimator.LanguageModelParameters(config);
            if (needed > stored)                                                    // before the model is allocated
                throw new InvalidDataException($"The checkpoint's shapes describe a model of {needed} parameters but its storages hold {stored} values (damaged, or tensors share storage).");
            return Build(config, views);
        }
        finally
        {
            foreach (var f in opened) f.Dispose();
        }
    }

    /// <summary>Writes <paramref name="model"/> under <paramref name="folder"/>/global_step{N} and sets <c>latest</c>.</summary>
    public static string Export(LanguageModel model, string folder, GptNeoXExportOptions options)
    {
        var c = model.Config;
        var slots = GptNeoXLayout.Slots(model);                                      // refuses what the official code cannot express
        if (options.Iteration < 0) throw new ArgumentOutOfRangeException(nameof(options), "Iteration must not be negative.");
        var tag = $"global_step{options.Iteration}";
        var target = Path.Combine(folder, tag);
        Directory.CreateDirectory(target);
        var args = new PickleDict();
        args.Set("num_layers", (long)c.Layers);
        args.Set("hidden_size", (long)c.Width);
        args.Set("num_attention_heads", (long)c.Heads);
        args.Set("max_position_embeddings", (long)c.ContextLength);
        args.Set("padded_vocab_size", (long)c.VocabularySize);
        args.Set("model_parallel_size", 1L);
        foreach (var (name, value) in RecordedSettings(c)) args.Set(name, value);   // read back on import (the tensors do not say)
        PickleDict? module = null;
        if (options.PipelineLayout)
        {
            foreach (var stage in slots.GroupBy(s => s.Stage))
            {
                var sd = new PickleDict { Ordered = true };
                foreach (var s in stage) sd.Set(s.Name, s.Tensor);
                TorchCheckpointWriter.Write(Path.Combine(target, $"layer_{stage.Key:00}-model_00-model_states.pt"), sd);
            }
        }
        else
        {
            module = new PickleDict { Ordered = true };
            foreach (var s in slots) module.Set(s.SequentialKey, s.Tensor);
        }
        var root = new PickleDict();
        root.Set("module", module);
        root.Set("buffer_names", new List<object?>());
        root.Set("optimizer", null);
        root.Set("lr_scheduler", null);
        root.Set("sparse_tensor_module_names", new List<object?>());
        root.Set("skipped_steps", 0L);
        root.Set("global_steps", (long)options.Iteration);
        root.Set("global_samples", 0L);
        root.Set("dp_world_size", 1L);
        root.Set("mp_world_size", 1L);
        root.Set("iteration", (long)options.Iteration);
        root.Set("args", args);
        TorchCheckpointWriter.Write(Path.Combine(target, ModelStates), root);
        File.WriteAllText(Path.Combine(folder, "latest"), tag);
        File.WriteAllText(Path.Combine(folder, "memoryformer_model.yml"), ModelYaml(c, options.PipelineLayout));
        return target;
    }

    private static (string Folder, string? File) Resolve(string path)
    {
        if (File.Exists(path))
        {
            var name = Path.GetFileName(path);
            var folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
            return LayerFile().IsMatch(name) ? (folder, null) : (folder, path);
        }
        if (!Directory.Exists(path))
            throw new FileNotFoundException($"'{path}' is neither a checkpoint file nor a folder. Pass the global_stepN folder, its {ModelStates}, or the save folder holding 'latest'.", path);
        var latest = Path.Combine(path, "latest");
        if (!File.Exists(Path.Combine(path, ModelStates)) && File.Exists(latest))
        {
            var tag = File.ReadAllText(latest).Trim();
            if (tag.Length is 0 or > 64 || !tag.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '_' or '-' or '.') || tag.Contains(".."))
                throw new InvalidDataException($"'{latest}' names the tag '{tag}', which is not a folder name.");
            path = Path.Combine(path, tag);
        }
        var file = Path.Combine(path, ModelStates);
        return (path, File.Exists(file) ? file : null);
    }

    private static void CheckNoTensorParallel(string folder)
    {
        if (!Directory.Exists(folder)) return;
        foreach (var f in Directory.EnumerateFiles(folder).Select(Path.GetFileName))
        {
            var mp = MpRankFile().Match(f!);
            if (mp.Success && mp.Groups[1].Value.Any(c => c != '0')) throw TensorParallel($"'{folder}' holds {f}");
            var layer = LayerFile().Match(f!);
            if (layer.Success && layer.Groups[2].Value.Any(c => c != '0')) throw TensorParallel($"'{folder}' holds {f}");
        }
    }

    private static NotSupportedException TensorParallel(string evidence) => new(
        $"The checkpoint is split for tensor (model) parallelism ({evidence}); only model-parallel-size 1 is supported. " +
        "Merge the shards first (GPT-NeoX tools/ckpts, or continue training with model-parallel-size: 1 and save again).");

    private static void Collect(PickleDict dict, TorchCheckpointFile file, string path, int? stage,
        Dictionary<string, (TorchCheckpointFile, PickleTensor)> views)
    {
        foreach (var (key, value) in dict.Entries)
        {
            if (key is not string name) throw new InvalidDataException($"'{path}' has a state-dict key that is not a string.");
            int s;
            string local;
            if (stage is int given) { s = given; local = name; }
            else
            {
                var m = ModuleKey().Match(name);
                if (!m.Success || !int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out s))
                    throw new InvalidDataException($"'{path}' holds the key '{Printable(name)}', which is not a GPT-NeoX pipeline key 'sequential.<stage>.<name>'.");
                local = m.Groups[2].Value;
            }
            if (value is not PickleTensor view) throw new InvalidDataException($"'{path}': '{Printable(name)}' is not a tensor.");
            file.CheckFits(view, name);
            if (!views.TryAdd(Key(s, local), (file, view))) throw new InvalidDataException($"The checkpoint holds '{Printable(name)}' of stage {s} twice.");
        }
    }

    private static string Key(int stage, string name) => $"{stage}|{name}";

    private static MemoryFormerConfig InferConfig(Dictionary<string, (TorchCheckpointFile File, PickleTensor View)> views, PickleDict? args, GptNeoXImportOptions options)
    {
        long[] Shape(int stage, string name) => views.TryGetValue(Key(stage, name), out var v) ? v.View.Shape
            : throw new InvalidDataException($"The checkpoint lacks '{name}' of pipeline stage {stage}; it is not a MemoryFormer GPT-NeoX checkpoint of the supported shape (see docs/scale.md).");
        var embedding = Shape(0, "word_embeddings.weight");
        if (embedding.Length != 2) throw new InvalidDataException($"word_embeddings.weight has shape [{string.Join(", ", embedding)}]; expected [vocabulary, hidden].");
        if (embedding[0] > MemoryFormerConfig.MaxVocabularySize || embedding[1] > MemoryFormerConfig.MaxWidth)
            throw new InvalidDataException($"word_embeddings.weight has shape [{string.Join(", ", embedding)}], beyond the largest vocabulary or width supported.");
        int vocab = (int)embedding[0], width = (int)embedding[1];
        int layers = 0;
        while (views.Keys.Any(k => k.StartsWith($"{GptNeoXLayout.BlockStage(layers)}|input_layernorm.", StringComparison.Ordinal))) layers++;
        if (layers == 0) throw new InvalidDataException("The checkpoint holds no transformer layer (no 'input_layernorm' in stage 2).");
        bool rms = views.ContainsKey(Key(2, "input_layernorm.scale"));
        if (views.Keys.Any(k => k.EndsWith("|mlp.tables", StringComparison.Ordinal)))
            throw new NotSupportedException("The checkpoint's MLP is a single MemoryLayer (double_mlp_table: false); only the Memory Block of double_mlp_table: true, mlp_expand_type: extra_bit is supported.");
        if (views.Keys.Any(k => k.EndsWith("|attention.query_proj.weight", StringComparison.Ordinal)))
            throw new NotSupportedException("The checkpoint's attention uses nn.Linear Q/K/V (fc_qkv: true, the dense baseline); only Memory Layer Q/K/V are supported.");
        var q = Shape(2, "attention.query_proj.tables");
        var mlp0 = Shape(2, "mlp.0.tables");
        // τ = 1 and τ = 2 give Q/K/V tables of the same size (2d rows); the Memory Block's width K·(τ+2) tells them apart.
        bool Fits(int t) => width % t == 0 && q.Length == 2 && (long)(width / t) << t == q[0];
        int tau = Enumerable.Range(1, 16).Where(Fits).OrderByDescending(t => mlp0.Length == 2 && mlp0[1] == (long)(width / t) * (t + 2)).FirstOrDefault();
        if (tau == 0) throw new InvalidDataException($"attention.query_proj.tables has shape [{string.Join(", ", q)}], which is not [K·2^τ, {width}] with K·τ = {width} (a hashing projection, remove_projection: false, is not supported).");
        int k = width / tau;
        var mlp2 = Shape(2, "mlp.2.tables");
        if (mlp2.Length == 2 && mlp2[0] == (2L * k) << tau)                        // extra_table: 2K tables of 2^τ rows (extra_bit: K of 2^(τ+2))
            throw new NotSupportedException("The checkpoint's Memory Block uses mlp_expand_type: extra_table; only extra_bit (the official configs' setting) is supported.");
        int heads = options.Heads ?? Arg(args, "num_attention_heads")
            ?? throw new InvalidDataException("The checkpoint does not record num_attention_heads; pass GptNeoXImportOptions.Heads (num-attention-heads of its config).");
        int context = options.ContextLength ?? Arg(args, "max_position_embeddings") ?? Arg(args, "seq_length")
            ?? throw new InvalidDataException("The checkpoint does not record max_position_embeddings; pass GptNeoXImportOptions.ContextLength.");
        if (Arg(args, "num_layers") is int recorded && recorded != layers)
            throw new InvalidDataException($"The checkpoint's args record num_layers = {recorded} but it holds {layers} layers (files missing?).");
        try
        {
            return new MemoryFormerConfig
            {
                Kind = TransformerKind.MemoryFormer, VocabularySize = vocab, ContextLength = context, Width = width, Layers = layers,
                Heads = heads, BitsPerChunk = tau, ExtraBits = 2,
                RotaryFraction = Recorded(args, "rotary_pct", options.RotaryFraction, GptNeoXImportOptions.DefaultRotaryFraction, nameof(options.RotaryFraction)),
                RotaryBase = Recorded(args, "rotary_emb_base", options.RotaryBase, GptNeoXImportOptions.DefaultRotaryBase, nameof(options.RotaryBase)),
                WeightFunction = HashWeightFunction.L1ScaledSigmoidProduct, Norm = rms ? NormKind.RmsNorm : NormKind.LayerNorm,
                NormEpsilon = options.NormEpsilon ?? Real(args, rms ? "rms_norm_epsilon" : "layernorm_epsilon") ?? (rms ? 1e-8 : 1e-5), Dropout = 0,
            }.Validate();
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"The checkpoint's shapes give an invalid config: {e.Message}", e);
        }
    }

    /// <summary>A real-valued setting: the checkpoint's <c>args</c> value when the option keeps its default (or equals it), the
    /// option when the checkpoint records none; a changed option that contradicts the recorded value is refused by name.</summary>
    private static double Recorded(PickleDict? args, string name, double option, double byDefault, string optionName)
    {
        if (Real(args, name) is not { } recorded || recorded == option) return option;
        if (option == byDefault) return recorded;
        throw new InvalidDataException($"The checkpoint's args record {name} = {recorded} but GptNeoXImportOptions.{optionName} is {option}; " +
            $"leave {optionName} at its default to take the recorded value.");
    }

    private static double? Real(PickleDict? args, string name) => args?.Get(name) switch
    {
        double d when double.IsFinite(d) && d > 0 => d,
        long l when l > 0 => l,
        _ => null,
    };

    private static int? Arg(PickleDict? args, string name) => args?.Get(name) is long v && v is > 0 and <= int.MaxValue ? (int)v : null;

    private static LanguageModel Build(MemoryFormerConfig config, Dictionary<string, (TorchCheckpointFile File, PickleTensor View)> views)
    {
        if ((int)(config.HeadWidth * config.RotaryFraction) % 2 != 0)
            throw new NotSupportedException($"int(head width {config.HeadWidth} × rotary-pct {config.RotaryFraction}) is odd; such rotary settings are not supported.");
        LanguageModel model;
        using (GeneratorLease.Hold())                     // its random initial weights, overwritten below: not amid a training's draws
            model = new LanguageModel(config);
        try
        {
            var slots = GptNeoXLayout.Slots(model);
            foreach (var key in views.Keys.Where(IsRotary)) CheckRotary(config, key, views[key]);
            using (torch.no_grad())
            {
                foreach (var slot in slots)
                {
                    var (file, view) = views[Key(slot.Stage, slot.Name)];
                    if (!view.Shape.SequenceEqual(slot.Tensor.shape))
                        throw new InvalidDataException($"Tensor '{slot.Name}' of stage {slot.Stage} has shape [{string.Join(", ", view.Shape)}]; " +
                            $"the model built from the checkpoint's shapes expects [{string.Join(", ", slot.Tensor.shape)}].");
                    using var value = file.ReadFloat32(view, slot.Name);
                    slot.Tensor.copy_(value);
                }
            }
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static bool IsRotary(string key) => key.EndsWith("|attention.rotary_emb.inv_freq", StringComparison.Ordinal);

    /// <summary>Refuses missing and unexpected tensors by name, before anything is allocated from the shapes.</summary>
    private static void CheckNames(MemoryFormerConfig config, Dictionary<string, (TorchCheckpointFile File, PickleTensor View)> views)
    {
        var names = GptNeoXLayout.Names(config);
        var expected = names.Select(n => Key(n.Stage, n.Name)).ToHashSet(StringComparer.Ordinal);
        var missing = expected.Where(e => !views.ContainsKey(e)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"The checkpoint lacks {missing.Count} tensors the model needs, e.g. {Describe(missing)}.");
        var unexpected = views.Keys.Where(key => !expected.Contains(key) && !IsRotary(key)).ToList();
        if (unexpected.Count > 0)
            throw new InvalidDataException($"The checkpoint holds {unexpected.Count} tensors this model has no place for, e.g. {Describe(unexpected)} " +
                "(a hashing projection, qk-layernorm, a dense attention output or another option the import does not support).");
        foreach (var (stage, name, shape) in names)
        {
            var stored = views[Key(stage, name)].View.Shape;
            if (!stored.SequenceEqual(shape))
                throw new InvalidDataException($"Tensor '{name}' of stage {stage} has shape [{string.Join(", ", stored)}]; " +
                    $"the model described by the checkpoint's other shapes expects [{string.Join(", ", shape)}].");
        }
    }

    private static void CheckRotary(MemoryFormerConfig config, string key, (TorchCheckpointFile File, PickleTensor View) entry)
    {
        int dims = config.RotaryDims;
        using var saved = entry.File.ReadFloat32(entry.View, key);
        using Scalar zero = 0, end = dims, step = 2, width = dims;   // named: see Runtime/LiveScalars.cs
        using var expected = torch.pow(torch.tensor(config.RotaryBase), torch.arange(zero, end, step, dtype: torch.ScalarType.Float32).div(width)).reciprocal();
        if (saved.shape.Length != 1 || saved.shape[0] != expected.shape[0] || !saved.allclose(expected, rtol: 1e-3, atol: 1e-6))
            throw new InvalidDataException($"The checkpoint's {key.Replace('|', ' ')} does not match rotary-pct {config.RotaryFraction} and " +
                $"rotary_emb_base {config.RotaryBase}; pass the checkpoint's values in GptNeoXImportOptions.");
    }

    private static string Describe(List<string> keys) =>
        string.Join(", ", keys.Take(3).Select(k => { var p = k.Split('|'); return $"'{p[1]}' (stage {p[0]})"; }));

    private static string Printable(string s) => s.Length > 80 ? s[..80] + "…" : s;

    /// <summary>A number as the YAML config writes it. YAML 1.1 (PyYAML, which GPT-NeoX uses) reads a float only with a '.', so
    /// 1e-8 is written 1.0e-08.</summary>
    private static string F(double v) => v.ToString(v != 0 && (Math.Abs(v) < 1e-4 || Math.Abs(v) >= 1e15) ? "0.0##############e-00" : "0.0##############",
        CultureInfo.InvariantCulture);

    /// <summary>The settings the YAML config holds that the tensors do not show, under neox_args' attribute names and with the
    /// values the official code reads from that YAML: its <c>check_checkpoint_args</c> compares every entry of a checkpoint's
    /// <c>args</c> with its own, so they must be equal, and the import reads them back.</summary>
    private static IEnumerable<(string Name, object Value)> RecordedSettings(MemoryFormerConfig c)
    {
        yield return ("rotary_pct", double.Parse(F(c.RotaryFraction), CultureInfo.InvariantCulture));
        yield return ("rotary_emb_base", c.RotaryBase % 1 == 0 && c.RotaryBase < 1e15 ? (object)(long)c.RotaryBase
            : double.Parse(F(c.RotaryBase), CultureInfo.InvariantCulture));
        yield return c.Norm == NormKind.RmsNorm ? ("rms_norm_epsilon", double.Parse(F(c.NormEpsilon), CultureInfo.InvariantCulture))
            : ("layernorm_epsilon", double.Parse(F(Math.Max(c.NormEpsilon, 1e-5)), CultureInfo.InvariantCulture));
    }

    private static string ModelYaml(MemoryFormerConfig c, bool pipeline)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# Model settings of a checkpoint exported by Microsoft.ML.MemoryFormer; merge into the official code's training config");
        sb.AppendLine("# (e.g. configs/memoryformer_tiny.yml) and load it with \"finetune\": true (weights only, fresh optimizer).");
        sb.AppendLine("{");
        sb.AppendLine($"  \"pipe-parallel-size\": {(pipeline ? 1 : 0)},");
        sb.AppendLine("  \"model-parallel-size\": 1,");
        sb.AppendLine($"  \"num-layers\": {c.Layers},");
        sb.AppendLine($"  \"hidden-size\": {c.Width},");
        sb.AppendLine($"  \"num-attention-heads\": {c.Heads},");
        sb.AppendLine($"  \"seq-length\": {c.ContextLength},");
        sb.AppendLine($"  \"max-position-embeddings\": {c.ContextLength},");
        sb.AppendLine("  \"pos-emb\": \"rotary\",");
        sb.AppendLine($"  \"rotary-pct\": {F(c.RotaryFraction)},");
        sb.AppendLine($"  \"rotary_emb_base\": {(c.RotaryBase % 1 == 0 && c.RotaryBase < 1e15 ? ((long)c.RotaryBase).ToString(CultureInfo.InvariantCulture) : F(c.RotaryBase))},"); // an int in neox_args
        sb.AppendLine("  \"no-weight-tying\": true,");
        sb.AppendLine("  \"gpt-j-residual\": false,");
        sb.AppendLine($"  \"norm\": \"{(c.Norm == NormKind.RmsNorm ? "rmsnorm" : "layernorm")}\",");
        sb.AppendLine($"  \"{(c.Norm == NormKind.RmsNorm ? "rms_norm_epsilon" : "layernorm_epsilon")}\": {F(c.Norm == NormKind.RmsNorm ? c.NormEpsilon : Math.Max(c.NormEpsilon, 1e-5))},");
        sb.AppendLine($"  # the embedding has {c.VocabularySize} rows: padded-vocab-size must come out equal (tokenizer size rounded up by make-vocab-size-divisible-by)");
        sb.AppendLine("  \"attn_memory_config\": {");
        sb.AppendLine($"    \"fc_qkv\": false, \"value_size\": {c.Width}, \"remove_projection\": true, \"shared_projection\": false, \"del_dense\": true,");
        sb.AppendLine($"    \"dense_size\": {c.Width}, \"ffn_num_table\": {c.ChunkCount}, \"code_length\": {c.BitsPerChunk}, \"projection_type\": \"dense\",");
        sb.AppendLine("    \"block_size\": 64, \"learn_weight\": false, \"act_fn\": \"silu\",");
        sb.AppendLine("  },");
        sb.AppendLine("  \"zero_pad_residual\": true,");
        sb.AppendLine("  \"repeat_residual\": false,");
        sb.AppendLine("  \"mlp_type\": \"MemoryBlock\",");
        sb.AppendLine("  \"double_mlp_table\": true,");
        sb.AppendLine("  \"mlp_expand_type\": \"extra_bit\",");
        sb.AppendLine("  \"memory_config\": {");
        sb.AppendLine($"    \"remove_projection\": true, \"hidden_size\": {c.Width}, \"output_size\": {c.Width}, \"ffn_num_table\": {c.ChunkCount},");
        sb.AppendLine($"    \"code_length\": {c.BitsPerChunk}, \"projection_type\": \"dense\", \"block_size\": 64, \"learn_weight\": false,");
        sb.AppendLine("    \"act_fn\": \"silu\", \"act_pos\": \"none\",");
        sb.AppendLine("  },");
        sb.AppendLine("}");
        return sb.ToString();
    }
}
