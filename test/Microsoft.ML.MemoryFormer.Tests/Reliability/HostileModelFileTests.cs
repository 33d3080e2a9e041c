using Microsoft.ML.Data;
using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Persistence;
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

    /// <summary>
    /// A model whose weights pass <see cref="ModelArchive.DefaultInMemoryLimit"/>, so they are checksummed and read as
    /// streams (in place in a standalone file, through ML.NET's entry in a zip): fuzzed, each load gives the original
    /// outputs or <see cref="InvalidDataException"/>.
    /// </summary>
    [Fact]
    public void Fuzzed_files_with_streamed_weights_load_identically_or_throw_InvalidDataException()
    {
        using var model = NewTransformer(config: Config with { Width = 48 });
        var standalone = Standalone(model);
        Assert.True(standalone.Length > 2 * ModelArchive.DefaultInMemoryLimit, "the weights must take the streamed path");
        Fuzz(standalone, LoadStandalone, StandaloneDocumented, seed: 14, maxCount: 200, maxTime: TimeSpan.FromSeconds(4));
        Fuzz(MLNetZip(model), LoadChecked, StandaloneDocumented, seed: 15, maxCount: 200, maxTime: TimeSpan.FromSeconds(4));
    }

    /// <summary>
    /// The tabular and text-classifier loaders share the archive checks: a short fuzz of each one's ML.NET zip through
    /// <c>LoadChecked</c> gives identical scores or <see cref="InvalidDataException"/>.
    /// </summary>
    [Fact]
    public void Fuzzed_tabular_and_text_classifier_zips_score_identically_or_throw_InvalidDataException()
    {
        var ml = new MLContext(seed: 1);
        var tabularRows = ml.Data.LoadFromEnumerable(MLNet.TabularRows.RegressionRows(32, 3));
        using var tabular = ml.Regression.Trainers.MemoryFormerTabular(MLNet.TabularRows.TinyOptions(epochs: 1)).Fit(tabularRows);
        FuzzScores(ml, tabular, tabularRows, seed: 21);

        var textRows = ml.Data.LoadFromEnumerable(MLNet.ClassificationRows.Binary());
        using var classifier = ml.BinaryClassification.Trainers.MemoryFormerTextClassification(MLNet.ClassificationRows.Options(epochs: 1)).Fit(textRows);
        FuzzScores(ml, classifier, textRows, seed: 22);
    }

    private void FuzzScores(MLContext ml, ITransformer model, IDataView rows, int seed)
    {
        using var saved = new MemoryStream();
        ml.Model.Save(model, rows.Schema, saved);
        var original = saved.ToArray();
        float[] Scores(ITransformer m) => m.Transform(rows).GetColumn<float>("Score").ToArray();
        var expected = Scores(model);
        var random = new Random(seed);
        var outcomes = new Dictionary<string, int>();
        for (int i = 0; i < 60; i++)
        {
            var mutated = Mutate(original, random, out var description);
            string outcome;
            try
            {
                var loaded = new MLContext(seed: 1).Model.LoadChecked(new MemoryStream(mutated), out _);
                Assert.True(expected.SequenceEqual(Scores(loaded)), $"Mutation {i} ({description}) loaded with different scores.");
                (loaded as IDisposable)?.Dispose();
                outcome = "loaded, same scores";
            }
            catch (InvalidDataException e)
            {
                outcome = e.InnerException?.GetType().Name ?? "InvalidDataException";
            }
            outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
        }
        output.WriteLine($"{model.GetType().Name}: " + string.Join(", ", outcomes.Select(o => $"{o.Key} × {o.Value}")));
    }

    /// <summary>Rewrites one entry of a saved standalone model and returns the file's bytes.</summary>
    private static byte[] WithEntry(byte[] file, string name, byte[] bytes)
    {
        var archive = ModelArchive.ReadFrom(new MemoryStream(file)).Set(name, bytes);
        using var stream = new MemoryStream();
        archive.WriteTo(stream);
        return stream.ToArray();
    }

    private static byte[] WithConfig(byte[] file, MemoryFormerConfig config) =>
        WithEntry(file, ModelArchive.ConfigEntry, Encoding.UTF8.GetBytes(config.ToJson()));

    /// <summary>Runs <paramref name="load"/>, which must throw <see cref="InvalidDataException"/> quickly and without allocating much.</summary>
    private static InvalidDataException FailsFast(Action load)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        var error = Assert.Throws<InvalidDataException>(load);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"Took {clock.Elapsed}.");
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 16 << 20, $"Allocated {allocated} bytes.");
        return error;
    }

    /// <summary>
    /// Entries above <see cref="ModelArchive.DefaultInMemoryLimit"/> are streamed into and out of the ML.NET zip
    /// (no 2 GB array limit) and keep the in-memory path's checks: same outputs when intact, a named error when a byte
    /// changed or bytes are missing.
    /// </summary>
    [Fact]
    public void Large_entries_of_an_MLNet_zip_are_streamed_and_still_checked()
    {
        using var model = NewTransformer(config: Config with { Width = 48 });
        var zip = MLNetZip(model);
        Assert.True(ZipEntry(zip, ModelArchive.WeightsEntry).Length > ModelArchive.DefaultInMemoryLimit, "the weights must take the streamed path");
        using (var loaded = LoadChecked(zip))
            Assert.Equal(Logits(model), Logits(loaded));

        var damaged = FailsFast(() => LoadChecked(WithZipEntry(zip, ModelArchive.WeightsEntry, bytes => { bytes[bytes.Length / 2] ^= 0x10; return bytes; })));
        Assert.Contains("'weights.bin' is damaged", damaged.GetBaseException().Message, StringComparison.Ordinal);
        var shorter = FailsFast(() => LoadChecked(WithZipEntry(zip, ModelArchive.WeightsEntry, bytes => bytes[..^10])));
        Assert.Contains("fewer bytes", shorter.GetBaseException().Message, StringComparison.Ordinal);
    }

    private static byte[] ZipEntry(byte[] zip, string name)
    {
        using var archive = new ZipArchive(new MemoryStream(zip, writable: false), ZipArchiveMode.Read);
        using var stream = archive.Entries.Single(e => e.Name == name).Open();
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    private static byte[] WithZipEntry(byte[] zip, string name, Func<byte[], byte[]> change)
    {
        var bytes = change(ZipEntry(zip, name));
        using var buffer = new MemoryStream();
        buffer.Write(zip);
        using (var archive = new ZipArchive(buffer, ZipArchiveMode.Update, leaveOpen: true))
        {
            var entry = archive.Entries.Single(e => e.Name == name);
            string path = entry.FullName;
            entry.Delete();
            using var stream = archive.CreateEntry(path).Open();
            stream.Write(bytes);
        }
        return buffer.ToArray();
    }

    [Fact]
    public void A_truncated_file_is_reported_as_truncated()
    {
        using var model = NewTransformer();
        var file = Standalone(model);
        var error = FailsFast(() => LoadStandalone(file[..(file.Length * 2 / 3)]));
        Assert.Contains("truncated", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_flipped_bit_in_the_weights_is_reported_as_damage_not_loaded()
    {
        using var model = NewTransformer();
        var file = Standalone(model);
        file[file.Length / 2] ^= 0x10;                                   // the middle of the file is inside weights.bin
        var error = FailsFast(() => LoadStandalone(file));
        Assert.Contains("'weights.bin' is damaged", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_config_of_another_architecture_is_refused_with_both_shapes_named()
    {
        using var model = NewTransformer();
        var error = FailsFast(() => LoadStandalone(WithConfig(Standalone(model), Config with { Width = 8 })));
        Assert.Contains("Width = 8", error.Message, StringComparison.Ordinal);
        Assert.Contains("model expects", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_config_declaring_a_huge_model_is_refused_before_the_model_is_built()
    {
        using var model = NewTransformer();
        var file = Standalone(model);
        var huge = FailsFast(() => LoadStandalone(WithConfig(file, Config with { Width = 32768, Heads = 2, BitsPerChunk = 16, Layers = 1024 })));
        Assert.Contains("needs at least", huge.Message, StringComparison.Ordinal);
        var absurd = FailsFast(() => LoadStandalone(WithEntry(file, ModelArchive.ConfigEntry,
            Encoding.UTF8.GetBytes(Config.ToJson().Replace("\"Width\": 16", "\"Width\": 1000000", StringComparison.Ordinal)))));
        Assert.Contains("'config.json' is invalid", absurd.Message, StringComparison.Ordinal);
        Assert.Contains("Width", absurd.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("rank")]
    [InlineData("dimension")]
    [InlineData("count")]
    public void Weights_declaring_absurd_tensor_sizes_are_refused_without_allocating(string field)
    {
        using var model = NewTransformer();
        var file = Standalone(model);
        var weights = ModelArchive.ReadFrom(new MemoryStream(file)).Get(ModelArchive.WeightsEntry).ToList();
        var huge = new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F };            // LEB128 of 2^56 - 1
        if (field == "count")
        {
            weights.RemoveAt(0);                                                             // the count (< 128 tensors: one byte)
            weights.InsertRange(0, huge);
        }
        else
        {
            int nameLength = weights[1], dtype = 2 + nameLength, rank = dtype + 1;
            int at = field == "rank" ? rank : rank + 1;                                      // the rank, or the first dimension
            weights.RemoveAt(at);
            weights.InsertRange(at, huge);
        }
        var error = FailsFast(() => LoadStandalone(WithEntry(file, ModelArchive.WeightsEntry, [.. weights])));
        output.WriteLine(error.Message);
        Assert.Contains(field == "count" ? "tensors" : field, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_tokenizer_kind_names_the_entry()
    {
        using var model = NewTransformer();
        var file = WithEntry(Standalone(model), ModelArchive.TokenizerEntry, """{"kind":"System.IO.File, System.IO","parameters":{"path":"/etc/passwd"}}"""u8.ToArray());
        var error = FailsFast(() => LoadStandalone(file));
        Assert.Contains("'tokenizer.json' is invalid", error.Message, StringComparison.Ordinal);
        Assert.Contains("Unknown tokenizer kind", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_MLNet_entry_name_that_leaves_its_folder_is_refused()
    {
        using var model = NewTransformer();
        var zip = MLNetZip(model);
        var patched = ReplaceInModelBlock(zip, "columns.json"u8.ToArray(), "../Model.key"u8.ToArray());
        var error = FailsFast(() => new MLContext(seed: 1).Model.LoadChecked(new MemoryStream(patched), out _));
        Assert.Contains("names must be plain file names", error.Message, StringComparison.Ordinal);
    }

    /// <summary>Replaces <paramref name="from"/> with <paramref name="to"/> (same length) in the first zip entry holding it.</summary>
    private static byte[] ReplaceInModelBlock(byte[] zip, byte[] from, byte[] to)
    {
        var stream = new MemoryStream();
        stream.Write(zip);
        using (var archive = new ZipArchive(stream, ZipArchiveMode.Update, leaveOpen: true))
        {
            var (entry, bytes, at) = archive.Entries.Select(e => (e, Bytes: ReadAll(e))).Select(x => (x.e, x.Bytes, At: x.Bytes.AsSpan().IndexOf(from)))
                .First(x => x.At >= 0);
            to.CopyTo(bytes, at);
            using var write = entry.Open();
            write.SetLength(0);
            write.Write(bytes);
        }
        return stream.ToArray();
    }

    private static byte[] ReadAll(ZipArchiveEntry entry)
    {
        using var read = entry.Open();
        using var copy = new MemoryStream();
        read.CopyTo(copy);
        return copy.ToArray();
    }
}
