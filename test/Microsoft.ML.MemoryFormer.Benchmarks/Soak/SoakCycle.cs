namespace Microsoft.ML.MemoryFormer.Benchmarks.Soak;

/// <summary>The checkpoint/resume cycle that ends the soak.</summary>
/// <param name="CancelledAtStep">Step k at which the timed run was cancelled (its checkpoint holds k).</param>
/// <param name="CancelSeconds">From the cancel request to Fit's <see cref="OperationCanceledException"/>, checkpoint write included.</param>
/// <param name="ResumedFromStep">Step c of the last periodic checkpoint before k, from which the cycle resumes.</param>
/// <param name="ResumeSeconds">From the resuming Fit call to its first step (text packing, checkpoint loading and that step).</param>
/// <param name="LossesIdentical">Whether the replayed steps c+1..k had bit-identical losses to the timed run's.</param>
/// <param name="StateIdentical">Whether the weights and optimizer state at k are bit-identical to the timed run's.</param>
/// <param name="CheckpointBytes">Size of the checkpoint file.</param>
internal sealed record SoakCycle(int CancelledAtStep, double CancelSeconds, int ResumedFromStep, double ResumeSeconds,
    bool LossesIdentical, bool StateIdentical, long CheckpointBytes);
