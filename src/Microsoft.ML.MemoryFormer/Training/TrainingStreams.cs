using System.Runtime.ExceptionServices;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// The two streams of a data-parallel training step (<see cref="TrainingOptions.DataParallelStreams"/>): two dedicated threads,
/// each with libtorch's intra-op threads at 1 (so every torch op and managed kernel runs on it alone: no OpenMP region, no fork),
/// each running its part of the batch's forward and backward as <see cref="GradientStream"/> <c>i</c>.
/// </summary>
/// <remarks>
/// <para>libtorch runs a CPU backward on the thread that calls it, so the two graphs run side by side; the parameters' gradients
/// meet in autograd's accumulation (locked; a sum of two terms is the same bits in either order) and the tables' in their streams'
/// buffers, summed afterwards in stream order. So the result does not depend on which stream finishes first, nor on whether the
/// streams run at once: when the caller runs libtorch on one thread, <see cref="Run"/> runs stream 0 and then stream 1 on the
/// caller's thread, with the same bits.</para>
/// <para><c>torch.set_num_threads</c> is per thread for OpenMP and MKL, but also sets the count a new thread starts with; the
/// constructor sets it back on the caller's thread once both streams have set theirs. A thread's count is initialised lazily
/// from that process-wide count by its first parallel op unless something asked for it first, so each stream asks before it sets 1.</para>
/// </remarks>
internal sealed class TrainingStreams : IDisposable
{
    /// <summary>The streams of a step: always two, whatever the thread count, so the bits do not depend on it.</summary>
    public const int Count = GradientStream.MaxStreams;

    private readonly Thread[] threads = new Thread[Count];
    private readonly SemaphoreSlim[] start = [new(0), new(0)];
    private readonly SemaphoreSlim finished = new(0);
    private readonly Exception?[] failures = new Exception?[Count];
    private Action<int>? body;
    private volatile bool stopping;

    public TrainingStreams()
    {
        int callerThreads = torch.get_num_threads();
        using var ready = new CountdownEvent(Count);
        for (int i = 0; i < Count; i++)
        {
            int index = i;
            threads[i] = new Thread(() => Loop(index, ready)) { IsBackground = true, Name = $"MemoryFormer training stream {i}" };
            threads[i].Start();
        }
        ready.Wait();
        torch.set_num_threads(callerThreads);                            // the count new threads start with, as it was
    }

    /// <summary>Runs <paramref name="stream"/>(i) for i = 0, 1 as <see cref="GradientStream"/> i, each on its own single-threaded
    /// stream (or both on the caller's thread, in order, when libtorch runs on one thread there); waits for both and throws the
    /// first stream's exception (stream 0's before stream 1's) after both have stopped.</summary>
    public void Run(Action<int> stream)
    {
        ObjectDisposedException.ThrowIf(stopping, this);
        if (torch.get_num_threads() == 1)
        {
            for (int i = 0; i < Count; i++)
                using (GradientStream.Enter(i))
                    stream(i);
            return;
        }
        body = stream;
        Array.Clear(failures);
        foreach (var s in start)
            s.Release();
        for (int i = 0; i < Count; i++)
            finished.Wait();
        body = null;
        if (failures.FirstOrDefault(f => f is not null) is { } failure)
            ExceptionDispatchInfo.Capture(failure).Throw();
    }

    private void Loop(int index, CountdownEvent ready)
    {
        // libtorch initialises a thread's count lazily, from the process-wide count, on the thread's first get_num_threads or
        // parallel op, and set_num_threads does not count as that: without this first call, the first op would set it back.
        torch.get_num_threads();
        torch.set_num_threads(1);                                        // this thread's OpenMP and MKL: one thread
        ready.Signal();
        while (true)
        {
            start[index].Wait();
            if (stopping)
                return;
            try
            {
                using (GradientStream.Enter(index))
                    body!(index);
            }
            catch (Exception e)
            {
                failures[index] = e;
            }
            finally
            {
                finished.Release();
            }
        }
    }

    /// <summary>Stops the two threads (after a running step).</summary>
    public void Dispose()
    {
        if (stopping)
            return;
        stopping = true;
        foreach (var s in start)
            s.Release();
        foreach (var t in threads)
            t.Join();
        foreach (var s in start)
            s.Dispose();
        finished.Dispose();
    }
}
