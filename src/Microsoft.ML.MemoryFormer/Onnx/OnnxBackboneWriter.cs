using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Models;
using TorchSharp;
using TorchSharp.Modules;
using DataType = Microsoft.ML.MemoryFormer.Onnx.Protobuf.TensorProto.Types.DataType;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Onnx;

/// <summary>
/// Writes a <see cref="TransformerBackbone"/>'s blocks and final norm as standard ONNX operators, the same arithmetic
/// as the torch path: the sign hash as compare → cast → multiply by powers of two → sum (MSB first, z ≥ 0 → 1,
/// exact zeros included, as <see cref="SignHash.Reference"/>); the configured weight function with abs/softplus/exp;
/// the row read as Gather + weighted sum (batched MatMul) + bias; attention with the boolean mask of
/// <see cref="AttentionContext.BuildMask"/>; rotary (rotate-half); RMSNorm as in <see cref="RmsNorm"/>; LayerNorm.
/// </summary>
/// <param name="g">The graph being written.</param>
/// <param name="backbone">The backbone whose weights are copied into the graph.</param>
internal sealed class OnnxBackboneWriter(OnnxGraphBuilder g, TransformerBackbone backbone)
{
    private (string Cos, string Sin)? rotaryTables;

    private MemoryFormerConfig Config => backbone.Config;

    /// <summary>
    /// The attention inputs of one forward pass over x [B, T, d]: <paramref name="BatchTime"/> is int64 [2] = (B, T),
    /// <paramref name="Length"/> int64 [1] = T, <paramref name="Mask"/> the bool mask [B or 1, 1, T, P + T] (null =
    /// all positions visible), <paramref name="Past"/> int64 [1] = P, the cached positions (null without a cache),
    /// and <paramref name="Caches"/> the per-layer past keys/values [B, H, P, hd] (after rotary) with the names of
    /// the present ones [B, H, P + T, hd] filled in as the blocks are written.
    /// </summary>
    internal sealed record Pass(string BatchTime, string Length, string? Mask, string? Past = null, LayerCache[]? Caches = null);

    /// <summary>One layer's past key/value inputs and, once written, its present key/value values.</summary>
    internal sealed class LayerCache(string pastKey, string pastValue)
    {
        public string PastKey { get; } = pastKey;
        public string PastValue { get; } = pastValue;
        public string? PresentKey { get; set; }
        public string? PresentValue { get; set; }
    }

    /// <summary>
    /// The pass over token rows shaped like <paramref name="like"/> [B, T, ..]: causal or not, with the key mask
    /// <paramref name="keyMask"/> (bool [B, T], null = no padding). Mirrors <see cref="AttentionContext.BuildMask"/>.
    /// </summary>
    public Pass NewPass(string like, bool causal, string? keyMask) => NewPass(like, causal, keyMask, null);

    /// <summary>
    /// As <see cref="NewPass(string, bool, string?)"/>, after the cached positions of <paramref name="caches"/>
    /// (past keys [B, H, P, hd]); <paramref name="keyMask"/> then covers all P + T positions.
    /// </summary>
    public Pass NewPass(string like, bool causal, string? keyMask, LayerCache[]? caches)
    {
        var batchTime = g.Slice(g.Shape(like, "shape_in"), [0], [2], [0], "batch_time");        // [2]
        var length = g.Slice(batchTime, [1], [2], [0], "time");                                  // [1]
        var past = caches is null ? null : g.Dim(caches[0].PastKey, 2, "past");                 // [1]
        if (!causal && keyMask is null && past is null) return new Pass(batchTime, length, null);
        var total = past is null ? length : g.Add(past, length, "total");                       // [1] P + T
        var one = g.Ints([1], scalar: true);
        var keyRange = g.Node("Range", "key_positions", [g.Ints([0], scalar: true), g.Squeeze(total, [0], "total_scalar"), one]);
        var queryRange = past is null ? keyRange
            : g.Node("Range", "query_positions", [g.Squeeze(past, [0], "past_scalar"), g.Squeeze(total, [0], "end_scalar"), one]);
        var queries = g.Unsqueeze(queryRange, [1], "query_pos");                                 // [T, 1]
        var keys = g.Unsqueeze(keyRange, [0], "key_pos");                                        // [1, P + T]
        string? allowed = causal ? g.Node("LessOrEqual", "causal", [keys, queries]) : null;     // [T, P + T]
        if (keyMask is not null)
        {
            var visible = g.Unsqueeze(keyMask, [1, 2], "key_visible");                          // [B, 1, 1, P + T]
            allowed = allowed is null ? visible : g.Node("And", "allowed", [allowed, visible]); // [B, 1, T, P + T]
        }
        var self = g.Node("Equal", "self", [keys, queries]);                                     // [T, P + T]
        var mask = allowed is null ? null : g.Node("Or", "attention_mask_4d", [allowed, self]); // a query sees itself
        return new Pass(batchTime, length, mask, past, caches);
    }

