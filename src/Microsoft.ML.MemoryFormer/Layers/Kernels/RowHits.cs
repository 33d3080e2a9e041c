using System.Buffers;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The (token, chunk) hits of a weighted gather counting-sorted by table row, in CSR form: per row, the range of its
/// hits in <see cref="Tokens"/>, <see cref="PairIndex"/> and <see cref="Weights"/>, tokens ascending (pooled arrays).
/// The backward of <see cref="FusedMemoryGather"/> walks it row by row.
/// </summary>
/// <remarks>
/// A Memory Layer's rows are structured: chunk k only reads rows [k·B, (k+1)·B) with B = 2^τ, so every chunk owns a
/// block of rows and exactly N hits. Then each chunk is sorted on its own, in parallel, into the CSR segment
/// [k·N, (k+1)·N): the serial sort with an integer division per hit had cost about as much as the whole row pass
/// (<c>perf profile</c> times both sorts). Each range of chunks first copies its row indices and weights chunk-major into a padded
/// staging array, so every chunk's scatter reads a contiguous column (<see cref="Runtime.KernelSettings.StagedHitSort"/>). Rows without
/// that structure (any other caller) take the serial sort. All give the same arrays.
/// </remarks>
internal sealed class RowHits : IDisposable
{
    /// <summary>Rows covered by <see cref="Starts"/>.</summary>
    public required int RowCount { get; init; }

    /// <summary>Number of hits (N·K).</summary>
    public required int Pairs { get; init; }

    /// <summary>Row r's hits are [Starts[r], Starts[r + 1]).</summary>
    public required int[] Starts { get; init; }

    /// <summary>The token of each hit.</summary>
    public required int[] Tokens { get; init; }

    /// <summary>The flat (token, chunk) index of each hit, in the same order as <see cref="Tokens"/>.</summary>
    public required int[] PairIndex { get; init; }

    /// <summary>The weight of each hit.</summary>
    public required float[] Weights { get; init; }

    /// <summary>How many rows have at least one hit.</summary>
    public required int TouchedCount { get; init; }

    /// <summary>The rows with at least one hit, ascending (a new array: the gradient sink keeps it).</summary>
    public int[] TouchedRows()
    {
        var touched = new int[TouchedCount];
        for (int r = 0, i = 0; r < RowCount; r++)
        {
            if (Starts[r + 1] > Starts[r])
                touched[i++] = r;
        }
        return touched;
    }

    /// <summary>Sorts the hits of rows int32 [N, K] (flat) with weights [N, K] by row.</summary>
    /// <param name="rows">Row of each (token, chunk) pair, all in [0, <paramref name="rowCount"/>).</param>
    /// <param name="pairs">N·K.</param>
    /// <param name="chunkCount">K.</param>
    /// <param name="weights">The weight of each pair.</param>
    /// <param name="rowCount">Rows to cover.</param>
    /// <param name="chunked">True when chunk k reads only rows [k·B, (k+1)·B), B = rowCount / K (see <see cref="IsChunked"/>).</param>
    public static unsafe RowHits Build(int[] rows, int pairs, int chunkCount, float* weights, int rowCount, bool chunked)
    {
        var starts = ArrayPool<int>.Shared.Rent(rowCount + 1);
        var tokens = ArrayPool<int>.Shared.Rent(Math.Max(1, pairs));
        var pairIndex = ArrayPool<int>.Shared.Rent(Math.Max(1, pairs));
        var tokenWeights = ArrayPool<float>.Shared.Rent(Math.Max(1, pairs));
        var result = (Starts: starts, Tokens: tokens, PairIndex: pairIndex, Weights: tokenWeights);
        int touched = chunked && Runtime.KernelSettings.Current.StagedHitSort
            ? SortByChunkStaged(rows, pairs / chunkCount, chunkCount, (nint)weights, rowCount / chunkCount, result)
            : chunked
            ? SortByChunk(rows, pairs / chunkCount, chunkCount, (nint)weights, rowCount / chunkCount, result)
            : SortAll(rows, pairs, chunkCount, weights, rowCount, result);
        return new RowHits
        {
            RowCount = rowCount, Pairs = pairs, Starts = starts, Tokens = tokens, PairIndex = pairIndex, Weights = tokenWeights,
            TouchedCount = touched,
        };
    }

    /// <summary>Whether <paramref name="row"/> at chunk <paramref name="chunk"/> lies in that chunk's block of <paramref name="blockRows"/> rows.</summary>
    public static bool IsChunked(int row, int chunk, int blockRows) => (uint)(row - (chunk * blockRows)) < (uint)blockRows;

    /// <summary>Each chunk's N hits into its own CSR segment, chunks in parallel; returns the touched row count.</summary>
    private static int SortByChunk(int[] rows, int n, int k, nint weights, int blockRows,
        (int[] Starts, int[] Tokens, int[] PairIndex, float[] Weights) csr)
    {
        csr.Starts[0] = 0;
        var cursor = ArrayPool<int>.Shared.Rent(k * blockRows);
        var touchedPerChunk = new int[k];
        KernelParallel.For(k, 4L * n, (first, last) =>
        {
            for (int c = first; c < last; c++)
            {
                int lo = c * blockRows, hi = lo + blockRows;
                Array.Clear(csr.Starts, lo + 1, blockRows);
                for (int i = 0, p = c; i < n; i++, p += k)
                    csr.Starts[rows[p] + 1]++;
                int running = c * n, touched = 0;
                for (int r = lo; r < hi; r++)
                {
                    int count = csr.Starts[r + 1];
                    if (count > 0) touched++;
                    cursor[r] = running;
                    running += count;
                    csr.Starts[r + 1] = running;
                }
                Scatter(rows, c, n, k, weights, cursor, csr);
                touchedPerChunk[c] = touched;
            }
        });
        ArrayPool<int>.Shared.Return(cursor);
        return touchedPerChunk.Sum();
    }

