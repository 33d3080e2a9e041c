using Microsoft.ML.MemoryFormer.Data;
using DataType = Microsoft.ML.MemoryFormer.Onnx.Protobuf.TensorProto.Types.DataType;

namespace Microsoft.ML.MemoryFormer.Onnx;

/// <summary>Writes a tabular model's <see cref="FeatureExpansion"/> (value categories and target encodings) into an ONNX
/// graph: the same appended slots, computed from the raw features as <see cref="FeatureExpansion.Apply"/> computes them.</summary>
internal static class OnnxFeatureExpansionWriter
{
    /// <summary>Raw features [B, F] → expanded features [B, <see cref="FeatureExpansion.OutputCount"/>].</summary>
    public static string Apply(OnnxGraphBuilder g, FeatureExpansion expansion, string features)
    {
        var parts = new List<string> { features };
        foreach (var v in expansion.ValueCategories)                                              // one-hot of the value, none for others and NaN
        {
            var value = g.Slice(features, [v.Slot], [v.Slot + 1], [1], "category_value");           // [B, 1]
            var equal = g.Node("Equal", "category_equal", [value, g.Weight("expansion.category_values", v.Values, [1, v.Values.Length])]);
            parts.Add(g.Cast(equal, DataType.Float, "category_one_hot"));                             // [B, V]
        }
        var categorised = parts.Count == 1 ? features : g.Concat([.. parts], 1, "categorised");   // [B, F + ΣV]
        var columns = new List<string> { categorised };
        foreach (var encoding in expansion.TargetEncodings)
        {
            var category = Category(g, categorised, encoding);                                         // [B] int64
            foreach (var means in encoding.Means)
                columns.Add(g.Gather(g.Weight("expansion.encoded_means", means, [means.Length, 1]), category, 0, "encoded")); // [B, 1]
        }
        return columns.Count == 1 ? categorised : g.Concat([.. columns], 1, "expanded");
    }

    /// <summary>A row's category in the group, as <see cref="TargetEncoding.CategoryOf"/>: the first slot at ≥ 0.5, or Count (none).</summary>
    private static string Category(OnnxGraphBuilder g, string categorised, TargetEncoding encoding)
    {
        var group = g.Slice(categorised, [encoding.First], [encoding.First + encoding.Count], [1], "encoding_group"); // [B, Count]
        var hot = g.Cast(g.Node("GreaterOrEqual", "encoding_hot_b", [group, g.Float(0.5f)]), DataType.Float, "encoding_hot");
        var first = g.Node("ArgMax", "encoding_first", [hot], OnnxGraphBuilder.Int("axis", 1), OnnxGraphBuilder.Int("keepdims", 0)); // [B]
        var any = g.Cast(g.ReduceSum(hot, [1], false, "encoding_hits"), DataType.Bool, "encoding_any");          // [B]
        return g.Where(any, first, g.Ints([encoding.Count], scalar: true), "encoding_category");
    }
}