    /// <summary>Embeddings x [B, T, d] → hidden states [B, T, d] after the blocks and the final norm.</summary>
    public string Blocks(string x, Pass pass)
    {
        for (int i = 0; i < backbone.Blocks.Count; i++)
            x = Block(backbone.Blocks[i], x, pass, pass.Caches?[i], $"blocks.{i}");
        return Norm(backbone.FinalNorm, x, "final_norm");
    }

    /// <summary>Token ids int64 [B, T] → embeddings [B, T, d].</summary>
    public string Embed(string ids) => g.Gather(g.Weight("embedding.weight", backbone.Embedding.weight!), ids, 0, "embedded");

    private string Block(TransformerBlock block, string x, Pass pass, LayerCache? cache, string name)
    {
        var attended = Attention(block.Attention, Norm(block.AttentionNorm, x, name + ".attention_norm"), pass, cache, name + ".attention");
        var z = g.Add(x, attended, name + ".residual1");                                        // [B, T, d]
        var flat = g.Reshape(Norm(block.FfnNorm, z, name + ".ffn_norm"), [-1, Config.Width], name + ".ffn_in"); // [N, d]
        var ffn = block.Ffn switch
        {
            MemoryBlock memory => WriteMemoryBlock(memory, flat, name + ".ffn"),
            DenseMlp => WriteDenseMlp(block.Ffn, flat, name + ".ffn"),
            _ => throw new NotSupportedException($"ONNX export does not know the FFN '{block.Ffn.GetType().Name}'."),
        };
        var shaped = g.Reshape(ffn, g.Shape(z, name + ".shape"), name + ".ffn_out");            // [B, T, d]
        return g.Add(z, shaped, name + ".residual2");
    }

    private string Attention(SelfAttention attention, string x, Pass pass, LayerCache? cache, string name)
    {
        var flat = g.Reshape(x, [-1, Config.Width], name + ".flat");                            // [N, d]
        string q, k, v;
        if (attention.Qkv is MemoryQkv memory)
        {
            var (rows, weights) = Hash(flat, memory.Value, name + ".qkv_hash");                  // one hash for Q, K, V
            q = Read(memory.Query, rows, weights, name + ".q");
            k = Read(memory.Key, rows, weights, name + ".k");
            v = Read(memory.Value, rows, weights, name + ".v");
        }
        else
        {
            var linear = (Linear)attention.Qkv.named_children().Single().module;
            var qkv = g.Linear(flat, linear.weight!, linear.bias, name + ".qkv");               // [N, 3d]
            long d = Config.Width;
            q = g.Slice(qkv, [0], [d], [1], name + ".q");
            k = g.Slice(qkv, [d], [2 * d], [1], name + ".k");
            v = g.Slice(qkv, [2 * d], [3 * d], [1], name + ".v");
        }
        var headShape = g.Concat([pass.BatchTime, g.Ints([Config.Heads, Config.HeadWidth])], 0, name + ".head_shape");
        q = Rotary(attention.Rotary, SplitHeads(q, headShape, name + ".qh"), pass, name + ".q_rot");   // [B, H, T, hd]
        k = Rotary(attention.Rotary, SplitHeads(k, headShape, name + ".kh"), pass, name + ".k_rot");   // [B, H, T, hd]
        v = SplitHeads(v, headShape, name + ".vh");                                                     // [B, H, T, hd]
        if (cache is not null)
        {
            k = cache.PresentKey = g.Concat([cache.PastKey, k], 2, name + ".present_key");              // [B, H, P + T, hd]
            v = cache.PresentValue = g.Concat([cache.PastValue, v], 2, name + ".present_value");
        }
        var scores = g.MatMul(q, g.Transpose(k, [0, 1, 3, 2], name + ".kt"), name + ".scores");        // [B, H, T, T]
        scores = g.Mul(scores, g.Float((float)(1.0 / Math.Sqrt(Config.HeadWidth))), name + ".scaled");
        if (pass.Mask is not null)
            scores = g.Where(pass.Mask, scores, g.Float(float.NegativeInfinity), name + ".masked");
        var y = g.MatMul(g.Softmax(scores, -1, name + ".probs"), v, name + ".context");                // [B, H, T, hd]
        y = g.Transpose(y, [0, 2, 1, 3], name + ".merge");                                              // [B, T, H, hd]
        var outShape = g.Concat([pass.BatchTime, g.Ints([Config.Width])], 0, name + ".out_shape");
        y = g.Reshape(y, outShape, name + ".out");                                                      // [B, T, d]
        var output = attention.named_children().Select(c => c.module).OfType<Linear>().SingleOrDefault();
        return output is null ? y : g.Linear(y, output.weight!, output.bias, name + ".output");
    }

