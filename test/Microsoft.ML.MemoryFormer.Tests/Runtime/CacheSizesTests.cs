using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Tests.Runtime;

/// <summary>
/// <see cref="CacheSizes"/> reads Linux's cache description (or falls back to Zen 4's sizes), and the kernel sizes derived from it:
/// the Zen 4 values the kernels were tuned with, and the Emerald Rapids ones.
/// </summary>
public sealed class CacheSizesTests : IDisposable
{
    private readonly string folder = Path.Combine(Path.GetTempPath(), "mf-cache-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(folder))
            Directory.Delete(folder, recursive: true);
    }

    private void Index(int i, string level, string type, string size)
    {
        string dir = Directory.CreateDirectory(Path.Combine(folder, $"index{i}")).FullName;
        File.WriteAllText(Path.Combine(dir, "level"), level + "\n");
        File.WriteAllText(Path.Combine(dir, "type"), type + "\n");
        File.WriteAllText(Path.Combine(dir, "size"), size + "\n");
    }

    [Theory]
    [InlineData("48K", 48L << 10)]
    [InlineData("2048K", 2L << 20)]
    [InlineData("307200K", 300L << 20)]
    [InlineData("32M", 32L << 20)]
    [InlineData("1G", 1L << 30)]
    [InlineData("4096", 4096L)]
    [InlineData(" 1024K\n", 1L << 20)]
    [InlineData("", 0L)]
    [InlineData("K", 0L)]
    [InlineData("-5K", 0L)]
    [InlineData("big", 0L)]
    public void Sizes_are_read_as_sysfs_writes_them(string text, long bytes) => Assert.Equal(bytes, CacheSizes.ParseSize(text));

    [Fact]
    public void The_Emerald_Rapids_description_gives_its_L2_and_L3()
    {
        Index(0, "1", "Data", "48K");
        Index(1, "1", "Instruction", "32K");
        Index(2, "2", "Unified", "2048K");
        Index(3, "3", "Unified", "307200K");
        Assert.Equal((2L << 20, 300L << 20), CacheSizes.FromSysfs(folder));
    }

    [Fact]
    public void A_missing_folder_or_level_falls_back_to_Zen_4s_sizes()
    {
        Assert.Equal((CacheSizes.FallbackL2Bytes, CacheSizes.FallbackL3Bytes), CacheSizes.FromSysfs(folder));
        Index(0, "1", "Data", "32K");
        Index(1, "2", "Instruction", "4096K");                                    // not a data cache
        Index(2, "3", "Unified", "unreadable");
        Assert.Equal((1L << 20, 32L << 20), CacheSizes.FromSysfs(folder));
    }

    [Fact]
    public void This_machines_sizes_are_positive() => Assert.True(CacheSizes.L2Bytes > 0 && CacheSizes.L3Bytes > 0);

    [Fact]
    public void Zen_4s_caches_give_the_sizes_the_kernels_were_tuned_with_and_Emerald_Rapids_its_own()
    {
        Assert.Equal(512 << 10, KernelSettings.TiledGroupBytesFor(1L << 20));             // Zen 4: 1 MB L2
        Assert.Equal(16L << 20, KernelSettings.AlignedTiledForwardGate(1L << 20, 32L << 20)); // Zen 4: a 32 MB L3, = TiledForwardMinTableBytes
        Assert.Equal(1 << 20, KernelSettings.TiledGroupBytesFor(2L << 20));               // Emerald Rapids: 2 MB L2
        Assert.Equal(8L << 20, KernelSettings.AlignedTiledForwardGate(2L << 20, 300L << 20)); // a 300 MB mesh L3: 4 × L2
        Assert.Equal(256 << 10, KernelSettings.TiledGroupBytesFor(128L << 10));           // clamped
        Assert.Equal(4 << 20, KernelSettings.TiledGroupBytesFor(64L << 20));
        Assert.Equal(KernelSettings.TiledGroupBytesFor(CacheSizes.L2Bytes), new KernelSettings().TiledGroupBytes);
    }

    [Fact]
    public void The_row_prefetches_of_the_token_major_forward_and_the_fused_update_are_off_on_Intel_only()
    {
        Assert.Equal(!CpuVendor.IsIntel, new KernelSettings().PrefetchGatherRows);
        Assert.Equal(!CpuVendor.IsIntel, new KernelSettings().PrefetchUpdateRows);      // the fused update's row prefetch likewise (s20)
        if (!System.Runtime.Intrinsics.X86.X86Base.IsSupported)
        {
            Assert.Equal("", CpuVendor.Name);
            return;
        }
        Assert.Equal(12, CpuVendor.Name.Length);
        if (File.Exists("/proc/cpuinfo"))                                            // Linux names it in every vendor_id line
            Assert.Contains("vendor_id\t: " + CpuVendor.Name, File.ReadAllText("/proc/cpuinfo"));
    }
}
