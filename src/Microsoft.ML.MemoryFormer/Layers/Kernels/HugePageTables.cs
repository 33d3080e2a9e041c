using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// Experiment (s19, scoring round 9): fp32 copies of the scoring encoder's tables on 2 MB pages (<see cref="HugePages"/>), the same
/// values, kept per table while its address, size and libtorch version counter (<see cref="TableVersion"/>) are unchanged.
/// </summary>
internal static unsafe class HugePageTables
{
    private sealed record Copy(nint Values, long Version);

    private static readonly Dictionary<(nint, long), Copy> copies = [];

    /// <summary>The copy of <paramref name="table"/> (a contiguous CPU fp32 tensor), or its own memory where versions cannot be read.</summary>
    public static float* For(Tensor table)
    {
        float* source = TensorMemory.Floats(table);
        if (!TableVersion.IsAvailable)
            return source;
        long count = table.numel(), version = TableVersion.Of(table);
        var key = ((nint)source, count);
        lock (copies)
        {
            if (copies.TryGetValue(key, out var copy) && copy.Version == version)
                return (float*)copy.Values;
            if (copy is not null)
                NativeMemory.AlignedFree((void*)copy.Values);
            long bytes = count * sizeof(float);
            var values = (float*)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 64), 2 << 20);
            HugePages.Advise(values, bytes);
            new ReadOnlySpan<float>(source, checked((int)count)).CopyTo(new Span<float>(values, (int)count));
            copies[key] = new Copy((nint)values, version);
            return values;
        }
    }
}
