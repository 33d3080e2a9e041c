using System.Collections.Concurrent;
using System.Diagnostics;

namespace Microsoft.ML.MemoryFormer.Tests.Reliability;

/// <summary>
/// Runs the test host (<c>Microsoft.ML.MemoryFormer.TestHost.dll</c>, copied next to the tests) as a child process so a
/// test can kill it at a chosen moment — mid-training, mid-save — and check what it left behind.
/// </summary>
internal sealed class ChildProcess : IDisposable
{
    private readonly Process process;
    private readonly string tempFolder;
    private readonly BlockingCollection<string> lines = new();
    private readonly ConcurrentQueue<string> errors = new();

    private ChildProcess(Process process, string tempFolder)
    {
        this.process = process;
        this.tempFolder = tempFolder;
    }

    /// <summary>Everything the child wrote to stderr so far (for assertion messages).</summary>
    public string Errors => string.Join(Environment.NewLine, errors);

    /// <summary>
    /// Starts <c>dotnet TestHost.dll args…</c> with stdout and stderr captured, and with its own temporary folder
    /// (<c>TMPDIR</c>): a child killed mid-save leaves ML.NET's <c>ml_dotnet_*</c> scratch folders behind, and
    /// <see cref="Dispose"/> deletes them with the folder instead of leaving them in the machine's /tmp.
    /// </summary>
    public static ChildProcess Start(params string[] args) => Start(new Dictionary<string, string?>(), args);

    /// <summary>Like <see cref="Start(string[])"/>, with <paramref name="environment"/> changed in the child's environment
    /// (a null value removes the variable).</summary>
    public static ChildProcess Start(IReadOnlyDictionary<string, string?> environment, params string[] args)
    {
        var host = Path.Combine(AppContext.BaseDirectory, "Microsoft.ML.MemoryFormer.TestHost.dll");
        if (!File.Exists(host)) throw new FileNotFoundException("The test host was not built next to the tests.", host);
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        var tempFolder = Directory.CreateTempSubdirectory("mf-testhost-").FullName;
        info.Environment["TMPDIR"] = tempFolder;
        foreach (var (name, value) in environment)
        {
            if (value is null) info.Environment.Remove(name);
            else info.Environment[name] = value;
        }
        info.ArgumentList.Add(host);
        foreach (var a in args) info.ArgumentList.Add(a);
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var child = new ChildProcess(process, tempFolder);
        process.OutputDataReceived += (_, e) => { if (e.Data is null) child.lines.CompleteAdding(); else child.lines.Add(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) child.errors.Enqueue(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>Waits for a stdout line matching <paramref name="match"/>; throws with the child's stderr on timeout or exit.</summary>
    public string WaitForLine(Func<string, bool> match, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (lines.TryTake(out var line, TimeSpan.FromMilliseconds(100)))
            {
                if (match(line)) return line;
            }
            else if (lines.IsCompleted)
            {
                throw new InvalidOperationException($"The test host exited (code {ExitCodeOrNull()}) before the expected line. stderr:\n{Errors}");
            }
        }
        throw new TimeoutException($"The test host printed no matching line within {timeout}. stderr:\n{Errors}");
    }

    /// <summary>Kills the child (and its process tree) at once, as a crash or power loss would, and waits for it.</summary>
    public void Kill()
    {
        if (!process.HasExited) process.Kill(entireProcessTree: true);
        process.WaitForExit();
    }

    /// <summary>Waits for a normal exit and returns the exit code.</summary>
    public int WaitForExit(TimeSpan timeout)
    {
        if (!process.WaitForExit(timeout)) { Kill(); throw new TimeoutException($"The test host did not exit within {timeout}. stderr:\n{Errors}"); }
        process.WaitForExit();
        return process.ExitCode;
    }

    private int? ExitCodeOrNull() => process.HasExited ? process.ExitCode : null;

    public void Dispose()
    {
        Kill();
        process.Dispose();
        lines.Dispose();
        try { Directory.Delete(tempFolder, recursive: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // best effort: must not fail a test
    }
}