    private string SplitHeads(string x, string headShape, string name) =>
        g.Transpose(g.Reshape(x, headShape, name + "_split"), [0, 2, 1, 3], name);            // [B, H, T, hd]

    /// <summary>Rotate-half on the first r dims of each head at positions P … P+T−1, as <see cref="RotaryEmbedding.Apply"/>.</summary>
    private string Rotary(RotaryEmbedding rotary, string x, Pass pass, string name)
    {
        int r = rotary.RotaryDims, hd = Config.HeadWidth;
        if (r == 0) return x;
        var (cos, sin) = rotaryTables ??= RotaryTables(rotary, pass);                           // [T, r] each, shared
        var rot = r == hd ? x : g.Slice(x, [0], [r], [3], name + ".rot");                       // [B, H, T, r]
        var x1 = g.Slice(rot, [0], [r / 2], [3], name + ".x1");
        var x2 = g.Slice(rot, [r / 2], [r], [3], name + ".x2");
        var rotated = g.Concat([g.Unary("Neg", x2, name + ".neg_x2"), x1], 3, name + ".rotated");
        var mixed = g.Add(g.Mul(rot, cos, name + ".rc"), g.Mul(rotated, sin, name + ".rs"), name + ".mixed");
        if (r == hd) return mixed;
        var pass2 = g.Slice(x, [r], [hd], [3], name + ".pass");                                  // [B, H, T, hd−r]
        return g.Concat([mixed, pass2], 3, name);
    }

    /// <summary>cos and sin [T, r] of positions P … P+T−1 (every block has the same tables).</summary>
    private (string Cos, string Sin) RotaryTables(RotaryEmbedding rotary, Pass pass)
    {
        var (cos, sin) = rotary.Tables;                                                          // [context, r]
        var start = pass.Past ?? g.Ints([0]);
        var end = pass.Past is null ? pass.Length : g.Add(pass.Past, pass.Length, "rotary_end");
        return (g.Slice(g.Weight("rotary.cos", cos), start, end, [0], "rotary_cos"),
            g.Slice(g.Weight("rotary.sin", sin), start, end, [0], "rotary_sin"));
    }

