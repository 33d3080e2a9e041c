using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Interop;
using Microsoft.ML.MemoryFormer.Models;
using TorchSharp;
using Xunit.Abstractions;
using static Microsoft.ML.MemoryFormer.Tests.Interop.InteropFiles;

namespace Microsoft.ML.MemoryFormer.Tests.Interop;

/// <summary>
/// Hostile and damaged interop files, in the style of Reliability/HostileModelFileTests: every mutated file either loads
/// with the original logits or throws the documented exception, quickly; and pickles that would run code in Python are
/// refused without running anything.
/// </summary>
public class HostileInteropFileTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("cos\nsystem\n(X\u0002\u0000\u0000\u0000idtR.", "os.system")]
    [InlineData("cbuiltins\neval\n(X\u0001\u0000\u0000\u00001tR.", "builtins.eval")]
    [InlineData("\u0080\u0002ctorch\nload\n.", "torch.load")]
    [InlineData("(ios\nsystem\n.", "opcode 0x69")]                                // INST
    [InlineData("(K\u0001o.", "opcode 0x6f")]                                   // OBJ
    [InlineData("Pfoo\n.", "opcode 0x50")]                                        // text PERSID
    [InlineData("\u0082\u0001.", "opcode 0x82")]                                  // EXT1
    [InlineData("K\u0001", "STOP")]
    [InlineData("h\u0005.", "memo slot 5")]
    [InlineData("t.", "MARK")]
    public void Pickles_that_could_run_code_or_are_malformed_are_refused(string pickle, string expected)
    {
        var bytes = Encoding.Latin1.GetBytes(pickle);
        var e = Assert.Throws<InvalidDataException>(() => SafePickleReader.Read(bytes));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_checkpoint_whose_pickle_names_a_forbidden_global_is_refused_and_nothing_runs()
    {
        using var folder = NewFolder();
        var marker = Path.Combine(folder.Path, "ran");
        var path = Path.Combine(folder.Path, "evil.pt");
        var pickle = Encoding.Latin1.GetBytes($"\u0080\u0002cos\nsystem\nX{(char)(marker.Length + 6)}\u0000\u0000\u0000touch {marker}\u0085R.");
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
        {
            using var s = zip.CreateEntry("archive/data.pkl").Open();
            s.Write(pickle);
        }
        var e = Assert.Throws<InvalidDataException>(() => LanguageModel.ImportGptNeoXCheckpoint(path));
        Assert.Contains("os.system", e.Message);
        Assert.False(File.Exists(marker));
    }

    [Theory]
    [InlineData(new long[] { 32768, 32768 }, new long[] { 0, 0 }, "never overlap")]        // 4 GB claimed from 16 bytes
    [InlineData(new long[] { 2, 2 }, new long[] { 2, 1 }, null)]                           // a dense 2 × 2 view: fine
    [InlineData(new long[] { 3, 2 }, new long[] { 2, 1 }, "reaches element")]
    public void Views_that_claim_more_values_than_their_storage_are_refused_before_allocating(long[] shape, long[] stride, string? error)
    {
        using var folder = NewFolder();
        var path = Path.Combine(folder.Path, "views.pt");
        WriteOneTensor(path, "FloatStorage", new byte[16], 4, shape, stride);
        using var file = TorchCheckpointFile.Open(path);
        var view = (PickleTensor)((PickleDict)file.Root!).Get("first")!;
        if (error is null)
        {
            using var t = file.ReadFloat32(view, "first");
            Assert.Equal(shape, t.shape);
            return;
        }
        Assert.Contains(error, Assert.Throws<InvalidDataException>(() => file.CheckFits(view, "first")).Message);
    }

    [Theory]
    [InlineData("HalfStorage")]
    [InlineData("BFloat16Storage")]
    public void Half_precision_storages_are_widened_to_float32(string storage)
    {
        float[] values = [1.5f, -2.25f, 0.125f, 1024f];                             // exact in fp16 and bf16
        var bytes = storage == "HalfStorage"
            ? values.SelectMany(v => BitConverter.GetBytes((Half)v)).ToArray()
            : values.SelectMany(v => BitConverter.GetBytes((ushort)(BitConverter.SingleToUInt32Bits(v) >> 16))).ToArray();
        using var folder = NewFolder();
        var path = Path.Combine(folder.Path, "half.pt");
        WriteOneTensor(path, storage, bytes, 4, [2, 2], [2, 1]);
        using var file = TorchCheckpointFile.Open(path);
        using var t = file.ReadFloat32((PickleTensor)((PickleDict)file.Root!).Get("first")!, "first");
        Assert.Equal(values, t.data<float>().ToArray());
    }

    /// <summary>A torch.save-style zip holding {"first": tensor(shape, stride) over storage 0 of the given class and bytes}.</summary>
    private static void WriteOneTensor(string path, string storageClass, byte[] data, int numel, long[] shape, long[] stride)
    {
        var p = new List<byte> { 0x80, 2, (byte)'}', (byte)'(' };
        p.AddRange(Encoding.Latin1.GetBytes("X\u0005\0\0\0first"));
        p.AddRange(Encoding.Latin1.GetBytes($"ctorch._utils\n_rebuild_tensor_v2\n((X\u0007\0\0\0storagectorch\n{storageClass}\nX\u0001\0\0\00X\u0003\0\0\0cpuK{(char)numel}tQK\0"));
        foreach (var dims in new[] { shape, stride })
        {
            p.Add((byte)'(');
            foreach (var d in dims) { p.Add((byte)'J'); p.AddRange(BitConverter.GetBytes((int)d)); }
            p.Add((byte)'t');
        }
        p.AddRange(Encoding.Latin1.GetBytes("\u0089ccollections\nOrderedDict\n)RtRu."));
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        using (var s = zip.CreateEntry("archive/data.pkl").Open()) s.Write(p.ToArray());
        using (var s = zip.CreateEntry("archive/data/0").Open()) s.Write(data);
    }

    [Fact]
    public void A_dict_of_many_distinct_keys_is_read_in_linear_time()
    {
        var p = new List<byte> { 0x80, 2, (byte)'}', (byte)'(' };
        for (int i = 0; i < 300_000; i++)
        {
            p.Add((byte)'J');
            p.AddRange(BitConverter.GetBytes(i));
            p.Add((byte)'N');
        }
        p.AddRange("u."u8.ToArray());
        var clock = Stopwatch.StartNew();
        var dict = (PickleDict)SafePickleReader.Read([.. p])!;
        Assert.Equal(300_000, dict.Entries.Count);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");  // quadratic insertion took minutes
    }

    [Fact]
    public void Deeply_nested_or_huge_declarations_are_refused_without_allocating()
    {
        var huge = new List<byte> { 0x80, 2, (byte)'X' };
        huge.AddRange(BitConverter.GetBytes(int.MaxValue));                       // a 2 GB string in a 7-byte pickle
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => SafePickleReader.Read([.. huge])).Message);
        var marks = Enumerable.Repeat((byte)'(', SafePickleReader.MaxStack + 2).Append((byte)'.').ToArray();
        Assert.Contains("stack", Assert.Throws<InvalidDataException>(() => SafePickleReader.Read(marks)).Message);
    }

    [Fact]
    public void Fuzzed_official_checkpoints_load_identically_or_throw_documented_exceptions()
    {
        var (tokens, _) = Expected();
        var original = File.ReadAllBytes(OfficialFile);
        float[] expected;
        using (var reference = LanguageModel.ImportGptNeoXCheckpoint(OfficialFile)) expected = Logits(reference, tokens);
        using var folder = NewFolder();
        var step = Path.Combine(folder.Path, "global_step0");
        Directory.CreateDirectory(step);
        var path = Path.Combine(step, "mp_rank_00_model_states.pt");
        Fuzz(original, bytes =>
        {
            File.WriteAllBytes(path, bytes);
            using var model = LanguageModel.ImportGptNeoXCheckpoint(path);
            return Logits(model, tokens);
        }, expected, e => e is InvalidDataException or NotSupportedException, seed: 21, maxCount: 250, maxTime: TimeSpan.FromSeconds(8));
    }

    /// <summary>
    /// The zip CRC stops random damage before the pickle machine sees it, so this fuzzes the machine itself: mutated
    /// pickles re-zipped with valid CRCs (what an attacker would write). A valid mutated pickle may describe other values,
    /// so the outcome is a model or a documented exception — never another exception, a hang or a large allocation.
    /// </summary>
    [Fact]
    public void Fuzzed_pickles_with_valid_crcs_load_or_throw_documented_exceptions()
    {
        var (tokens, _) = Expected();
        byte[] pickle;
        using (var zip = ZipFile.OpenRead(OfficialFile))
        using (var s = zip.Entries.Single(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal)).Open())
        using (var m = new MemoryStream())
        {
            s.CopyTo(m);
            pickle = m.ToArray();
        }
        using var folder = NewFolder();
        var path = Path.Combine(folder.Path, "mp_rank_00_model_states.pt");
        var random = new Random(23);
        var clock = Stopwatch.StartNew();
        var outcomes = new Dictionary<string, int>();
        int count = 0;
        for (; count < 400 && clock.Elapsed < TimeSpan.FromSeconds(8); count++)
        {
            var bytes = (byte[])pickle.Clone();
            for (int k = 1 + random.Next(3); k > 0; k--) bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            File.Copy(OfficialFile, path, overwrite: true);
            using (var zip = ZipFile.Open(path, ZipArchiveMode.Update))
            {
                var entry = zip.Entries.Single(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal));
                var name = entry.FullName;
                entry.Delete();
                using var s = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
                s.Write(bytes);
            }
            var one = Stopwatch.StartNew();
            try
            {
                using var model = LanguageModel.ImportGptNeoXCheckpoint(path);
                Logits(model, tokens);
                outcomes["loaded"] = outcomes.GetValueOrDefault("loaded") + 1;
            }
            catch (Exception e) when (e is InvalidDataException or NotSupportedException)
            {
                outcomes[e.GetType().Name] = outcomes.GetValueOrDefault(e.GetType().Name) + 1;
            }
            Assert.True(one.Elapsed < TimeSpan.FromSeconds(5), $"Mutation {count} took {one.Elapsed}.");
        }
        output.WriteLine($"{count} pickle mutations in {clock.Elapsed.TotalSeconds:0.0} s: " + string.Join(", ", outcomes.Select(o => $"{o.Key} × {o.Value}")));
        Assert.True(count >= 50, $"Only {count} mutations ran.");
    }

    [Fact]
    public void Fuzzed_safetensors_load_identically_or_throw_InvalidDataException()
    {
        torch.manual_seed(4);
        using var model = new LanguageModel(MemoryFormerConfig.Nano);
        using var folder = NewFolder();
        model.ExportSafetensors(folder.Path);
        var path = Path.Combine(folder.Path, "model.safetensors");
        var original = File.ReadAllBytes(path);
        var tokens = new long[,] { { 1, 2, 3, 4 } };
        var expected = Logits(model, tokens);
        Fuzz(original, bytes =>
        {
            File.WriteAllBytes(path, bytes);
            using var back = LanguageModel.ImportSafetensors(folder.Path);
            return Logits(back, tokens);
        }, expected, e => e is InvalidDataException, seed: 22, maxCount: 300, maxTime: TimeSpan.FromSeconds(6));
    }

    private enum Mutation { FlipBit, OverwriteByte, Truncate, Insert, OverwriteInt32 }

    private void Fuzz(byte[] original, Func<byte[], float[]> load, float[] expected, Func<Exception, bool> documented, int seed, int maxCount, TimeSpan maxTime)
    {
        var random = new Random(seed);
        var clock = Stopwatch.StartNew();
        var outcomes = new Dictionary<string, int>();
        int count = 0;
        for (; count < maxCount && clock.Elapsed < maxTime; count++)
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
            var one = Stopwatch.StartNew();
            try
            {
                var logits = load([.. bytes]);
                Assert.True(expected.SequenceEqual(logits), $"Mutation {count} ({kind} at {at}) loaded with different outputs.");
                outcomes["loaded, same outputs"] = outcomes.GetValueOrDefault("loaded, same outputs") + 1;
            }
            catch (Exception e) when (documented(e))
            {
                var key = e.GetType().Name;
                if (!outcomes.ContainsKey(key)) output.WriteLine($"{key}: {e.Message}");
                outcomes[key] = outcomes.GetValueOrDefault(key) + 1;
            }
            catch (Exception e) when (e is not Xunit.Sdk.XunitException)
            {
                Assert.Fail($"Mutation {count} ({kind} at {at}) threw an undocumented {e.GetType().FullName}: {e}");
            }
            Assert.True(one.Elapsed < TimeSpan.FromSeconds(5), $"Mutation {count} ({kind} at {at}) took {one.Elapsed}.");
        }
        output.WriteLine($"{count} mutations in {clock.Elapsed.TotalSeconds:0.0} s: " +
            string.Join(", ", outcomes.OrderByDescending(o => o.Value).Select(o => $"{o.Key} × {o.Value}")));
        Assert.True(count >= 50, $"Only {count} mutations ran in {maxTime}.");
    }
}
