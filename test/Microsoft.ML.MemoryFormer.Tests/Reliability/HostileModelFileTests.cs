using System.Diagnostics;
using Microsoft.ML.MemoryFormer.MLNet;
using Xunit.Abstractions;
using static Microsoft.ML.MemoryFormer.Tests.Reliability.TinyModelFiles;

namespace Microsoft.ML.MemoryFormer.Tests.Reliability;

/// <summary>
/// Damaged and hostile model files: every load either gives the original model or throws the documented exception
/// (docs/reliability.md, "Hostile or damaged model files").
/// </summary>
public class HostileModelFileTests(ITestOutputHelper output)
{
    private enum Mutation { FlipBit, OverwriteByte, Truncate, Insert, OverwriteInt32 }

    private static byte[] Mutate(byte[] original, Random random, out string description)
    {
        var bytes = original.ToList();
        var kind = (Mutation)random.Next(5);
        int at = random.Next(original.Length);
        switch (kind)
        {
            case Mutation.FlipBit: bytes[at] ^= (byte)(1 << random.Next(8)); break;
            case Mutation.OverwriteByte: bytes[at] = (byte)random.Next(256); break;
            case Mutation.Truncate: bytes.RemoveRange(at, bytes.Count - at); break;
            case Mutation.Insert: bytes.InsertRange(at, Enumerable.Range(0, 1 + random.Next(8)).Select(_ => (byte)random.Next(256))); break;
            case Mutation.OverwriteInt32:
                var value = BitConverter.GetBytes(random.Next(2) == 0 ? int.MaxValue : random.Next());
                for (int i = 0; i < 4 && at + i < bytes.Count; i++) bytes[at + i] = value[i];
                break;
        }
        description = $"{kind} at {at}";
        return [.. bytes];
    }

    /// <summary>Mutates <paramref name="original"/> many times; each load must give the original outputs or a documented exception.</summary>
    private void Fuzz(byte[] original, Func<byte[], MemoryFormerLanguageModelTransformer> load, Func<Exception, bool> documented,
        int seed, int maxCount, TimeSpan maxTime)
    {
        float[] expected;
        using (var reference = load(original)) expected = Logits(reference);
        var random = new Random(seed);
        var clock = Stopwatch.StartNew();
        var outcomes = new Dictionary<string, int>();
        int count = 0;
        for (; count < maxCount && clock.Elapsed < maxTime; count++)
        {
            var mutated = Mutate(original, random, out var description);
            var one = Stopwatch.StartNew();
            try
            {
                using var model = load(mutated);
                Assert.True(expected.SequenceEqual(Logits(model)), $"Mutation {count} ({description}) loaded with different outputs.");
                outcomes["loaded, same outputs"] = outcomes.GetValueOrDefault("loaded, same outputs") + 1;
            }
            catch (Exception e) when (documented(e))
            {
                var key = e.GetType().Name + (e.InnerException is { } inner ? " ← " + inner.GetType().Name : "");
                if (!outcomes.ContainsKey(key)) output.WriteLine($"{key}: {e.Message} | {e.GetBaseException().Message}");
                outcomes[key] = outcomes.GetValueOrDefault(key) + 1;
            }
            catch (Exception e)
            {
                Assert.Fail($"Mutation {count} ({description}) threw an undocumented {e.GetType().FullName}: {e}");
            }
            Assert.True(one.Elapsed < TimeSpan.FromSeconds(5), $"Mutation {count} ({description}) took {one.Elapsed}.");
        }
        output.WriteLine($"{count} mutations in {clock.Elapsed.TotalSeconds:0.0} s: " +
            string.Join(", ", outcomes.OrderByDescending(o => o.Value).Select(o => $"{o.Key} × {o.Value}")));
        Assert.True(count >= 50, $"Only {count} mutations ran in {maxTime}.");
    }

    /// <summary>What <c>MemoryFormerLanguageModelTransformer.Load</c> documents: <see cref="InvalidDataException"/>.</summary>
    private static bool StandaloneDocumented(Exception e) => e is InvalidDataException;

    /// <summary>
    /// What ML.NET's own <c>mlContext.Model.Load</c> throws for a damaged MemoryFormer model zip (docs/reliability.md):
    /// its zip and header errors, or a TargetInvocationException around the MemoryFormer loader's InvalidDataException.
    /// </summary>
    private static bool MLNetDocumented(Exception e) => e is InvalidDataException or FormatException or InvalidOperationException
        || (e is System.Reflection.TargetInvocationException && e.InnerException is InvalidDataException);

    private static MemoryFormerLanguageModelTransformer LoadChecked(byte[] bytes) =>
        Unwrap(new MLContext(seed: 1).Model.LoadChecked(new MemoryStream(bytes, writable: false), out _));

    [Fact]
    public void Fuzzed_standalone_files_load_identically_or_throw_InvalidDataException()
    {
        using var model = NewTransformer();
        Fuzz(Standalone(model), LoadStandalone, StandaloneDocumented, seed: 11, maxCount: 300, maxTime: TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void Fuzzed_MLNet_zips_load_identically_or_throw_InvalidDataException_from_LoadChecked()
    {
        using var model = NewTransformer();
        Fuzz(MLNetZip(model), LoadChecked, StandaloneDocumented, seed: 12, maxCount: 300, maxTime: TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void Fuzzed_MLNet_zips_throw_only_the_documented_exceptions_from_MLNet_Load()
    {
        using var model = NewTransformer();
        Fuzz(MLNetZip(model), LoadMLNet, MLNetDocumented, seed: 13, maxCount: 150, maxTime: TimeSpan.FromSeconds(3));
    }
}
