using System.Runtime.Intrinsics.X86;
using System.Text;

namespace Microsoft.ML.MemoryFormer.Runtime;

/// <summary>
/// The x86 vendor string (<c>cpuid</c> leaf 0), for the few kernel defaults that were measured to go opposite ways on the two
/// machines the kernels were tuned on, an AMD Zen 4 and an Intel Xeon (Emerald Rapids), and that no cache size explains.
/// </summary>
internal static class CpuVendor
{
    private static readonly Lazy<string> Read = new(() =>
    {
        if (!X86Base.IsSupported)
            return "";
        var (_, ebx, ecx, edx) = X86Base.CpuId(0, 0);
        var bytes = new byte[12];
        BitConverter.TryWriteBytes(bytes.AsSpan(0), ebx);
        BitConverter.TryWriteBytes(bytes.AsSpan(4), edx);
        BitConverter.TryWriteBytes(bytes.AsSpan(8), ecx);
        return Encoding.ASCII.GetString(bytes);
    });

    /// <summary>"GenuineIntel", "AuthenticAMD", … or empty off x86.</summary>
    public static string Name => Read.Value;

    /// <summary>Whether this is an Intel processor.</summary>
    public static bool IsIntel => Name == "GenuineIntel";
}
