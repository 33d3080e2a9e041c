namespace Microsoft.ML.MemoryFormer.Runtime;

/// <summary>Where the managed kernels' fork/joins run while a training runs (<see cref="KernelSettings.KernelForks"/>). The
/// same bits under every policy: the same ranges, and no kernel's result depends on which thread runs a range.</summary>
internal enum KernelForkPolicy
{
    /// <summary>Let each training choose by timing its steps under both (<see cref="ForkTuner"/>): the default.</summary>
    Auto,

    /// <summary>.NET's thread pool (<c>Parallel.For</c>): its caller takes the ranges a descheduled worker has not started, so a
    /// busy machine costs little; but after each libtorch op the next fork finds its pool worker asleep.</summary>
    ThreadPool,

    /// <summary>libtorch's OpenMP team (<c>Layers/Kernels/OpenMPTeam.cs</c>): a kernel right after a torch op gets the worker
    /// that is still spinning; but a region ends only when every team thread reaches its barrier, which on a machine whose cores
    /// are shared waits for a worker without a core.</summary>
    OpenMPTeam,
}
