using System.ComponentModel;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>Options shared by every <c>perf</c> command.</summary>
internal class PerfSettings : CommandSettings
{
    [CommandOption("--threads")]
    [Description("torch.set_num_threads for the run (the managed kernels follow it). Default 2.")]
    [DefaultValue(2)]
    public int Threads { get; init; } = 2;

    [CommandOption("--out")]
    [Description("Folder for the Markdown and JSON results. Default artifacts/perf.")]
    [DefaultValue("artifacts/perf")]
    public string Output { get; init; } = "artifacts/perf";

    [CommandOption("--quick")]
    [Description("Fewer shapes and repeats: a smoke run, not for reporting.")]
    public bool Quick { get; init; }

    /// <summary>Sets torch threads and loads the native library; call first in every command.</summary>
    public void Apply()
    {
        Runtime.TorchRuntime.EnsureAvailable();
        TorchSharp.torch.set_num_threads(Threads);
    }
}
