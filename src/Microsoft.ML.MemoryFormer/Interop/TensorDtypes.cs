using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Interop;

/// <summary>The element types the interop readers know, in safetensors spelling, and how they map to torch.</summary>
internal static class TensorDtypes
{
    /// <summary>Bytes per element of each known dtype.</summary>
    public static IReadOnlyDictionary<string, int> Sizes { get; } = new Dictionary<string, int>(StringComparer.Ordinal)
    {
        ["F64"] = 8, ["F32"] = 4, ["F16"] = 2, ["BF16"] = 2, ["I64"] = 8, ["I32"] = 4, ["I16"] = 2, ["I8"] = 1,
        ["U8"] = 1, ["BOOL"] = 1,
    };

    /// <summary>The torch type of a floating dtype the model weights may be stored in; null for the others.</summary>
    public static torch.ScalarType? FloatingType(string dtype) => dtype switch
    {
        "F32" => torch.ScalarType.Float32,
        "F16" => torch.ScalarType.Float16,
        "BF16" => torch.ScalarType.BFloat16,
        "F64" => torch.ScalarType.Float64,
        _ => null,
    };

    /// <summary>Element count of a shape, or −1 when it overflows 2^62.</summary>
    public static long Count(IReadOnlyList<long> shape)
    {
        long n = 1;
        foreach (var d in shape)
        {
            if (d < 0 || (d != 0 && n > (1L << 62) / d)) return -1;
            n *= d;
        }
        return n;
    }
}
