using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// Output and workspace tensors of the managed kernels, on native blocks this library keeps mapped and reuses, so a
/// training step writes into pages that earlier steps already touched instead of fresh ones.
/// </summary>
/// <remarks>
/// <para>Why: a training step allocates hundreds of megabytes of temporaries and frees them again. Through libtorch's
/// CPU allocator they come from glibc's main heap, which hands the freed top of the heap back to the kernel whenever
/// it exceeds its trim threshold and takes fresh pages again in the next step: 10–40 thousand minor page faults a
/// MemoryFormer step at d = 256 (docs/benchmarks.md, "Training: fresh pages a step"). The kernels' own outputs come
/// from here instead, whatever the process's allocator policy: blocks of exact byte sizes kept in a free list once
/// their tensor dies, and handed to the next tensor of the same size. (Torch's own temporaries are covered, when the
/// process chose no allocator policy, by <c>Runtime/TrainingHeap.cs</c>, which <see cref="Training"/> applies.)</para>
/// <para>A tensor made here owns its block through libtorch's <c>from_blob</c> with a deleter, which
/// runs when libtorch frees the storage (every view and autograd reference gone, on whatever thread drops the last
/// one); only then does the block return to the free list, so reuse can never alias a live tensor. Contents are
/// undefined, as <c>torch.empty</c>'s. Blocks are used only while a training runs (<see cref="Training"/>, opened by
/// the training's optimizer); tensors under <see cref="MinBytes"/>, all non-CPU work and everything made while no
/// training runs (a process that only scores or generates) keep using torch's allocator, so a serving process holds no
/// idle blocks. Idle blocks beyond <see cref="MaxIdleBytes"/> are freed at once; the rest stay until the
/// last running training ends, which frees them, and a block returned after that is freed at once.</para>
/// <para>It binds TorchSharp's native <c>THSTensor_new</c> (the signature of TorchSharp 0.107, the version this package
/// pins) because the managed <c>torch.tensor(Memory&lt;T&gt;, …)</c> copies its argument in 0.107.</para>
/// </remarks>
internal static unsafe class KernelBuffers
{
    /// <summary>Smaller tensors come from torch's allocator (glibc's bins reuse them without fresh pages).</summary>
    public const long MinBytes = 64 * 1024;

    /// <summary>Most bytes of idle blocks kept for reuse; more are freed when returned.</summary>
    public const long MaxIdleBytes = 2L << 30;

    private static readonly Dictionary<long, Stack<nint>> Idle = [];
    private static readonly ConcurrentDictionary<nint, long> Sizes = new();        // live blocks by address
    private static readonly object Gate = new();
    private static long idleBytes;
    private static long tensorsMade;
    private static long releases;
    private static int trainings;

    /// <summary>How many times <see cref="ReleaseIdle"/> ran (tests: a reuse check is void across one).</summary>
    public static long Releases => Interlocked.Read(ref releases);

    /// <summary>Whether <see cref="Empty"/> hands out reused blocks now (a training runs and the switch is on); otherwise it
    /// returns torch tensors on fresh memory.</summary>
    public static bool Reusing => KernelSettings.Current.ReuseKernelBuffers && Volatile.Read(ref trainings) > 0;

    /// <summary>Whether a training runs now (a lease of <see cref="Training"/> is open).</summary>
    public static bool TrainingRuns => Volatile.Read(ref trainings) > 0;

    /// <summary>Tensors made on blocks since the process started.</summary>
    public static long TensorsMade => Interlocked.Read(ref tensorsMade);

    /// <summary>An uninitialised float32 CPU tensor of <paramref name="shape"/>, on a reused block when large enough.</summary>
    public static Tensor Empty(params long[] shape) => Make<float>(shape, ScalarType.Float32) ?? empty(shape, ScalarType.Float32);

    /// <summary>An uninitialised int64 CPU tensor of <paramref name="shape"/>, on a reused block when large enough.</summary>
    public static Tensor EmptyInt64(params long[] shape) => Make<long>(shape, ScalarType.Int64) ?? empty(shape, ScalarType.Int64);

