using Microsoft.ML.MemoryFormer.Models;
using DataType = Microsoft.ML.MemoryFormer.Onnx.Protobuf.TensorProto.Types.DataType;

namespace Microsoft.ML.MemoryFormer.Onnx;

/// <summary>Writes a text classifier's wide branch (<see cref="HashedNgramBag"/>) into an ONNX graph: the same hashing
/// on int64 ids, the mean of the hashed rows over real tokens, times the head's weight, added to the logits.</summary>
internal static class OnnxNgramBagWriter
{
    /// <summary>Logits [B, C] plus the bag's contribution, from ids int64 [B, T] and the key mask bool [B, T].</summary>
    public static string AddTo(OnnxGraphBuilder g, HashedNgramBag bag, PredictionHead head, string ids, string mask, string logits)
    {
        var buckets = g.Ints([bag.Buckets], scalar: true);
        var hashes = new List<string> { g.Node("Mod", "ngram_uni", [ids, buckets]) };          // [B, T]
        var valids = new List<string> { mask };
        string hash = ids, valid = mask;
        for (int n = 2; n <= bag.NgramLength; n++)
        {
            var previous = g.Slice(hash, [0], [-1], [1], $"ngram_prev{n}");                      // [B, T − n + 1]
            var next = g.Slice(ids, [n - 1], [long.MaxValue], [1], $"ngram_next{n}");
            var mixed = g.Add(g.Add(g.Mul(previous, g.Ints([1000003], scalar: true), $"ngram_mul{n}"), next, $"ngram_add{n}"),
                g.Ints([1], scalar: true), $"ngram_inc{n}");
            hash = g.Node("Mod", $"ngram_hash{n}", [mixed, g.Ints([2147483647], scalar: true)]);
            valid = g.Node("And", $"ngram_valid{n}", [g.Slice(valid, [0], [-1], [1], $"ngram_vprev{n}"),
                g.Slice(mask, [n - 1], [long.MaxValue], [1], $"ngram_vnext{n}")]);
            hashes.Add(g.Node("Mod", $"ngram_ids{n}", [hash, buckets]));
            valids.Add(valid);
        }
        var all = g.Concat([.. hashes], 1, "ngram_ids");                                         // [B, N]
        var weights = g.Cast(g.Concat([.. valids], 1, "ngram_valid"), DataType.Float, "ngram_w"); // [B, N]
        var rows = g.Gather(g.Weight("ngram_bag.table", bag.Table), all, 0, "ngram_rows");       // [B, N, d]
        var sum = g.ReduceSum(g.Mul(rows, g.Unsqueeze(weights, [-1], "ngram_w3"), "ngram_weighted"), [1], false, "ngram_sum");
        var count = g.Node("Max", "ngram_count", [g.ReduceSum(weights, [1], true, "ngram_n"), g.Float(1f)]); // [B, 1]
        var vector = g.Div(sum, count, "ngram_bag");                                              // [B, d]
        return g.Add(logits, g.Linear(vector, head.Output.weight!, null, "ngram_head"), "logits_with_ngrams");
    }
}
