// Prints what the paper's models cost: per-block FLOPs at s = 2048 (paper Table 1), parameters and table memory,
// for MemoryFormer and the dense transformer of the same shape. No training, no torch: pure arithmetic.
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Diagnostics;
using Spectre.Console;

const int sequenceLength = 2048;
var models = new (string Name, string Baseline, MemoryFormerConfig Config)[]
{
    ("MF-tiny", "Pythia-70M", MemoryFormerConfig.Tiny),
    ("MF-small", "Pythia-160M", MemoryFormerConfig.PaperSmall),
    ("MF-base", "Pythia-410M", MemoryFormerConfig.Base),
};

var flops = new Table().Title($"Per-block FLOPs at s = {sequenceLength} (one multiply-add = one FLOP, as in the paper)");
foreach (var column in new[] { "model", "d × L", "K, τ", "dense: FC", "dense: total", "MF: memory layers", "MF: total", "MF ÷ dense" })
    flops.AddColumn(new TableColumn(column).RightAligned());
foreach (var (name, baseline, c) in models)
{
    var mf = CostEstimator.Block(c, sequenceLength);
    var dense = CostEstimator.Block(c with { Kind = TransformerKind.Dense }, sequenceLength);
    flops.AddRow($"{name} vs {baseline}", $"{c.Width} × {c.Layers}", $"{c.ChunkCount}, {c.BitsPerChunk}",
        G(dense.Projections), G(dense.Total), G(mf.Projections), G(mf.Total), $"{mf.Total / dense.Total:P0}");
}
AnsiConsole.Write(flops);

var memory = new Table().Title("Parameters and table memory (whole model, vocabulary 50304, untied head)");
foreach (var column in new[] { "model", "MF parameters", "of which tables", "tables fp16", "tables fp32", "dense parameters" })
    memory.AddColumn(new TableColumn(column).RightAligned());
foreach (var (name, _, c) in models)
{
    long tables = c.Layers * CostEstimator.BlockTableParameters(c);
    memory.AddRow(name, M(CostEstimator.LanguageModelParameters(c)), M(tables), GB(CostEstimator.Bytes(tables, 2)),
        GB(CostEstimator.Bytes(tables, 4)), M(CostEstimator.LanguageModelParameters(c with { Kind = TransformerKind.Dense })));
}
AnsiConsole.Write(memory);
AnsiConsole.MarkupLine("[grey]The paper's MF-small total prints as 7.4 G because it adds its rounded 1.0 G of memory-layer FLOPs; the exact sum is 7.35 G.[/]");

static string G(double flops) => $"{flops / 1e9:F2} G";
static string M(long count) => $"{count / 1e6:F1} M";
static string GB(double bytes) => $"{bytes / 1e9:F2} GB";
