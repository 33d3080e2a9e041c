namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// Which stream of a data-parallel training step the calling thread runs (<c>TrainingOptions.DataParallelStreams</c>): each
/// stream runs the forward and backward of its part of the batch, and the fused gather's backward then writes each table's
/// gradient into that stream's own buffer of the layer's <see cref="TableGradient"/> (<see cref="TableGradient.RentStream"/>)
/// instead of setting the table's <c>grad</c> or applying the armed update, for the optimizer to sum the streams' buffers in
/// stream order afterwards (<see cref="StreamGradientSum"/>). Thread-local: a thread outside any stream sees <see cref="None"/>.
/// </summary>
internal static class GradientStream
{
    /// <summary>The value of <see cref="Current"/> outside a stream.</summary>
    public const int None = -1;

    /// <summary>The most streams a step may have.</summary>
    public const int MaxStreams = 2;

    /// <summary>Probe switch: each table's update applied inside the backward of the stream that owns it (table index parity), from its
    /// own gradient row plus the other stream's part, written once and read once (<see cref="TableGradient.PartReady"/>), instead of one
    /// pass after both backwards.</summary>
    public static volatile bool OwnerUpdates;

    [ThreadStatic]
    private static int currentPlusOne;                                   // 0: none (the default of a new thread)

    /// <summary>The calling thread's stream, or <see cref="None"/>.</summary>
    public static int Current => currentPlusOne - 1;

    /// <summary>Makes the calling thread run stream <paramref name="index"/> until the result is disposed.</summary>
    public static Scope Enter(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, MaxStreams);
        int previous = currentPlusOne;
        currentPlusOne = index + 1;
        return new Scope(previous);
    }

    /// <summary>Restores the thread's previous stream when disposed.</summary>
    public readonly struct Scope(int previous) : IDisposable
    {
        /// <inheritdoc/>
        public void Dispose() => currentPlusOne = previous;
    }
}
