using System.Buffers;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The int32 row index of every (token, chunk) pair, in a pooled array kept from the gather's forward to its backward.
/// Pooled because a fresh N·K array per call lands on the large-object heap, and the training soak showed such per-step
/// garbage piling up to gigabytes between full collections. The backward returns it; a second backward of a retained
/// graph builds it again from the saved int64 rows.
/// </summary>
internal sealed class PooledRows
{
    /// <summary>The pooled array (longer than <see cref="Count"/>); null once returned.</summary>
    public int[]? Array { get; private set; }

    /// <summary>Number of pairs (N·K).</summary>
    public int Count { get; private init; }

    /// <summary>Whether chunk k reads only its own block of rowLimit / K rows, as a Memory Layer's hash gives (<see cref="RowHits"/>).</summary>
    public bool Chunked { get; private init; }

    /// <summary>Chunk k's rows start at k·<see cref="blockRows"/> when the hash wrote the array (<see cref="ForHash"/>); 0 otherwise.</summary>
    private int blockRows;

    /// <summary>1 once <see cref="Take"/> handed the array on (or gave it back).</summary>
    private int taken;

    /// <summary>An array of <paramref name="count"/> pairs for the fused hash to fill with rows code + k·<paramref name="blockRows"/>, each in its
    /// chunk's block by construction (<see cref="SignHashKernel"/>); a gather takes it with <see cref="Take"/>.</summary>
    public static PooledRows ForHash(int count, int blockRows) =>
        new() { Array = ArrayPool<int>.Shared.Rent(Math.Max(1, count)), Count = count, Chunked = true, blockRows = blockRows };

    /// <summary>
    /// The hash's array for a gather over tables of <paramref name="rowLimit"/> rows (the smallest), once: a table of exactly K·2^τ rows,
    /// K = <paramref name="chunkCount"/>, holds every row in range and chunked as <see cref="From"/> would find. Null for a second caller,
    /// or for other tables (the array then goes back to the pool, and the caller copies the int64 rows with <see cref="From"/>).
    /// </summary>
    public PooledRows? Take(long rowLimit, int chunkCount)
    {
        if (Interlocked.Exchange(ref taken, 1) != 0 || Array is null)
            return null;
        if (blockRows > 0 && rowLimit == (long)chunkCount * blockRows && Count % Math.Max(1, chunkCount) == 0)
            return this;
        Return();
        return null;
    }

    /// <summary>Gives the hash's array back to the pool unless a gather took it (a caller that reads the rows some other way).</summary>
    public void Release()
    {
        if (Interlocked.Exchange(ref taken, 1) == 0)
            Return();
    }

    /// <summary>Copies <paramref name="rows"/> (int64 [N, K]) to int32, checking every index is in [0, rowLimit).</summary>
    /// <param name="rows">int64 [N, K], global table rows.</param>
    /// <param name="rowLimit">The smallest table's row count.</param>
    public static unsafe PooledRows From(Tensor rows, long rowLimit)
    {
        using var scope = NewDisposeScope();
        var r = rows.contiguous();
        int count = (int)r.numel(), k = (int)Math.Max(1, r.shape[1]);
        long* p = TensorMemory.Longs(r);
        var array = ArrayPool<int>.Shared.Rent(count);
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
        var result = new PooledRows { Array = array, Count = count, Chunked = chunked };
        if (bad >= 0)
        {
            result.Return();
            throw new ArgumentOutOfRangeException(nameof(rows), $"Row index {p[bad]} at flat position {bad} is outside [0, {rowLimit}).");
        }
        return result;
    }

    /// <summary>Gives the array back to the pool (once).</summary>
    public void Return()
    {
        if (Array is { } array) ArrayPool<int>.Shared.Return(array);
        Array = null;
    }
}
