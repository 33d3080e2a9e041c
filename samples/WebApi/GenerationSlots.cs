namespace WebApi;

/// <summary>
/// Bounds how many generations run at once (<see cref="ServingOptions.MaxConcurrentGenerations"/>): the language
/// model is thread-safe, but on a few cores many concurrent decodes only share the same CPUs while each holds its
/// KV cache, so further requests wait here, in order, and stop waiting when their client goes away.
/// </summary>
public sealed class GenerationSlots : IDisposable
{
    private readonly SemaphoreSlim slots;

    /// <summary>Creates <paramref name="count"/> slots.</summary>
    /// <param name="count">Generations allowed at once.</param>
    public GenerationSlots(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        Capacity = count;
        slots = new SemaphoreSlim(count, count);
    }

    /// <summary>Slots in all.</summary>
    public int Capacity { get; }

    /// <summary>Slots taken now.</summary>
    public int InUse => Capacity - slots.CurrentCount;

    /// <summary>Waits for a free slot; dispose the result to free it.</summary>
    /// <param name="cancellationToken">The request's abort token: a client that leaves stops waiting.</param>
    public async Task<IDisposable> AcquireAsync(CancellationToken cancellationToken)
    {
        await slots.WaitAsync(cancellationToken).ConfigureAwait(false);
        return new Slot(slots);
    }

    /// <inheritdoc />
    public void Dispose() => slots.Dispose();

    private sealed class Slot(SemaphoreSlim slots) : IDisposable
    {
        private int released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref released, 1) == 0) slots.Release();
        }
    }
}
