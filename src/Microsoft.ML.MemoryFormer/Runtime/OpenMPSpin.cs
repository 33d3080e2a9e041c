using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Microsoft.ML.MemoryFormer.Runtime;

/// <summary>
/// Bounds how long libtorch's idle OpenMP workers spin on a core, so that they leave it to the managed kernels.
/// </summary>
/// <remarks>
/// <para>On Linux, libtorch runs its parallel ops on GNU OpenMP (libgomp). After each op, libgomp's workers wait for
/// the next one by spinning (<c>pause</c> in a loop) for up to <c>GOMP_SPINCOUNT</c> = 300,000 iterations, which is
/// milliseconds, before they sleep. MemoryFormer's fused kernels run on .NET thread-pool threads between torch ops,
/// so a worker still spinning from the op before takes a core from them: on a 2-core machine the kernels then run on
/// about one and a half cores. A bounded spin of <see cref="SpinCount"/> iterations keeps the short waits between
/// back-to-back torch ops cheap and gives the core back soon after.</para>
/// <para>libgomp reads the variable once, when libtorch loads; so it is set when this assembly is first used, and has
/// an effect only if no torch call came before. It is set only on Linux and only when the process has set neither
/// <c>OMP_WAIT_POLICY</c> nor <c>GOMP_SPINCOUNT</c>: set either (for example <c>OMP_WAIT_POLICY=ACTIVE</c>) to keep
/// OpenMP's own behaviour. Results do not depend on it, only speed. Like any <c>setenv</c>, it is not safe against
/// native <c>getenv</c> calls racing on other threads; it runs once, when the assembly is first used, which in practice
/// is during start-up.</para>
/// </remarks>
internal static partial class OpenMPSpin
{
    /// <summary>The spin count set when the process chose none.</summary>
    public const string SpinCount = "10000";

    /// <summary>Variables whose presence means the process chose an OpenMP wait behaviour itself.</summary>
    public static readonly string[] UserChoices = ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT"];

    /// <summary>Whether this process's environment was changed here.</summary>
    public static bool Applied { get; private set; }

    // A module initializer, not a call from TorchRuntime: it must run before the first torch call, and callers reach
    // torch through many types (models, options, ML.NET components) before any single entry point. It only sets an
    // environment variable the process left unset.
    [ModuleInitializer]
    [SuppressMessage("Usage", "CA2255:The 'ModuleInitializer' attribute should not be used in libraries",
        Justification = "libgomp reads its spin count once, when libtorch loads; this must precede every torch call the library makes.")]
    internal static void Initialize()
    {
        if (!OperatingSystem.IsLinux())
            return;
        try
        {
            Applied = Apply(name => getenv(name) != 0, (name, value) => setenv(name, value, 0) == 0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc: leave OpenMP as it is.
        }
    }

    /// <summary>
    /// Sets <c>GOMP_SPINCOUNT</c> to <see cref="SpinCount"/> unless one of <see cref="UserChoices"/> is set; returns
    /// whether it did.
    /// </summary>
    internal static bool Apply(Func<string, bool> isSet, Func<string, string, bool> set) =>
        !UserChoices.Any(isSet) && set("GOMP_SPINCOUNT", SpinCount);

    /// <summary>The process environment's value of <paramref name="name"/> as libgomp sees it (native, not .NET's copy).</summary>
    internal static string? Get(string name) => Marshal.PtrToStringUTF8(getenv(name));

    [LibraryImport("libc.so.6", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint getenv(string name);

    [LibraryImport("libc.so.6", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int setenv(string name, string value, int overwrite);
}
