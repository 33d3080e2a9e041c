using Microsoft.ML.MemoryFormer.Persistence;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Tests.Persistence;

public sealed class ModelArchiveTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("mf-archive-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static ModelArchive Sample() => new ModelArchive()
        .SetText(ModelArchive.ConfigEntry, """{"width":8}""")
        .Set(ModelArchive.WeightsEntry, [1, 2, 3, 255])
        .SetText(ModelArchive.LabelsEntry, """["é","b"]""");

    private static byte[] Bytes(ModelArchive archive)
    {
        using var stream = new MemoryStream();
        archive.WriteTo(stream);
        return stream.ToArray();
    }

    [Fact]
    public void Round_trip_through_a_stream_keeps_every_entry()
    {
        var read = ModelArchive.ReadFrom(new MemoryStream(Bytes(Sample())));

        Assert.Equal(Sample().EntryNames, read.EntryNames);
        Assert.Equal([1, 2, 3, 255], read.Get(ModelArchive.WeightsEntry));
        Assert.Equal("""["é","b"]""", read.GetText(ModelArchive.LabelsEntry));
    }

    [Fact]
    public void SaveAtomically_replaces_the_file_and_leaves_no_temporary_file()
    {
        var path = Path.Combine(_folder, "model.mfa");
        new ModelArchive().SetText(ModelArchive.ConfigEntry, "old").SaveAtomically(path);

        Sample().SaveAtomically(path);

        Assert.Equal("""{"width":8}""", ModelArchive.Load(path).GetText(ModelArchive.ConfigEntry));
        Assert.Equal([path], Directory.GetFiles(_folder));
    }

    [Fact]
    public void A_save_deletes_the_temporary_files_of_ended_processes_and_keeps_those_of_running_ones()
    {
        var path = Path.Combine(_folder, "model.mfa");
        int ended = EndedProcessId();
        string abandoned = Path.Combine(_folder, $".model.mfa.{ended}.{Guid.NewGuid():N}.tmp"),
            running = Path.Combine(_folder, $".model.mfa.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp"),
            otherTarget = Path.Combine(_folder, $".other.mfa.{ended}.{Guid.NewGuid():N}.tmp"),
            withoutProcess = Path.Combine(_folder, $".model.mfa.{Guid.NewGuid():N}.tmp");
        foreach (var file in new[] { abandoned, running, otherTarget, withoutProcess })
            File.WriteAllBytes(file, [1]);

        Sample().SaveAtomically(path);

        Assert.False(File.Exists(abandoned));
        Assert.True(File.Exists(running));
        Assert.True(File.Exists(otherTarget));
        Assert.True(File.Exists(withoutProcess));
    }

    private static int EndedProcessId()
    {
        var start = OperatingSystem.IsWindows()
            ? new System.Diagnostics.ProcessStartInfo("cmd.exe", "/c exit 0")
            : new System.Diagnostics.ProcessStartInfo("true");
        using var process = System.Diagnostics.Process.Start(start)!;
        process.WaitForExit();
        return process.Id;
    }

    [Fact]
    public void A_writer_failing_midway_leaves_the_old_file_intact()
    {
        var path = Path.Combine(_folder, "model.mfa");
        Sample().SaveAtomically(path);
        var before = File.ReadAllBytes(path);

        Assert.Throws<IOException>(() => ModelArchive.WriteFileAtomically(path, stream =>
        {
            stream.Write(new byte[100]);
            throw new IOException("disk full");
        }));

        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal([path], Directory.GetFiles(_folder));
    }

    [Fact]
    public void Every_truncation_is_reported_as_invalid_data()
    {
        var bytes = Bytes(Sample());

        for (int length = 0; length < bytes.Length; length++)
        {
            var error = Assert.Throws<InvalidDataException>(() => ModelArchive.ReadFrom(new MemoryStream(bytes[..length])));
            Assert.Contains(length < 8 ? "Not a MemoryFormer model archive" : "truncated", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Unknown_format_version_is_named_in_the_error()
    {
        var bytes = Bytes(Sample());
        BitConverter.TryWriteBytes(bytes.AsSpan(8, 4), 99);

        var error = Assert.Throws<InvalidDataException>(() => ModelArchive.ReadFrom(new MemoryStream(bytes)));

        Assert.Contains("format version 99", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_entry_is_named_in_the_error()
    {
        var error = Assert.Throws<InvalidDataException>(() => Sample().Get(ModelArchive.TokenizerEntry));

        Assert.Contains(ModelArchive.TokenizerEntry, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("../escape")]
    [InlineData("..")]
    [InlineData(".hidden")]
    [InlineData("a/b")]
    [InlineData("a\\b")]
    [InlineData("")]
    public void Entry_names_must_be_plain_file_names(string name)
    {
        Assert.Throws<ArgumentException>(() => new ModelArchive().Set(name, []));
    }

    [Theory]
    [InlineData("../escape")]
    [InlineData("..")]
    [InlineData("a/b")]
    public void A_file_with_an_entry_name_that_leaves_its_folder_is_refused(string name)
    {
        var bytes = Bytes(new ModelArchive().Set("x", [1]));
        var forged = Forge(bytes, "x", name);

        var error = Assert.Throws<InvalidDataException>(() => ModelArchive.ReadFrom(new MemoryStream(forged)));

        Assert.Contains("plain file names", error.Message, StringComparison.Ordinal);
    }

    /// <summary>A copy of a one-entry archive with the entry renamed (bypassing <see cref="ModelArchive.Set"/>'s check).</summary>
    private static byte[] Forge(byte[] bytes, string from, string to)
    {
        var head = bytes[..16];                                              // magic, version, count
        var rest = bytes[(16 + 1 + from.Length)..];                           // after the 7-bit length and the name
        return [.. head, (byte)to.Length, .. System.Text.Encoding.UTF8.GetBytes(to), .. rest];
    }

    [Fact]
    public void A_changed_byte_inside_an_entry_is_reported_as_damage()
    {
        var bytes = Bytes(Sample());
        int at = bytes.AsSpan().IndexOf("""{"width":8}"""u8);
        bytes[at + 2] = (byte)'W';

        var error = Assert.Throws<InvalidDataException>(() => ModelArchive.ReadFrom(new MemoryStream(bytes)));

        Assert.Contains("'config.json' is damaged", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Format_version_1_is_refused_with_a_message_to_save_again()
    {
        var bytes = Bytes(Sample());
        BitConverter.TryWriteBytes(bytes.AsSpan(8, 4), 1);

        var error = Assert.Throws<InvalidDataException>(() => ModelArchive.ReadFrom(new MemoryStream(bytes)));

        Assert.Contains("save it again", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Absurd_declared_lengths_fail_fast_without_allocating_them(bool seekable)
    {
        var bytes = Bytes(new ModelArchive().Set("x", new byte[100]));
        BitConverter.TryWriteBytes(bytes.AsSpan(16 + 2, 8), (long)int.MaxValue - 100);     // the entry's byte count
        long before = GC.GetAllocatedBytesForCurrentThread();

        var error = Assert.Throws<InvalidDataException>(() => ModelArchive.ReadFrom(seekable ? new MemoryStream(bytes) : new ForwardOnlyStream(bytes)));

        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 8 << 20);
        Assert.Contains(seekable ? "more than the file holds" : "truncated", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_absurd_entry_count_is_refused()
    {
        var bytes = Bytes(Sample());
        BitConverter.TryWriteBytes(bytes.AsSpan(12, 4), int.MaxValue);

        var error = Assert.Throws<InvalidDataException>(() => ModelArchive.ReadFrom(new MemoryStream(bytes)));

        Assert.Contains("at most 64", error.Message, StringComparison.Ordinal);
    }

    /// <summary>A stream that cannot seek or report its length, as a network stream.</summary>
    private static byte[] Pattern(int length, int seed = 0) => [.. Enumerable.Range(0, length).Select(i => (byte)((i * 7) + (i >> 9) + seed))];

    private static byte[] ReadAll(Stream stream)
    {
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    [Fact]
    public void A_streamed_entry_writes_the_same_file_as_its_bytes_held_in_memory()
    {
        var bytes = Pattern(300_000);
        var held = new ModelArchive().SetText(ModelArchive.ConfigEntry, "{}").Set(ModelArchive.WeightsEntry, bytes);
        var streamed = new ModelArchive().SetText(ModelArchive.ConfigEntry, "{}").SetStreamed(ModelArchive.WeightsEntry, stream =>
        {
            stream.Write(bytes, 0, 1000);
            stream.Write(bytes.AsSpan(1000));
            stream.Dispose();                                    // as TorchSharp's module.save does; the file stays open
        });

        Assert.Equal(Bytes(held), Bytes(streamed));
        Assert.Equal(bytes, streamed.Get(ModelArchive.WeightsEntry));
    }

    [Fact]
    public void Large_entries_are_verified_when_loaded_then_read_in_place_until_the_archive_is_disposed()
    {
        var path = Path.Combine(_folder, "run.ckpt");
        var weights = Pattern(3 << 20);
        var moments = Pattern(1 << 20, seed: 3);
        new ModelArchive().SetText(ModelArchive.ConfigEntry, "{}")
            .SetStreamed(ModelArchive.WeightsEntry, stream => stream.Write(weights))
            .SetStreamed("optimizer.bin", stream => stream.Write(moments))
            .SaveAtomically(path);

        var archive = ModelArchive.Load(path, inMemoryLimit: 4096);
        Assert.Equal(weights.Length, archive.LengthOf(ModelArchive.WeightsEntry));
        using (var first = archive.OpenRead(ModelArchive.WeightsEntry))
        using (var second = archive.OpenRead("optimizer.bin"))
        {
            var head = new byte[10];
            first.ReadExactly(head);
            Assert.Equal(moments, ReadAll(second));                  // two entries of one file read in turns stay apart
            Assert.Equal(weights[10..], ReadAll(first));
            Assert.Equal(0, first.Read(head));                      // and end with their entry
        }
        Assert.Equal(weights, archive.Get(ModelArchive.WeightsEntry));
        Assert.Equal("{}", archive.GetText(ModelArchive.ConfigEntry));

        archive.Dispose();
        Assert.Throws<ObjectDisposedException>(() => archive.OpenRead(ModelArchive.WeightsEntry));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_damaged_or_truncated_large_entry_is_refused_when_the_file_is_loaded(bool truncate)
    {
        var path = Path.Combine(_folder, "run.ckpt");
        new ModelArchive().SetStreamed(ModelArchive.WeightsEntry, stream => stream.Write(Pattern(1 << 20))).SaveAtomically(path);
        var bytes = File.ReadAllBytes(path);
        if (truncate)
            bytes = bytes[..^100];
        else
            bytes[bytes.Length / 2] ^= 1;
        File.WriteAllBytes(path, bytes);

        var error = Assert.Throws<InvalidDataException>(() => ModelArchive.Load(path, inMemoryLimit: 4096));

        Assert.Contains(truncate ? "truncated" : "'weights.bin' is damaged", error.Message, StringComparison.Ordinal);
        File.Delete(path);                                          // the failed load left the file closed
    }

    [Fact]
    public void A_streamed_entry_is_written_only_to_a_seekable_stream_and_cannot_be_opened_before()
    {
        var archive = new ModelArchive().SetStreamed(ModelArchive.WeightsEntry, stream => stream.Write([1, 2, 3]));

        var error = Assert.Throws<NotSupportedException>(() => archive.WriteTo(new System.IO.Compression.GZipStream(new MemoryStream(),
            System.IO.Compression.CompressionMode.Compress)));
        Assert.Contains("'weights.bin'", error.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => archive.OpenRead(ModelArchive.WeightsEntry));
        Assert.Equal([1, 2, 3], archive.Get(ModelArchive.WeightsEntry));
    }

    private sealed class ForwardOnlyStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => base.Position; set => throw new NotSupportedException(); }
    }

    [Fact]
    public void TorchSharp_weights_survive_a_checkpoint_file()
    {
        var path = Path.Combine(_folder, "linear.mfa");
        torch.manual_seed(7);
        using var original = torch.nn.Linear(3, 2);
        using (var weights = new MemoryStream())
        {
            original.save(weights);
            new ModelArchive().Set(ModelArchive.WeightsEntry, weights.ToArray()).SaveAtomically(path);
        }

        using var restored = torch.nn.Linear(3, 2);
        restored.load(new MemoryStream(ModelArchive.Load(path).Get(ModelArchive.WeightsEntry)));

        Assert.True((original.weight! == restored.weight!).all().item<bool>());
        Assert.True((original.bias! == restored.bias!).all().item<bool>());
    }
}
