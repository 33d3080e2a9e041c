using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.ML.MemoryFormer.Benchmarks.Perf;
using Spectre.Console;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Serving;

/// <summary>
/// <c>bench webapi</c>: a bounded load run of samples/WebApi on loopback (issue 23). Starts the server as a child
/// process on 127.0.0.1 (training its demo models the first time), then cycles through six phases — classification
/// and streamed generation with 1, 8 and 32 concurrent clients — until the time is up, sampling the server's resident
/// memory every 5 s. Reports requests/s, texts or tokens/s, p50/p99 latency, aborted streams, deliberate 400s and
/// errors per phase, the memory series and the server's own counters at the end; writes webapi.md. Exits 1 on any error or a server crash.
/// </summary>
internal sealed class WebApiLoadCommand : AsyncCommand<WebApiLoadCommand.Settings>
{
    private static readonly int[] ClientCounts = [1, 8, 32];

    public sealed class Settings : CommandSettings
    {
        [CommandOption("--minutes <N>")]
        [Description("Length of the load (default 10)")]
        public double Minutes { get; init; } = 10;

        [CommandOption("--phase-seconds <N>")]
        [Description("Length of one phase; a cycle is six phases (default 20)")]
        public double PhaseSeconds { get; init; } = 20;

        [CommandOption("--max-requests <N>")]
        [Description("Most requests per phase (default 20000)")]
        public int MaxRequests { get; init; } = 20_000;

        [CommandOption("--max-new-tokens <N>")]
        [Description("Tokens per streamed generation (default 64)")]
        public int MaxNewTokens { get; init; } = 64;

        [CommandOption("--batch <N>")]
        [Description("Texts per classification request (default 8)")]
        public int Batch { get; init; } = 8;

        [CommandOption("--abort-every <N>")]
        [Description("Every N-th stream is dropped by its client after three pieces (default 4)")]
        public int AbortEvery { get; init; } = 4;

        [CommandOption("--aborted-tokens <N>")]
        [Description("Tokens asked for by the streams that are dropped (default 512, the server's limit)")]
        public int AbortedTokens { get; init; } = 512;

        [CommandOption("--slots <N>")]
        [Description("The server's Serving:MaxConcurrentGenerations (default 8)")]
        public int Slots { get; init; } = 8;

        [CommandOption("--port <N>")]
        [Description("Loopback port (default 5199)")]
        public int Port { get; init; } = 5199;

        [CommandOption("--server <DLL>")]
        [Description("The built server (default samples/WebApi/bin/Release/net10.0/WebApi.dll)")]
        public string? Server { get; init; }

        [CommandOption("--output <DIR>")]
        [Description("Folder for webapi.md and the demo models (default artifacts/benchmarks)")]
        public string? Output { get; init; }

        public override ValidationResult Validate() =>
            Minutes > 0 && PhaseSeconds > 0 && MaxRequests > 0 && MaxNewTokens > 0 && AbortedTokens > 0 && Batch > 0 && AbortEvery > 0 && Slots > 0
                ? ValidationResult.Success() : ValidationResult.Error("every number must be positive");
    }

    public override async Task<int> ExecuteAsync(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        string output = settings.Output ?? Path.Combine(BenchmarkPaths.RepoRoot, "artifacts", "benchmarks");
        string server = settings.Server ?? Path.Combine(BenchmarkPaths.RepoRoot, "samples", "WebApi", "bin", "Release", "net10.0", "WebApi.dll");
        Directory.CreateDirectory(output);
        if (settings.Server is null && !File.Exists(server)) await BuildServerAsync();
        TorchSharp.torch.set_num_threads(Environment.ProcessorCount);
        var before = MachineFigures.Figures();
        AnsiConsole.WriteLine(Invariant($"Machine before: GEMM {before.GemmGflops:F1} GFLOP/s, copy {before.CopyGBps:F1} GB/s, {Environment.ProcessorCount} cores"));

        using var process = await ServerProcess.StartAsync(server, settings.Port, Path.Combine(output, "webapi-models"), settings.Slots, TimeSpan.FromMinutes(5));
        // MaxResponseDrainSize = 0: a dropped stream closes its connection, as a browser tab or a killed client does (by
        // default HttpClient would read the rest of the response to reuse the connection, and the server would never know).
        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = 256, PooledConnectionLifetime = TimeSpan.FromMinutes(5), MaxResponseDrainSize = 0 };
        using var client = new HttpClient(handler) { BaseAddress = process.Address, Timeout = TimeSpan.FromSeconds(120) };
        var runner = new LoadRunner(client, settings.Batch, settings.MaxNewTokens, settings.AbortEvery, settings.AbortedTokens);
        var phases = ClientCounts.Select(n => new PhaseStats(LoadKind.Classify, n))
            .Concat(ClientCounts.Select(n => new PhaseStats(LoadKind.Stream, n))).ToArray();

