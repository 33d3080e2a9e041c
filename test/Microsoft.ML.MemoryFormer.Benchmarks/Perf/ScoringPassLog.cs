using System.Diagnostics;
using System.Globalization;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf scoring</c>'s record of every timed Transform pass: which path, in which part of the run (the rotated rounds, the
/// profiled pass, the adjacent pairs), its wall and process CPU milliseconds and the GCs it saw. The table
/// <c>scoring-pass-log</c> compares the reference's and the default's passes between the rounds and the pairs, where the two
/// measures of the target disagree (docs/benchmarks.md, "Scoring, eleventh round").
/// </summary>
internal static class ScoringPassLog
{
    private readonly record struct Pass(string Rows, string Part, string Path, int Index, double WallMs, double CpuMs, double SystemMs, int Gen0, int Gen2);

    private static readonly List<Pass> Passes = [];
    private static readonly Process Self = Process.GetCurrentProcess();

    /// <summary>The path the next passes run (set with the path's switches).</summary>
    public static string Path { get; set; } = "";

    /// <summary>The part of the run the next passes belong to.</summary>
    public static string Part { get; set; } = "";

    /// <summary>The row kind of the next passes.</summary>
    public static string Rows { get; set; } = "";

    /// <summary>Times <paramref name="pass"/> (wall and process CPU) and records it; returns its wall milliseconds.</summary>
    public static double Time(Func<double> pass)
    {
        Self.Refresh();
        var (cpu, system) = (Self.TotalProcessorTime, Self.PrivilegedProcessorTime);
        int gen0 = GC.CollectionCount(0), gen2 = GC.CollectionCount(2);
        double wall = pass();
        Self.Refresh();
        Passes.Add(new Pass(Rows, Part, Path, Passes.Count, wall, (Self.TotalProcessorTime - cpu).TotalMilliseconds,
            (Self.PrivilegedProcessorTime - system).TotalMilliseconds, GC.CollectionCount(0) - gen0, GC.CollectionCount(2) - gen2));
        return wall;
    }

    /// <summary>For the reference and <paramref name="measured"/> on each row kind: their passes in the rounds and in the first
    /// pairs (both halves), wall and CPU medians, and the ratios each part gives.</summary>
    public static PerfTable Table(string reference, string measured)
    {
        var table = new PerfTable("scoring-pass-log", "Every timed pass of the reference (A) and the default (B): the rounds against the adjacent pairs, wall and process CPU",
            "rows", "part", "A passes", "A wall ms (median; quartiles)", "A CPU ms", "B passes", "B wall ms (median; quartiles)", "B CPU ms", "A ÷ B wall", "A ÷ B CPU", "gen-0 GCs a pass A / B");
        foreach (var rows in Passes.Select(p => p.Rows).Distinct())
        {
            foreach (var part in new[] { "rounds", "pairs" })
            {
                int skip = part == "pairs" ? 1 : 0;                              // the pairs' untimed first pair (warm-up rounds are logged apart)
                var a = Passes.Where(p => p.Rows == rows && p.Part == part && p.Path == reference).Skip(skip).ToArray();
                var b = Passes.Where(p => p.Rows == rows && p.Part == part && p.Path == measured).Skip(skip).ToArray();
                if (a.Length == 0 || b.Length == 0) continue;
                Add(table, rows, part, a, b);
                if (part == "pairs" && a.Length >= 8)
                {
                    Add(table, rows, "pairs, first half", a[..(a.Length / 2)], b[..(b.Length / 2)]);
                    Add(table, rows, "pairs, second half", a[(a.Length / 2)..], b[(b.Length / 2)..]);
                }
            }
        }
        table.AddNote("rounds: the rotated rounds of the main table (every path once a round; the --warmup-rounds left out); pairs: the reference ÷ default pairs of scoring-ratio (the untimed first pair left out), in the order they ran; scoring-passes.csv lists every pass");
        return table;
    }

    /// <summary>Writes every recorded pass, in order, as <c>scoring-passes.csv</c> into <paramref name="folder"/>.</summary>
    public static void WriteCsv(string folder)
    {
        Directory.CreateDirectory(folder);
        var lines = Passes.Select(p => string.Create(CultureInfo.InvariantCulture,
            $"{p.Index},{p.Rows},{p.Part},\"{p.Path.Replace("\"", "'", StringComparison.Ordinal)}\",{p.WallMs:F2},{p.CpuMs:F2},{p.SystemMs:F2},{p.Gen0},{p.Gen2}"));
        File.WriteAllLines(System.IO.Path.Combine(folder, "scoring-passes.csv"), ["index,rows,part,path,wall_ms,cpu_ms,system_ms,gen0,gen2", .. lines]);
    }

    private static void Add(PerfTable table, string rows, string part, Pass[] a, Pass[] b)
    {
        string Quart(Pass[] p)
        {
            var s = p.Select(x => x.WallMs).Order().ToArray();
            return FormattableString.Invariant($"{Timing.Median(s):F1}; {s[(s.Length - 1) / 4]:F1}–{s[(3 * (s.Length - 1) + 3) / 4]:F1}");
        }
        double Med(Pass[] p, Func<Pass, double> f) => Timing.Median(p.Select(f).ToArray());
        table.AddRow(rows, part, a.Length, Quart(a), Med(a, p => p.CpuMs), b.Length, Quart(b), Med(b, p => p.CpuMs),
            FormattableString.Invariant($"{Med(a, p => p.WallMs) / Med(b, p => p.WallMs):F2}×"),
            FormattableString.Invariant($"{Med(a, p => p.CpuMs) / Med(b, p => p.CpuMs):F2}×"),
            string.Create(CultureInfo.InvariantCulture, $"{a.Average(p => p.Gen0):F1} / {b.Average(p => p.Gen0):F1}"));
    }
}
