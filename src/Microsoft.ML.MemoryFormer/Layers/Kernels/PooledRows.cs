using System.Buffers;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The int32 row index of every (token, chunk) pair, kept from the gather's forward to its backward. Pooled on the
/// training path because a fresh N·K array per call lands on the large-object heap, and the training soak showed such
/// per-step garbage piling up to gigabytes between full collections. A standalone layer's graph may be run backward
/// twice (<c>retain_graph</c>), so there the array is an ordinary one that lives as long as the graph.
/// </summary>
internal sealed class PooledRows
{
    private bool pooled;

    /// <summary>The array (pooled ones are longer than <see cref="Count"/>); null once a pooled one is returned.</summary>
    public int[]? Array { get; private set; }

    /// <summary>Number of pairs (N·K).</summary>
    public int Count { get; private init; }

    /// <summary>Whether chunk k reads only its own block of rowLimit / K rows, as a Memory Layer's hash gives (<see cref="RowHits"/>).</summary>
    public bool Chunked { get; private init; }

    /// <summary>Copies <paramref name="rows"/> (int64 [N, K]) to int32, checking every index is in [0, rowLimit).</summary>
    /// <param name="rows">int64 [N, K], global table rows.</param>
    /// <param name="rowLimit">The smallest table's row count.</param>
    /// <param name="pool">Rent the array from the shared pool (returned by <see cref="Return"/>), else allocate it.</param>
    public static unsafe PooledRows From(Tensor rows, long rowLimit, bool pool)
    {
        using var scope = NewDisposeScope();
        var r = rows.contiguous();
        int count = (int)r.numel(), k = (int)Math.Max(1, r.shape[1]);
        long* p = TensorMemory.Longs(r);
        var array = pool ? ArrayPool<int>.Shared.Rent(count) : new int[count];
        int blockRows = rowLimit % k == 0 ? (int)(rowLimit / k) : 0;
        bool chunked = blockRows > 0;
        long bad = -1;
        for (int i = 0; i < count;)
        {
            for (int c = 0; c < k; c++, i++)
            {
                long v = p[i];
                if ((ulong)v >= (ulong)rowLimit)
                    bad = i;
                array[i] = (int)v;
                chunked &= RowHits.IsChunked((int)v, c, blockRows);
            }
        }
        var result = new PooledRows { Array = array, Count = count, Chunked = chunked, pooled = pool };
        if (bad >= 0)
        {
            result.Return();
            throw new ArgumentOutOfRangeException(nameof(rows), $"Row index {p[bad]} at flat position {bad} is outside [0, {rowLimit}).");
        }
        return result;
    }

    /// <summary>Gives a pooled array back to the pool (once); an allocated one stays for a second backward.</summary>
    public void Return()
    {
        if (!pooled)
            return;
        if (Array is { } array) ArrayPool<int>.Shared.Return(array);
        Array = null;
    }
}
