using System.Globalization;
using System.Text;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Diagnostics;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.MLNet;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.LanguageModelEval;

/// <summary>
/// <c>--bucket-usage</c> of <c>bench lm</c> and <c>bench lm-tokens</c>: after training, the trained MemoryFormer reads a
/// held-out text with a <see cref="BucketUsageRecorder"/> attached, and each Memory Layer gets one row: how many of its
/// table rows the text never selects, how many it selects rarely (under a tenth of a uniform table's share), the mean
/// normalised entropy of its tables, how balanced the sign bits of its hash input are (<see cref="Bits"/>), and the mean
/// L2 norm of its rows by that usage, over the norm a row starts with (init std · √h; docs/model-spec.md, "Memory Layer"),
/// which shows whether weight decay shrank the rows the text uses little.
/// </summary>
internal static class BucketHealth
{
    /// <summary>A markdown table of <paramref name="model"/>'s bucket health on <paramref name="text"/> (empty for dense).</summary>
    public static string Markdown(MemoryFormerLanguageModelTransformer model, IDataView text, string textName)
    {
        var usage = model.MeasureBucketUsage(text);
        if (usage.Count == 0) return "";
        var config = model.Model.Config;
        var modules = model.Model.named_modules().ToDictionary(m => m.name, m => m.module);
        var table = new StringBuilder();
        long tokens = usage[0].TotalHits / usage[0].TableCount;
        table.AppendLine(CultureInfo.InvariantCulture, $"Bucket usage on {textName} ({tokens:N0} tokens; rare = under a tenth of a uniform table's hits per row; entropy = the tables' mean normalised entropy; bits alone = the same if the τ bits were independent with their measured frequencies; norm = mean row L2 norm / init std·√h):");
        table.AppendLine();
        table.AppendLine("| layer | rows per table | hits per row (uniform) | never hit | rare | entropy | bits alone | mean \\|P(bit) − ½\\| | norm: never | norm: rare | norm: the rest |");
        table.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var u in usage)
        {
            var module = modules[u.Layer];
            var layer = module as MemoryLayer ?? ((MemoryQkv)module).Value;                 // Q/K/V: the value table
            double uniform = (double)u.TotalHits / u.Counts.Count;
            var norms = RowNorms(layer, module is MemoryQkv ? config.EffectiveQkvInitStd : config.TableInitStd);
            double Share(Func<long, bool> rows) => (double)u.Counts.Count(rows) / u.Counts.Count;
            string Norm(Func<long, bool> rows) => u.Counts.Select((c, r) => (c, r)).Where(p => rows(p.c)).Select(p => norms[p.r]).DefaultIfEmpty(double.NaN)
                .Average().ToString("F3", CultureInfo.InvariantCulture);
            bool Never(long c) => c == 0;
            bool Rare(long c) => c > 0 && c < uniform / 10;
            table.AppendLine(CultureInfo.InvariantCulture,
                $"| {u.Layer} | {u.RowsPerTable} | {uniform:F1} | {Share(Never):P1} | {Share(Rare):P1} | {u.MeanNormalisedEntropy():F3} | " +
                $"{Bits(u).Entropy:F3} | {Bits(u).Bias:F3} | " +
                $"{Norm(Never)} | {Norm(Rare)} | {Norm(c => c >= uniform / 10)} |");
        }
        return table.ToString();
    }

    /// <summary>
    /// The bits' side of a layer's usage, averaged over its tables: each bit's frequency pᵢ of being 1 (bit i of a row's
    /// code, first element most significant; docs/model-spec.md, "Sign hash"), the entropy Σ H(pᵢ) / τ the codes would
    /// have if the bits were independent (1 = every bit balanced), and the mean |pᵢ − ½|. A joint entropy close to it
    /// means biased bits (channels whose sign rarely changes); one well below it, correlated bits.
    /// </summary>
    private static (double Entropy, double Bias) Bits(BucketUsage u)
    {
        int tau = (int)Math.Round(Math.Log2(u.RowsPerTable));
        double entropy = 0, bias = 0;
        for (int k = 0; k < u.TableCount; k++)
        {
            var counts = u.TableCounts(k);
            double total = 0;
            var ones = new double[tau];
            for (int r = 0; r < counts.Length; r++)
            {
                total += counts[r];
                for (int i = 0; i < tau; i++)
                    if (((r >> (tau - 1 - i)) & 1) == 1) ones[i] += counts[r];
            }
            foreach (double one in ones)
            {
                double p = total > 0 ? one / total : 0.5;
                entropy += (p is > 0 and < 1 ? -(p * Math.Log2(p) + (1 - p) * Math.Log2(1 - p)) : 0) / tau;
                bias += Math.Abs(p - 0.5) / tau;
            }
        }
        return (entropy / u.TableCount, bias / u.TableCount);
    }

    /// <summary>Each row's L2 norm over <paramref name="initStd"/>·√h, the expected norm of a freshly initialised row.</summary>
    private static double[] RowNorms(MemoryLayer layer, double initStd)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var norms = layer.Table.detach().norm(1).to(ScalarType.Float64).data<double>().ToArray();   // [K·2^τ]
        double start = initStd * Math.Sqrt(layer.OutputWidth);
        return [.. norms.Select(n => n / start)];
    }
}
