namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// The seed of one training step, a pure function of the run's seed and the step (SplitMix64 of both): every random
/// draw of step s (batch choice, dropout masks) depends on (seed, s) only, not on the steps before it, so a run resumed
/// from a checkpoint at step k draws exactly what the uninterrupted run drew from step k on.
/// </summary>
internal static class StepSeed
{
    /// <summary>The seed of step <paramref name="step"/> (0-based) of a run seeded with <paramref name="seed"/>.</summary>
    public static int Of(int seed, int step)
    {
        ulong z = ((ulong)(uint)seed << 32 | (uint)step) + 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (int)(z & int.MaxValue);
    }
}
