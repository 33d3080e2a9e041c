using System.Diagnostics;
using System.Globalization;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Serving;

/// <summary>
/// samples/WebApi as a child process on 127.0.0.1 (its own process, so its resident memory is the server's alone),
/// started with <c>--train-demo</c> (trains the demo models into the given folder the first time) and killed on dispose.
/// </summary>
internal sealed class ServerProcess : IDisposable
{
    private readonly Process process;

    private ServerProcess(Process process, Uri address)
    {
        this.process = process;
        Address = address;
    }

    /// <summary>The server's base address.</summary>
    public Uri Address { get; }

    /// <summary>The server's process id.</summary>
    public int Id => process.Id;

    /// <summary>Starts the server and waits until <c>/health</c> answers.</summary>
    public static async Task<ServerProcess> StartAsync(string serverDll, int port, string modelFolder, int maxConcurrentGenerations, TimeSpan timeout)
    {
        if (!File.Exists(serverDll))
            throw new FileNotFoundException($"{serverDll} not found: build it first (build/build.sh build, or dotnet build samples/WebApi -c Release).", serverDll);
        Console.WriteLine($"Starting {serverDll} on {port} (it trains the demo models into {modelFolder} if they are not there)");
        var address = new Uri($"http://127.0.0.1:{port}/");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
        {
            serverDll, "--train-demo", "--urls", address.ToString().TrimEnd('/'),
            $"--Serving:ClassifierPath={Path.Combine(modelFolder, "classifier.zip")}",
            $"--Serving:LanguageModelPath={Path.Combine(modelFolder, "language-model.zip")}",
            $"--Serving:MaxConcurrentGenerations={maxConcurrentGenerations.ToString(CultureInfo.InvariantCulture)}",
            "--Logging:LogLevel:Default=Warning",
        })
            start.ArgumentList.Add(arg);
        var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start.");
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) Console.WriteLine($"  [server] {e.Data}"); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) Console.WriteLine($"  [server] {e.Data}"); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new ServerProcess(process, address);
        using var client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited)
            {
                server.Dispose();
                throw new InvalidOperationException($"The server exited with code {process.ExitCode} before answering /health.");
            }
            try
            {
                using var health = await client.GetAsync(new Uri("health", UriKind.Relative));
                if (health.IsSuccessStatusCode) return server;
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }
            await Task.Delay(500);
        }
        server.Dispose();
        throw new TimeoutException($"The server did not answer /health within {timeout.TotalSeconds:F0} s.");
    }

    /// <summary>The server's resident memory (VmRSS) in bytes, read from /proc; falls back to Process.WorkingSet64.</summary>
    public long ResidentBytes()
    {
        string status = $"/proc/{process.Id}/status";
        if (File.Exists(status))
        {
            foreach (var line in File.ReadLines(status))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
            }
        }
        process.Refresh();
        return process.WorkingSet64;
    }

    /// <summary>Whether the server is still running.</summary>
    public bool IsRunning => !process.HasExited;

    /// <inheritdoc />
    public void Dispose()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
        }
        process.Dispose();
    }
}