        // Warm-up (not counted): a few requests of each kind.
        await runner.RunAsync(new PhaseStats(LoadKind.Classify, 2), TimeSpan.FromSeconds(5), 50);
        await runner.RunAsync(new PhaseStats(LoadKind.Stream, 2), TimeSpan.FromSeconds(5), 20);

        var samples = new List<MemorySample>();
        var load = Stopwatch.StartNew();
        int cycle = 0;
        string current = "";
        using var stopSampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!stopSampling.IsCancellationRequested)
            {
                if (process.IsRunning)
                    lock (samples) samples.Add(new MemorySample(load.Elapsed.TotalMinutes, cycle, current, process.ResidentBytes()));
                try { await Task.Delay(5000, stopSampling.Token); } catch (OperationCanceledException) { }
            }
        });

        var total = TimeSpan.FromMinutes(settings.Minutes);
        var phaseTime = TimeSpan.FromSeconds(settings.PhaseSeconds);
        while (load.Elapsed < total && process.IsRunning && !cancellationToken.IsCancellationRequested)
        {
            cycle++;
            foreach (var phase in phases)
            {
                if (load.Elapsed >= total || !process.IsRunning) break;
                current = $"{Name(phase.Kind)} × {phase.Clients}";
                await runner.RunAsync(phase, phaseTime, settings.MaxRequests);
            }
            long rss;
            lock (samples) rss = samples.Count > 0 ? samples[^1].ResidentBytes : 0;
            AnsiConsole.WriteLine(Invariant($"cycle {cycle} done at {load.Elapsed.TotalMinutes:F1} min, server RSS {Mb(rss):F0} MB, errors {phases.Sum(p => p.Errors)}"));
        }
        await stopSampling.CancelAsync();
        await sampler;
        bool alive = process.IsRunning;
        string counters = alive ? await ServerCountersAsync(client) : "";
        var after = MachineFigures.Figures();

        string markdown = ToMarkdown(settings, before, after, phases, samples, load.Elapsed, cycle, alive) + counters;
        string path = Path.Combine(output, "webapi.md");
        await File.WriteAllTextAsync(path, markdown, cancellationToken);
        Console.WriteLine(markdown);
        foreach (var phase in phases.Where(p => p.FirstError is not null))
            AnsiConsole.WriteLine($"first error, {Name(phase.Kind)} × {phase.Clients}: {phase.FirstError}");
        AnsiConsole.MarkupLine($"[grey]Wrote {Markup.Escape(path)}[/]");
        return alive && phases.All(p => p.Errors == 0) ? 0 : 1;
    }

    // build/build.sh bench builds only the benchmark project: build the server the first time.
    private static async Task BuildServerAsync()
    {
        string project = Path.Combine(BenchmarkPaths.RepoRoot, "samples", "WebApi", "WebApi.csproj");
        Console.WriteLine($"Building {project}");
        using var build = Process.Start(new ProcessStartInfo("dotnet", ["build", project, "-c", "Release", "-nologo", "-clp:ErrorsOnly"]))
            ?? throw new InvalidOperationException("dotnet did not start.");
        await build.WaitForExitAsync();
        if (build.ExitCode != 0) throw new InvalidOperationException($"Building {project} failed (exit code {build.ExitCode}).");
    }

    // The server's view after the load: engines all returned, no generation left running, one cancellation per dropped stream.
    private static async Task<string> ServerCountersAsync(HttpClient client)
    {
        await Task.Delay(2000);   // let the last dropped streams notice their client is gone
        using var health = System.Text.Json.JsonDocument.Parse(await client.GetStringAsync(new Uri("health", UriKind.Relative)));
        var c = health.RootElement.GetProperty("counters");
        long Get(string name) => c.GetProperty(name).GetInt64();
        return Invariant($"Server counters at the end (GET /health, warm-up included): {Get("classifyRequests")} classifications, {Get("generationsCompleted")} generations completed, ",
            $"{Get("generationsCancelled")} cancelled by their client, {Get("generationsFailed")} failed, {Get("rejectedRequests")} rejected requests; ",
            $"engines created {Get("enginesCreated")}, in use {Get("enginesInUse")}; generations running {Get("generationsRunning")}.\n");
    }

    private static string ToMarkdown(Settings settings, (double GemmGflops, double CopyGBps) before, (double GemmGflops, double CopyGBps) after,
        PhaseStats[] phases, List<MemorySample> samples, TimeSpan elapsed, int cycles, bool alive)
    {
        var md = new StringBuilder();
        md.AppendLine(Invariant($"`build/build.sh bench webapi --minutes {settings.Minutes} --phase-seconds {settings.PhaseSeconds}` on {Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC: ",
            $"{elapsed.TotalMinutes:F1} min of load in {cycles} cycles of six {settings.PhaseSeconds:F0} s phases; server and clients on the same machine (127.0.0.1). ",
            $"Machine: GEMM {before.GemmGflops:F1} GFLOP/s and copy {before.CopyGBps:F1} GB/s before the run, {after.GemmGflops:F1} and {after.CopyGBps:F1} after. ",
            $"Classification: {settings.Batch} texts per request; streams: {settings.MaxNewTokens} new tokens, every {settings.AbortEvery}th asks for {settings.AbortedTokens} and is dropped by its client after 3 pieces; ",
            $"{settings.Slots} generation slots; every 25th request of a phase is sent malformed (counted as deliberate 400s)."));
        md.AppendLine();
        md.AppendLine("| endpoint | clients | requests | requests/s | texts/s or tokens/s | p50 ms | p99 ms | first piece p50 ms | aborted by client | deliberate 400 | errors |");
        md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var p in phases)
        {
            double s = Math.Max(p.Seconds, 1e-9);
            string first = p.Kind == LoadKind.Stream ? Invariant($"{p.Percentile(0.5, firstPiece: true):F0}") : "–";
            md.AppendLine(Invariant($"| {(p.Kind == LoadKind.Classify ? "POST /classify" : "POST /generate/stream")} | {p.Clients} | {p.Ok} | {p.Ok / s:F1} | ",
                $"{p.Units / s:F0} | {p.Percentile(0.5):F0} | {p.Percentile(0.99):F0} | {first} | {p.Aborted} | {p.Deliberate} | {p.Errors} |"));
        }
        md.AppendLine();
        md.AppendLine(MemorySummary(samples, alive));
        return md.ToString();
    }

    private static string MemorySummary(List<MemorySample> samples, bool alive)
    {
        if (samples.Count == 0) return "No memory samples.";
        var md = new StringBuilder();
        var perCycle = samples.GroupBy(s => s.Cycle).Select(g => (Cycle: g.Key, Max: g.Max(s => s.ResidentBytes), Last: g.Last().ResidentBytes)).ToArray();
        var settled = samples.Where(s => s.Cycle > 1).ToArray();
        string range = settled.Length > 2
            ? Invariant($"; after the first cycle {Mb(settled.Min(s => s.ResidentBytes)):F0}–{Mb(settled.Max(s => s.ResidentBytes)):F0} MB, least-squares slope {Slope(settled):F2} MB/min")
            : "";
        md.AppendLine(Invariant($"Server resident memory (VmRSS, every 5 s, {samples.Count} samples): {Mb(samples.Min(s => s.ResidentBytes)):F0}–{Mb(samples.Max(s => s.ResidentBytes)):F0} MB; ",
            $"first sample {Mb(samples[0].ResidentBytes):F0} MB, last {Mb(samples[^1].ResidentBytes):F0} MB{range}{(alive ? "." : "; THE SERVER DIED.")}"));
        md.AppendLine();
        md.AppendLine("| cycle | peak MB | at cycle end MB |");
        md.AppendLine("| ---: | ---: | ---: |");
        foreach (var (c, max, last) in perCycle) md.AppendLine(Invariant($"| {c} | {Mb(max):F0} | {Mb(last):F0} |"));
        return md.ToString();
    }

    private static double Slope(MemorySample[] samples)
    {
        double mx = samples.Average(s => s.Minute), my = samples.Average(s => Mb(s.ResidentBytes));
        double sxy = samples.Sum(s => (s.Minute - mx) * (Mb(s.ResidentBytes) - my)), sxx = samples.Sum(s => (s.Minute - mx) * (s.Minute - mx));
        return sxx > 0 ? sxy / sxx : 0;
    }

    private static string Name(LoadKind kind) => kind == LoadKind.Classify ? "classify" : "stream";

    private static double Mb(long bytes) => bytes / (1024.0 * 1024.0);

    private static string Invariant(params FormattableString[] parts) => string.Concat(parts.Select(p => p.ToString(CultureInfo.InvariantCulture)));
}
