using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Models;
using TorchSharp;
using TorchSharp.Modules;

namespace Microsoft.ML.MemoryFormer.Interop;

/// <summary>
/// Where each tensor of a <see cref="LanguageModel"/> lives in the official code's GPT-NeoX model
/// (<c>C0-Design/MemoryFormer</c>, <c>megatron/model/gpt2_model.py</c> <c>GPT2ModelPipe.init_specs</c>): pipeline stage
/// 0 is <c>EmbeddingPipe</c> (<c>word_embeddings.weight</c>), stage 1 a parameter-free lambda, stages 2 … L+1 the
/// <c>ParallelTransformerLayerPipe</c> blocks (<c>megatron/model/transformer.py</c>: <c>input_layernorm</c>,
/// <c>attention.{query,key,value}_proj.{tables,bias}</c> from <c>memory_module/memory.py</c> <c>MemoryLayer</c>,
/// <c>post_attention_layernorm</c>, and <c>mlp</c> = <c>nn.Sequential(MemoryLayer, nn.LayerNorm, MemoryLayer)</c> for
/// <c>double_mlp_table</c> with <c>mlp_expand_type: extra_bit</c>), stage L+2 a lambda, L+3 <c>NormPipe</c>
/// (<c>norm.scale</c> for RMSNorm, <c>norm.weight</c>/<c>norm.bias</c> for LayerNorm) and L+4 <c>ParallelLinearPipe</c>
/// (<c>final_linear.weight</c>, untied: <c>no-weight-tying: true</c>).
/// </summary>
internal static class GptNeoXLayout
{
    /// <summary>One tensor: pipeline stage index, name inside the stage, and our parameter.</summary>
    internal sealed record Slot(int Stage, string Name, torch.Tensor Tensor)
    {
        /// <summary>The key in a single-file checkpoint (<c>sequential.{stage}.{name}</c>).</summary>
        public string SequentialKey => $"sequential.{Stage}.{Name}";
    }

    /// <summary>The stage of block <paramref name="layer"/>.</summary>
    public static int BlockStage(int layer) => layer + 2;

    /// <summary>The final norm's stage.</summary>
    public static int NormStage(MemoryFormerConfig c) => c.Layers + 3;

    /// <summary>The LM head's stage.</summary>
    public static int HeadStage(MemoryFormerConfig c) => c.Layers + 4;

    /// <summary>Throws <see cref="NotSupportedException"/> naming what the official code cannot express about <paramref name="c"/>.</summary>
    public static void CheckExpressible(MemoryFormerConfig c)
    {
        if (c.Kind != TransformerKind.MemoryFormer)
            throw new NotSupportedException("Only MemoryFormer models map onto the official code's layout; export the dense baseline as safetensors instead.");
        if (c.WeightFunction != HashWeightFunction.L1ScaledSigmoidProduct)
            throw new NotSupportedException(
                $"The model uses the {c.WeightFunction} weight function; the official code (compute_code_score_torch) implements only " +
                $"{HashWeightFunction.L1ScaledSigmoidProduct}, so the model would compute something else there.");
        if (c.ExtraBits != 2)
            throw new NotSupportedException($"The model's Memory Block uses ExtraBits = {c.ExtraBits}; the official code's extra_bit expansion hard-codes 2.");
        if ((int)(c.HeadWidth * c.RotaryFraction) % 2 != 0)
            throw new NotSupportedException(
                $"int(head width {c.HeadWidth} × RotaryFraction {c.RotaryFraction}) is odd; the official rotary embedding needs an even number of rotated dimensions.");
        c.ThrowIfHashCentering("The official code's layout (GPT-NeoX checkpoint export)");
        if (c.Dropout != 0)
            throw new NotSupportedException($"The model uses Dropout = {c.Dropout}; set hidden-dropout/attention-dropout in the official config instead (weights carry no dropout). Export a copy with Dropout = 0.");
    }

