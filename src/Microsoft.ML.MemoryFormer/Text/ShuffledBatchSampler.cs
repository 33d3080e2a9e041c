namespace Microsoft.ML.MemoryFormer.Text;

/// <summary>
/// Draws batches of window indices in a shuffled order that depends only on the seed and the epoch, so a training
/// run can be repeated, or resumed at any epoch, exactly.
/// </summary>
internal sealed class ShuffledBatchSampler
{
    /// <param name="count">Number of items (windows) to draw from.</param>
    /// <param name="batchSize">Items per batch (B).</param>
    /// <param name="seed">Seed of the shuffle.</param>
    /// <param name="dropLast">Whether to drop a last batch smaller than <paramref name="batchSize"/>.</param>
    public ShuffledBatchSampler(int count, int batchSize, int seed, bool dropLast = true)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        Count = count;
        BatchSize = batchSize;
        Seed = seed;
        DropLast = dropLast;
    }

    /// <summary>Number of items drawn from.</summary>
    public int Count { get; }

    /// <summary>Items per batch.</summary>
    public int BatchSize { get; }

    /// <summary>Seed of the shuffle.</summary>
    public int Seed { get; }

    /// <summary>Whether a last, smaller batch is dropped.</summary>
    public bool DropLast { get; }

    /// <summary>Batches per epoch.</summary>
    public int BatchesPerEpoch => DropLast ? Count / BatchSize : (Count + BatchSize - 1) / BatchSize;

    /// <summary>The batches of one epoch: every item at most once, in an order fixed by (seed, epoch).</summary>
    /// <param name="epoch">Epoch number, from 0.</param>
    /// <returns>Index arrays of <see cref="BatchSize"/> items (the last may be smaller unless <see cref="DropLast"/>).</returns>
    public IEnumerable<int[]> Epoch(int epoch)
    {
        int[] order = Permutation(epoch);
        for (int start = 0; start < order.Length; start += BatchSize)
        {
            int size = Math.Min(BatchSize, order.Length - start);
            if (size < BatchSize && DropLast)
            {
                yield break;
            }

            yield return order[start..(start + size)];
        }
    }

    /// <summary>A permutation of [0, Count) fixed by (seed, epoch): Fisher–Yates with <see cref="Random"/>.</summary>
    /// <param name="epoch">Epoch number.</param>
    /// <returns>The permutation.</returns>
    public int[] Permutation(int epoch)
    {
        int[] order = new int[Count];
        for (int i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }

        // A seeded Random is the same algorithm in every process (unlike HashCode); mix the epoch in so epochs differ.
        var random = new Random(unchecked((Seed * 1_000_003) + epoch));
        random.Shuffle(order);
        return order;
    }
}
