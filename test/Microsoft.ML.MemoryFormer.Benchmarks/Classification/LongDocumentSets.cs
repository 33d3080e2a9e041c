using System.Text.RegularExpressions;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Classification;

/// <summary>
/// Long-document proxy sets built from the developer text under <c>../shared/data</c>: multi-sentence paragraphs of
/// 300–3,000 characters in 15 classes, where a bag of words is strong. Deterministic: the rows are read in file order,
/// shuffled with <c>new Random(42)</c> and cut 80/20 into train and test (as sms_spam).
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><b>wikitext15</b>: WikiText-2 validation then test (<c>lm-eval/wikitext2_valid.txt</c>, <c>wikitext2_test.txt</c>).
/// Articles are numbered in file order at each top-level heading <c>= Title =</c>; every other non-blank, non-heading
/// line is a paragraph, with the <c>@-@</c>, <c>@,@</c>, <c>@.@</c> splits joined; label = article number mod 15 (so
/// each class is about 8 unrelated articles).</item>
/// <item><b>moby15</b>: Moby Dick chapters 1–135 (<c>text/moby_dick.txt</c>); paragraphs are blank-line separated
/// blocks with their lines joined by single spaces; label = chapter range of 9 chapters (1–9, 10–18, …, 127–135).</item>
/// <item><b>mixed15</b>: 5 Moby Dick ranges of 27 chapters, 5 WikiText-2 groups (article number mod 5) and 5 Tiny
/// Shakespeare fifths (<c>text/tinyshakespeare.txt</c>: consecutive speeches joined with spaces until the passage
/// reaches 300 characters; label = which fifth of the file's characters the passage starts in).</item>
/// </list>
/// Only paragraphs of 300–3,000 characters (after trimming) are kept.
/// </remarks>
internal static class LongDocumentSets
{
    private const int Shortest = 300, Longest = 3000;

    /// <summary>The proxy names accepted by <c>--datasets</c>.</summary>
    public static readonly string[] Names = ["wikitext15", "moby15", "mixed15"];

    /// <summary>Files each proxy reads, relative to the shared data folder.</summary>
    public static string[] Files(string name) => name switch
    {
        "wikitext15" => ["lm-eval/wikitext2_valid.txt", "lm-eval/wikitext2_test.txt"],
        "moby15" => ["text/moby_dick.txt"],
        _ => ["lm-eval/wikitext2_valid.txt", "lm-eval/wikitext2_test.txt", "text/moby_dick.txt", "text/tinyshakespeare.txt"],
    };

    /// <summary>All rows of the proxy (text, label) in file order, before the split.</summary>
    /// <param name="name">One of <see cref="Names"/>.</param>
    /// <param name="dataFolder">The shared data folder (holding <c>lm-eval</c> and <c>text</c>).</param>
    public static List<(string Text, string Label)> Rows(string name, string dataFolder)
    {
        string P(string file) => Path.Combine(dataFolder, file);
        var rows = name switch
        {
            "wikitext15" => WikiText(P("lm-eval/wikitext2_valid.txt"), P("lm-eval/wikitext2_test.txt"))
                .Select(r => (r.Text, $"wiki{r.Article % 15:D2}")),
            "moby15" => Moby(P("text/moby_dick.txt")).Select(r => (r.Text, $"moby{(r.Chapter - 1) / 9:D2}")),
            "mixed15" => Moby(P("text/moby_dick.txt")).Select(r => (r.Text, $"moby{(r.Chapter - 1) / 27}"))
                .Concat(WikiText(P("lm-eval/wikitext2_valid.txt"), P("lm-eval/wikitext2_test.txt")).Select(r => (r.Text, $"wiki{r.Article % 5}")))
                .Concat(Shakespeare(P("text/tinyshakespeare.txt")).Select(r => (r.Text, $"shakespeare{r.Fifth}"))),
            _ => throw new ArgumentException($"Unknown long-document set '{name}' (known: {string.Join(", ", Names)})."),
        };
        return rows.Where(r => r.Text.Length is >= Shortest and <= Longest).ToList();
    }

    private static IEnumerable<(string Text, int Article)> WikiText(params string[] paths)
    {
        int article = -1;
        foreach (var line in paths.SelectMany(File.ReadLines))
        {
            var text = line.Trim();
            if (text.Length == 0) continue;
            if (text.StartsWith("= ", StringComparison.Ordinal) && !text.StartsWith("= =", StringComparison.Ordinal)) { article++; continue; }
            if (text.StartsWith('=')) continue;                                    // section headings
            yield return (text.Replace(" @-@ ", "-").Replace(" @,@ ", ",").Replace(" @.@ ", "."), Math.Max(article, 0));
        }
    }

    private static IEnumerable<(string Text, int Chapter)> Moby(string path)
    {
        int chapter = 1;
        foreach (var block in Paragraphs(File.ReadAllText(path)))
        {
            var heading = Regex.Match(block, @"^CHAPTER (\d+)\.");
            if (heading.Success) { chapter = int.Parse(heading.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture); continue; }
            yield return (block, chapter);
        }
    }

    private static IEnumerable<(string Text, int Fifth)> Shakespeare(string path)
    {
        var text = File.ReadAllText(path);
        int offset = 0, start = 0;
        var passage = new List<string>();
        foreach (var speech in text.Split("\n\n"))
        {
            if (passage.Count == 0) start = offset;
            offset += speech.Length + 2;
            passage.Add(string.Join(' ', speech.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)));
            var joined = string.Join(' ', passage);
            if (joined.Length < Shortest) continue;
            passage.Clear();
            yield return (joined, (int)(5L * start / text.Length));
        }
    }

    private static IEnumerable<string> Paragraphs(string text) =>
        Regex.Split(text, @"\n\s*\n").Select(p => string.Join(' ', p.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)))
            .Where(p => p.Length > 0);
}
