namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>Linear warm-up then cosine decay to a floor: a pure function of the step, as in nanoGPT.</summary>
public static class LearningRateSchedule
{
    /// <summary>
    /// The learning rate at <paramref name="step"/> (0-based) of <paramref name="totalSteps"/>: rises linearly to
    /// <paramref name="peak"/> over <paramref name="warmupSteps"/>, then follows a cosine to
    /// <paramref name="minRatio"/> × peak at the last step.
    /// </summary>
    public static double At(int step, double peak, int warmupSteps, int totalSteps, double minRatio)
    {
        if (step < warmupSteps) return peak * (step + 1) / warmupSteps;
        double min = peak * minRatio;
        int decaySteps = Math.Max(1, totalSteps - warmupSteps - 1);
        double progress = Math.Clamp((double)(step - warmupSteps) / decaySteps, 0, 1);
        return min + 0.5 * (peak - min) * (1 + Math.Cos(Math.PI * progress));
    }
}
