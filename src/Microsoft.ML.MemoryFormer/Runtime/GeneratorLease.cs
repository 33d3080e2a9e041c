using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Runtime;

/// <summary>
/// Torch's global generator, held by one caller until disposed. Parameter initialisation and dropout draw from that one
/// process-wide generator (TorchSharp's modules take no generator of their own), and a training reseeds it before it
/// builds its model and before every step (from (seed, step), <c>Training/StepSeed.cs</c>), so two trainings at once drew
/// from each other's seeds and neither was reproducible. A training now takes the lease from each reseed through its last
/// random draw — its model's constructor; a step's forward, where dropout draws its masks — and model loaders take it
/// around the constructor whose random initial weights the file then overwrites; a second taker waits. Each training's
/// draws therefore follow its own seed in the order they would alone: the same bits as a training run alone, which holds
/// the lock uncontended (docs/reliability.md, "Concurrent trainings: reproducible").
/// </summary>
/// <remarks>The lock is reentrant (a classifier's seeded construction loads a pretrained checkpoint, which takes it again).
/// Code that seeds or draws from the global generator without a lease — a user's own <c>torch.random.manual_seed</c>
/// and modules — still races with a running training.</remarks>
internal sealed class GeneratorLease : IDisposable
{
    private static readonly Lock Gate = new();
    private bool held;

    private GeneratorLease() { }

    /// <summary>Waits for the generator and holds it, unseeded: for draws whose values do not matter (a loader's constructor).</summary>
    public static GeneratorLease Hold()
    {
        Gate.Enter();
        return new GeneratorLease { held = true };
    }

    /// <summary>Waits for the generator, holds it and seeds it with <paramref name="seed"/>.</summary>
    public static GeneratorLease Seeded(long seed)
    {
        TorchRuntime.EnsureAvailable();
        var lease = Hold();
        try
        {
            random.manual_seed(seed);
        }
        catch
        {
            lease.Dispose();
            throw;
        }
        return lease;
    }

    /// <summary>Lets the next caller take the generator; a second call does nothing.</summary>
    public void Dispose()
    {
        if (!held) return;
        held = false;
        Gate.Exit();
    }
}
