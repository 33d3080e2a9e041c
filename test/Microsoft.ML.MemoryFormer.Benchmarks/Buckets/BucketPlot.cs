using Microsoft.ML.MemoryFormer.Diagnostics;
using ScottPlot;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Buckets;

/// <summary>
/// Draws bucket usage in the style of the paper's Fig. 4: for the first block, hits per bucket of the first and of the
/// last table of Q/K/V (one shared hash), of ML₁ and of ML₂ of the Memory Block, six panels in a 2 × 3 grid.
/// </summary>
internal static class BucketPlot
{
    public static void Write(IReadOnlyList<BucketUsage> usage, string path)
    {
        var firstBlock = usage.Take(3).ToArray();                                 // qkv, ffn.expand, ffn.project of block 1
        var multiplot = new ScottPlot.Multiplot();
        multiplot.AddPlots(2 * firstBlock.Length);
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Grid(2, firstBlock.Length);
        for (int c = 0; c < firstBlock.Length; c++)
        {
            var u = firstBlock[c];
            for (int r = 0; r < 2; r++)
            {
                int table = r == 0 ? 0 : u.TableCount - 1;
                var hits = u.TableCounts(table).ToArray().Select(h => (double)h).ToArray();
                var plot = multiplot.GetPlot(r * firstBlock.Length + c);
                plot.Add.Bars(hits);
                plot.Title($"{Short(u.Layer)}, table {table + 1}/{u.TableCount}: entropy {u.NormalisedEntropyOf(table):F3}, never hit {u.NeverHitFractionOf(table):P0}", size: 11);
                plot.XLabel("bucket");
                plot.YLabel("hits");
            }
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        multiplot.SavePng(path, 1500, 800);
    }

    private static string Short(string layer) => layer.EndsWith("qkv", StringComparison.Ordinal) ? "Q/K/V"
        : layer.EndsWith("expand", StringComparison.Ordinal) ? "Memory Block ML1"
        : layer.EndsWith("project", StringComparison.Ordinal) ? "Memory Block ML2" : layer;
}