    /// <summary>A zero float32 CPU tensor of <paramref name="shape"/> (a reused block, cleared).</summary>
    public static Tensor Zeros(params long[] shape)
    {
        var t = Make<float>(shape, ScalarType.Float32);
        if (t is null)
            return zeros(shape, ScalarType.Float32);
        NativeMemory.Clear(TensorMemory.Address(t), (nuint)(t.numel() * sizeof(float)));
        return t;
    }

    /// <summary>Like <see cref="Empty"/> with the shape of <paramref name="like"/>.</summary>
    public static Tensor EmptyLike(Tensor like) => Empty(like.shape);

    /// <summary>
    /// Marks a training as running until the result is disposed (<c>Training/ModelOptimizer.cs</c> holds one): kernel
    /// outputs take blocks only while one runs, and the idle blocks are freed when the last one ends.
    /// </summary>
    public static IDisposable Training()
    {
        TrainingHeap.TrainingStarted();                                       // once per process: glibc keeps the freed heap top
        Interlocked.Increment(ref trainings);
        return new TrainingLease();
    }

    private sealed class TrainingLease : IDisposable
    {
        private int disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) == 0 && Interlocked.Decrement(ref trainings) == 0)
            {
                ReleaseIdle();
                TrainingHeap.TrainingsEnded();                                // the heap's free memory back to the kernel
            }
        }
    }

    /// <summary>Frees every idle block (tests; a host that wants the memory back between trainings).</summary>
    public static void ReleaseIdle()
    {
        lock (Gate)
        {
            releases++;
            foreach (var stack in Idle.Values)
            {
                while (stack.TryPop(out var block))
                    NativeMemory.AlignedFree((void*)block);
            }
            Idle.Clear();
            idleBytes = 0;
        }
    }

    private static Tensor? Make<T>(long[] shape, ScalarType dtype) where T : unmanaged
    {
        if (!KernelSettings.Current.ReuseKernelBuffers || Volatile.Read(ref trainings) == 0)
            return null;                                                      // no training: torch's allocator, nothing retained
        long count = 1;
        foreach (long s in shape)
            count *= s;
        long bytes = count * sizeof(T);
        if (bytes < MinBytes)
            return null;
        nint block = Rent(bytes);
        Sizes[block] = bytes;
        nint handle;
        fixed (long* sizes = shape)
            handle = THSTensor_new(block, (nint)(delegate* unmanaged[Cdecl]<nint, void>)&Release, sizes, shape.Length, (sbyte)dtype, (sbyte)dtype, 0, -1, 0);
        if (handle == 0)
        {
            Released(block);                                                  // libtorch refused it: torch's allocator instead
            return null;
        }
        Interlocked.Increment(ref tensorsMade);
        return Tensor.UnsafeCreateTensor(handle);
    }

    /// <summary>libtorch's <c>from_blob</c> through TorchSharp's native export (the entry point <c>torch.tensor(Memory&lt;T&gt;)</c>
    /// uses, which copies its argument in 0.107): a CPU tensor over <paramref name="data"/>, <paramref name="deleter"/> called
    /// with <paramref name="data"/> when the storage is freed.</summary>
    [DllImport("LibTorchSharp")]
    private static extern nint THSTensor_new(nint data, nint deleter, long* sizes, int dimensions, sbyte type, sbyte dtype,
        int deviceType, int deviceIndex, byte requiresGrad);

    /// <summary>The storage of a block's tensor was freed (any thread): the block goes back to the free list.</summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void Release(nint block) => Released(block);

    private static void Released(nint block)
    {
        if (Sizes.TryRemove(block, out long bytes))
            Return(block, bytes);
    }

    private static nint Rent(long bytes)
    {
        lock (Gate)
        {
            if (Idle.TryGetValue(bytes, out var stack) && stack.TryPop(out var block))
            {
                idleBytes -= bytes;
                return block;
            }
        }
        return (nint)NativeMemory.AlignedAlloc((nuint)bytes, 64);
    }

    private static void Return(nint block, long bytes)
    {
        lock (Gate)
        {
            if (Volatile.Read(ref trainings) > 0 && idleBytes + bytes <= MaxIdleBytes)
            {
                if (!Idle.TryGetValue(bytes, out var stack))
                    Idle[bytes] = stack = new Stack<nint>();
                stack.Push(block);
                idleBytes += bytes;
                return;
            }
        }
        NativeMemory.AlignedFree((void*)block);
    }
}