    /// <summary>
    /// <see cref="SortByChunk"/> with each range of chunks' row indices and weights first copied chunk-major into a staging array: one
    /// token-major walk reads the range's slice of every token's [K] row (contiguous) and counts, then each chunk scatters from its own
    /// contiguous staged column. The column walk of <see cref="SortByChunk"/> instead pulls a cache line per hit through L1 three times a
    /// chunk (count, row, weight), which evicts the chunk's CSR segment the scatter is writing. The same arrays (<c>RowHitsTests</c>).
    /// </summary>
    private static unsafe int SortByChunkStaged(int[] rows, int n, int k, nint weights, int blockRows,
        (int[] Starts, int[] Tokens, int[] PairIndex, float[] Weights) csr)
    {
        csr.Starts[0] = 0;
        var cursor = ArrayPool<int>.Shared.Rent(k * blockRows);
        var touchedPerChunk = new int[k];
        KernelParallel.For(k, 4L * n, (first, last) =>
        {
            int width = last - first, lo = first * blockRows, hi = last * blockRows;
            // [width][stride] rows, then [width][stride] weights' bits; the stride is N padded by a cache line and a bit more, so that
            // the 2·width columns written together do not fall into one L1 set (N = 4,096 ints: 16 KB apart otherwise).
            int stride = n + 16 + 8;
            var stage = ArrayPool<int>.Shared.Rent(2 * width * stride);
            fixed (int* rowBase = rows, starts = csr.Starts, next = cursor, tokens = csr.Tokens, pairIndex = csr.PairIndex, staged = stage)
            fixed (float* hitWeights = csr.Weights)
            {
                int* counts = starts + 1;                                      // counts[r] = hits of row r, later its segment's end
                new Span<int>(counts + lo, hi - lo).Clear();
                int* slice = rowBase + first;
                int* w = (int*)weights + first;                                // the weights' bits
                int* stagedWeights = staged + ((long)width * stride) + 8;
                for (int i = 0; i < n; i++, slice += k, w += k)
                {
                    for (int c = 0; c < width; c++)
                    {
                        int r = slice[c];
                        counts[r]++;
                        staged[((long)c * stride) + i] = r;
                        stagedWeights[((long)c * stride) + i] = w[c];
                    }
                }
                for (int c = first; c < last; c++)
                {
                    int running = c * n, touched = 0;
                    for (int r = c * blockRows, end = r + blockRows; r < end; r++)
                    {
                        int count = counts[r];
                        touched += count > 0 ? 1 : 0;
                        next[r] = running;
                        running += count;
                        counts[r] = running;
                    }
                    touchedPerChunk[c] = touched;
                    int* column = staged + ((long)(c - first) * stride), columnWeights = stagedWeights + ((long)(c - first) * stride);
                    int* hitBits = (int*)hitWeights;
                    for (int i = 0, p = c; i < n; i++, p += k)
                    {
                        int pos = next[column[i]]++;
                        tokens[pos] = i;
                        pairIndex[pos] = p;
                        hitBits[pos] = columnWeights[i];
                    }
                }
            }
            ArrayPool<int>.Shared.Return(stage);
        });
        ArrayPool<int>.Shared.Return(cursor);
        return touchedPerChunk.Sum();
    }

    /// <summary>Chunk <paramref name="c"/>'s hits in token order to their rows' next free slots.</summary>
    private static unsafe void Scatter(int[] rows, int c, int n, int k, nint weights, int[] cursor,
        (int[] Starts, int[] Tokens, int[] PairIndex, float[] Weights) csr)
    {
        float* w = (float*)weights;
        for (int i = 0, p = c; i < n; i++, p += k)
        {
            int pos = cursor[rows[p]]++;
            csr.Tokens[pos] = i;
            csr.PairIndex[pos] = p;
            csr.Weights[pos] = w[p];
        }
    }

    /// <summary>The general counting sort over all hits (rows in any order); returns the touched row count.</summary>
    private static unsafe int SortAll(int[] rows, int pairs, int k, float* weights, int rowCount,
        (int[] Starts, int[] Tokens, int[] PairIndex, float[] Weights) csr)
    {
        var starts = csr.Starts;
        Array.Clear(starts, 0, rowCount + 1);
        for (int i = 0; i < pairs; i++)
            starts[rows[i] + 1]++;
        int touched = 0;
        for (int r = 0; r < rowCount; r++)
        {
            if (starts[r + 1] > 0) touched++;
            starts[r + 1] += starts[r];
        }

        var cursor = ArrayPool<int>.Shared.Rent(rowCount);
        Array.Copy(starts, cursor, rowCount);
        // Hits are visited in flat (token-major) order, so every row's list is sorted by token.
        for (int i = 0, p = 0; p < pairs; i++)
        {
            for (int c = 0; c < k; c++, p++)
            {
                int pos = cursor[rows[p]]++;
                csr.Tokens[pos] = i;
                csr.PairIndex[pos] = p;
                csr.Weights[pos] = weights[p];
            }
        }
        ArrayPool<int>.Shared.Return(cursor);
        return touched;
    }

    public void Dispose()
    {
        ArrayPool<int>.Shared.Return(Starts);
        ArrayPool<int>.Shared.Return(Tokens);
        ArrayPool<int>.Shared.Return(PairIndex);
        ArrayPool<float>.Shared.Return(Weights);
    }
}