    /// <summary>x [N, K·τ] → (rows int64 [N, K], weights [N, K]) as <see cref="SignHash.Reference"/> computes them.</summary>
    private (string Rows, string Weights) Hash(string x, MemoryLayer layer, string name)
    {
        int k = layer.ChunkCount, bits = layer.BitsPerChunk;
        var z = g.Reshape(x, [-1, k, bits], name + ".chunks");                                   // [N, K, τ]
        var signs = g.Cast(g.Node("GreaterOrEqual", name + ".ge", [z, g.Float(0f)]), DataType.Int64, name + ".bits");
        var powers = Enumerable.Range(0, bits).Select(i => 1L << (bits - 1 - i)).ToArray();     // MSB first
        var codes = g.ReduceSum(g.Mul(signs, g.Ints(powers), name + ".weighted_bits"), [-1], false, name + ".codes"); // [N, K]
        var offsets = Enumerable.Range(0, k).Select(i => (long)i << bits).ToArray();            // table k starts at k·2^τ
        var rows = g.Add(codes, g.Ints(offsets), name + ".rows");                                // [N, K]
        var a = g.Unary("Abs", z, name + ".abs");                                                // [N, K, τ]
        bool l1 = layer.WeightFunction == HashWeightFunction.L1ScaledSigmoidProduct;
        var scaled = g.Mul(a, g.Float(l1 ? -2f : (float)(-2.0 / layer.Temperature)), name + ".neg_scaled");
        var logP = g.ReduceSum(g.Unary("Softplus", scaled, name + ".softplus"), [-1], false, name + ".log_p"); // −log Π σ
        var p = g.Unary("Exp", g.Unary("Neg", logP, name + ".neg_log_p"), name + ".p");        // Π σ(2|zᵢ|/t)
        var weights = l1 ? g.Mul(p, g.ReduceSum(a, [-1], false, name + ".l1"), name + ".weights") : p; // [N, K]
        return (rows, weights);
    }

    /// <summary>Σₖ w[n,k] · table[rows[n,k]] + b → [N, h].</summary>
    private string Read(MemoryLayer layer, string rows, string weights, string name)
    {
        var gathered = g.Gather(g.Weight(name + ".table", layer.Table), rows, 0, name + ".gathered"); // [N, K, h]
        var sum = g.MatMul(g.Unsqueeze(weights, [1], name + ".w"), gathered, name + ".bag");           // [N, 1, h]
        return g.Add(g.Squeeze(sum, [1], name + ".bag_flat"), g.Weight(name + ".bias", layer.Bias), name);
    }

    private string Layer(MemoryLayer layer, string x, string name)
    {
        var (rows, weights) = Hash(x, layer, name + ".hash");
        return Read(layer, rows, weights, name);
    }

    private string WriteMemoryBlock(MemoryBlock block, string x, string name)
    {
        var hidden = Layer(block.Expand, x, name + ".expand");                                  // [N, K·(τ+2)]
        var normed = WriteLayerNorm(block.Norm, hidden, name + ".norm");
        return Layer(block.Project, normed, name + ".project");                                 // [N, d]
    }

    private string WriteDenseMlp(nn.Module mlp, string x, string name)
    {
        var linears = mlp.named_children().Select(c => c.module).OfType<Linear>().ToArray();    // expand, project
        var h = g.Linear(x, linears[0].weight!, linears[0].bias, name + ".expand");
        var erf = g.Unary("Erf", g.Mul(h, g.Float((float)(1 / Math.Sqrt(2))), name + ".h_scaled"), name + ".erf");
        var gelu = g.Mul(g.Mul(h, g.Float(0.5f), name + ".half"), g.Add(erf, g.Float(1f), name + ".one_plus"), name + ".gelu");
        return g.Linear(gelu, linears[1].weight!, linears[1].bias, name + ".project");
    }

    private string Norm(nn.Module<Tensor, Tensor> norm, string x, string name) => norm switch
    {
        RmsNorm rms => WriteRmsNorm(rms, x, name),
        LayerNorm layer => WriteLayerNorm(layer, x, name),
        _ => throw new NotSupportedException($"ONNX export does not know the norm '{norm.GetType().Name}'."),
    };

    /// <summary>x / (‖x‖₂/√d + ε) · g, ε outside the root, as <see cref="Layers.RmsNorm"/>.</summary>
    private string WriteRmsNorm(RmsNorm norm, string x, string name)
    {
        var rms = g.Div(g.ReduceL2(x, [-1], true, name + ".l2"), g.Float((float)Math.Sqrt(Config.Width)), name + ".rms");
        var denominator = g.Add(rms, g.Float((float)norm.Epsilon), name + ".denominator");
        return g.Mul(g.Div(x, denominator, name + ".scaled"), g.Weight(name + ".weight", norm.Weight), name);
    }

    private string WriteLayerNorm(LayerNorm norm, string x, string name) =>
        g.Node("LayerNormalization", name, [x, g.Weight(name + ".weight", norm.weight!), g.Weight(name + ".bias", norm.bias!)],
            OnnxGraphBuilder.Int("axis", -1), OnnxGraphBuilder.FloatAttribute("epsilon", (float)norm.eps));
}
