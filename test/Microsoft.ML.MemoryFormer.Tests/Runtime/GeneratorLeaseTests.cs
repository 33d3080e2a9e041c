using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static Microsoft.ML.MemoryFormer.Tests.LanguageModeling.LanguageModelData;

namespace Microsoft.ML.MemoryFormer.Tests.Runtime;

/// <summary>Torch's global generator held by one training at a time (<see cref="GeneratorLease"/>): two <c>Fit</c> calls at
/// once with the same seed each save the bytes of that training run alone (docs/reliability.md, "Concurrent trainings: reproducible").</summary>
public sealed class GeneratorLeaseTests : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("mf-lease-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    /// <summary>A Nano language model with dropout in every block, trained for 8 steps with seed 7 and saved.</summary>
    private byte[] TrainAndSave(string name)
    {
        var ml = new MLContext(seed: 7);
        var options = NanoOptions(steps: 8);
        options.Architecture = options.Architecture with { Dropout = 0.3 };
        using var model = ml.Text.MemoryFormer(options).Fit(ml.Data.LoadFromEnumerable(Corpus));
        var path = Path.Combine(folder, name + ".mfa");
        model.Save(path);
        return File.ReadAllBytes(path);
    }

    /// <summary>Runs <paramref name="count"/> trainings, each on its own thread, released together.</summary>
    private byte[][] TrainAtOnce(int count, string name)
    {
        using var start = new Barrier(count);
        var runs = Enumerable.Range(0, count).Select(i => Task.Factory.StartNew(() =>
        {
            start.SignalAndWait(TimeSpan.FromSeconds(60));
            return TrainAndSave($"{name}-{i}");
        }, TaskCreationOptions.LongRunning)).ToArray();
        Task.WaitAll(runs);
        return [.. runs.Select(r => r.Result)];
    }

    [Fact]
    public void Two_trainings_at_once_with_the_same_seed_each_give_the_bytes_of_one_run_alone()
    {
        int threads = torch.get_num_threads();
        torch.set_num_threads(1);
        try
        {
            var alone = TrainAtOnce(1, "alone")[0];
            Assert.Equal(alone, TrainAtOnce(1, "alone-again")[0]);                        // the test's premise: one run is reproducible
            for (int round = 0; round < 3; round++)                                         // before the lease every round differed
            {
                var together = TrainAtOnce(2, $"round{round}");
                Assert.True(alone.SequenceEqual(together[0]), $"round {round}: the first training differs from the one run alone");
                Assert.True(alone.SequenceEqual(together[1]), $"round {round}: the second training differs from the one run alone");
            }
        }
        finally
        {
            torch.set_num_threads(threads);
        }
    }

    [Fact]
    public void The_lease_is_reentrant_and_a_second_thread_waits_for_it()
    {
        using var outer = GeneratorLease.Seeded(3);
        using (GeneratorLease.Hold()) { }                                                   // a loader inside a seeded construction
        var other = new Thread(() => { using var lease = GeneratorLease.Seeded(4); });
        other.Start();
        Assert.False(other.Join(200));                                                      // blocked while this thread holds it
        var first = torch.rand(4);
        outer.Dispose();
        Assert.True(other.Join(TimeSpan.FromSeconds(30)));
        outer.Dispose();                                                                    // a second Dispose does nothing
        using (GeneratorLease.Seeded(3))
            Assert.True(torch.rand(4).eq(first).all().item<bool>());                        // the seed was this thread's throughout
    }
}