    /// <summary>The (stage, name, shape) of every tensor a model of <paramref name="c"/> has, in <see cref="Slots"/> order, without building it.</summary>
    public static List<(int Stage, string Name, long[] Shape)> Names(MemoryFormerConfig c)
    {
        long d = c.Width, k = c.ChunkCount, h1 = c.BlockHiddenWidth, v = c.VocabularySize;
        IEnumerable<(string, long[])> Norm(string name) => c.Norm == NormKind.RmsNorm
            ? [($"{name}.scale", [d])] : [($"{name}.weight", [d]), ($"{name}.bias", [d])];
        var names = new List<(int, string, long[])> { (0, "word_embeddings.weight", [v, d]) };
        for (int i = 0; i < c.Layers; i++)
        {
            int stage = BlockStage(i);
            names.AddRange(Norm("input_layernorm").Select(n => (stage, n.Item1, n.Item2)));
            foreach (var p in new[] { "query_proj", "key_proj", "value_proj" })
                names.AddRange([(stage, $"attention.{p}.tables", [k << c.BitsPerChunk, d]), (stage, $"attention.{p}.bias", [d])]);
            names.AddRange(Norm("post_attention_layernorm").Select(n => (stage, n.Item1, n.Item2)));
            names.AddRange([(stage, "mlp.0.tables", [k << c.BitsPerChunk, h1]), (stage, "mlp.0.bias", [h1]), (stage, "mlp.1.weight", [h1]),
                (stage, "mlp.1.bias", [h1]), (stage, "mlp.2.tables", [k << (c.BitsPerChunk + c.ExtraBits), d]), (stage, "mlp.2.bias", [d])]);
        }
        names.AddRange(Norm("norm").Select(n => (NormStage(c), n.Item1, n.Item2)));
        names.Add((HeadStage(c), "final_linear.weight", [v, d]));
        return names;
    }

    /// <summary>Every tensor of <paramref name="model"/> with its place in the official layout.</summary>
    public static List<Slot> Slots(LanguageModel model)
    {
        var c = model.Config;
        CheckExpressible(c);
        var slots = new List<Slot> { new(0, "word_embeddings.weight", model.Backbone.Embedding.weight!) };
        for (int i = 0; i < c.Layers; i++)
        {
            int stage = BlockStage(i);
            var block = model.Backbone.Blocks[i];
            slots.AddRange(Norm(stage, "input_layernorm", block.AttentionNorm));
            var qkv = (MemoryQkv)block.Attention.Qkv;
            foreach (var (name, layer) in new[] { ("query_proj", qkv.Query), ("key_proj", qkv.Key), ("value_proj", qkv.Value) })
            {
                slots.Add(new(stage, $"attention.{name}.tables", layer.Table));
                slots.Add(new(stage, $"attention.{name}.bias", layer.Bias));
            }
            slots.AddRange(Norm(stage, "post_attention_layernorm", block.FfnNorm));
            var ffn = (MemoryBlock)block.Ffn;
            slots.Add(new(stage, "mlp.0.tables", ffn.Expand.Table));
            slots.Add(new(stage, "mlp.0.bias", ffn.Expand.Bias));
            slots.Add(new(stage, "mlp.1.weight", ffn.Norm.weight!));
            slots.Add(new(stage, "mlp.1.bias", ffn.Norm.bias!));
            slots.Add(new(stage, "mlp.2.tables", ffn.Project.Table));
            slots.Add(new(stage, "mlp.2.bias", ffn.Project.Bias));
        }
        slots.AddRange(Norm(NormStage(c), "norm", model.Backbone.FinalNorm));
        slots.Add(new(HeadStage(c), "final_linear.weight", model.Head.weight!));
        return slots;
    }

    private static IEnumerable<Slot> Norm(int stage, string name, torch.nn.Module<torch.Tensor, torch.Tensor> norm) => norm switch
    {
        RmsNorm rms => [new(stage, $"{name}.scale", rms.Weight)],
        LayerNorm ln => [new(stage, $"{name}.weight", ln.weight!), new(stage, $"{name}.bias", ln.bias!)],
        _ => throw new NotSupportedException($"Norm module {norm.GetType().Name} has no official counterpart."),
    };
}
