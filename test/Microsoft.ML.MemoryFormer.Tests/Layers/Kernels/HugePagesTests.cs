using System.Runtime.InteropServices;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The huge-page advice for the inference copies: a hint that must change no value.</summary>
[Collection(nameof(HugePagesTests))]                         // toggles the process-wide HugePages.Enabled
public class HugePagesTests
{
    [Fact]
    public unsafe void Ranges_without_a_whole_2MB_page_are_not_advised()
    {
        void* buffer = NativeMemory.AlignedAlloc(4 << 20, 2 << 20);
        try
        {
            Assert.False(HugePages.Advise(buffer, (2 << 20) - 1));                 // shorter than a page
            Assert.False(HugePages.Advise((byte*)buffer + 1, 2 << 20));            // a page long but no whole page inside
        }
        finally
        {
            NativeMemory.AlignedFree(buffer);
        }
    }

    [Fact]
    public unsafe void A_whole_page_is_advised_where_linux_allows_huge_pages_and_never_when_disabled()
    {
        void* buffer = NativeMemory.AlignedAlloc(4 << 20, 2 << 20);
        try
        {
            string? mode = File.Exists(ModePath) ? File.ReadAllText(ModePath) : null;
            if (OperatingSystem.IsLinux() && mode is not null && !mode.Contains("[never]", StringComparison.Ordinal))
                Assert.True(HugePages.Advise(buffer, 4 << 20), $"madvise(MADV_HUGEPAGE) refused with THP mode '{mode.Trim()}'");
            HugePages.Enabled = false;
            Assert.False(HugePages.Advise(buffer, 4 << 20));
        }
        finally
        {
            HugePages.Enabled = true;
            NativeMemory.AlignedFree(buffer);
        }
    }

    [Fact]
    public void Copies_on_huge_pages_hold_the_same_values_as_on_small_pages()
    {
        random.manual_seed(5);
        using var weight = randn(1024, 3000);                                       // 3 MB int8, 6 MB bf16: whole 2 MB pages inside
        var huge8 = Int8Matrix.From(weight);
        var huge16 = Bf16Matrix.From(weight);
        HugePages.Enabled = false;
        Int8Matrix small8;
        Bf16Matrix small16;
        try
        {
            (small8, small16) = (Int8Matrix.From(weight), Bf16Matrix.From(weight));
        }
        finally
        {
            HugePages.Enabled = true;
        }
        Assert.True(Same(huge8, small8), "int8 copies differ");
        Assert.True(Same(huge16, small16), "bf16 copies differ");
    }

    private const string ModePath = "/sys/kernel/mm/transparent_hugepage/enabled";

    private static unsafe bool Same(Int8Matrix a, Int8Matrix b) =>
        new ReadOnlySpan<sbyte>(a.Pointer, a.Rows * a.Columns).SequenceEqual(new ReadOnlySpan<sbyte>(b.Pointer, b.Rows * b.Columns))
        && new ReadOnlySpan<float>(a.Scales, a.Rows).SequenceEqual(new ReadOnlySpan<float>(b.Scales, b.Rows));

    private static unsafe bool Same(Bf16Matrix a, Bf16Matrix b) =>
        new ReadOnlySpan<ushort>(a.Pointer, a.Rows * a.Columns).SequenceEqual(new ReadOnlySpan<ushort>(b.Pointer, b.Rows * b.Columns));
}
