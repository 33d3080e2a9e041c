using System.Text.RegularExpressions;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Classification;

/// <summary>
/// <c>classification --outliers general</c>: general-text sentences for a classifier's <c>OutlierSet</c>, from the developer data
/// (WikiText-2 validation and test, Moby Dick): each paragraph cut into sentences, those of 4–16 words kept, lower-cased,
/// WikiText's tokenization marks undone, shuffled with a fixed seed. Text of no intent, as a user would take from any corpus.
/// </summary>
internal static partial class OutlierSentences
{
    /// <summary>The sentences (8,174 from the shared files), or the lines of <paramref name="source"/> when it names a file.</summary>
    public static string[] Load(string source, string sharedFolder)
    {
        if (source != "general")
            return File.Exists(source) ? File.ReadLines(source).Where(l => l.Length > 0).ToArray()
                : throw new FileNotFoundException($"--outliers: {Path.GetFullPath(source)} not found (give 'general' or a file with one text per line).");
        var wiki = new[] { "lm-eval/wikitext2_valid.txt", "lm-eval/wikitext2_test.txt" }.Select(f => Path.Combine(sharedFolder, f)).ToArray();
        var moby = Path.Combine(sharedFolder, "text/moby_dick.txt");
        if (wiki.Append(moby).FirstOrDefault(p => !File.Exists(p)) is { } missing)
            throw new FileNotFoundException($"--outliers general needs {missing} (developer data set, not part of the repository).");
        var sentences = new List<string>();
        foreach (var line in wiki.SelectMany(File.ReadLines).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('=')))
        {
            var clean = line.Replace(" @-@ ", "-").Replace(" @,@ ", ",").Replace(" @.@ ", ".").Replace("<unk>", "");
            foreach (var sentence in WikiSentenceEnd().Split(clean))
                if (Kept(sentence) is { } kept)
                    sentences.Add(Closed().Replace(Opened().Replace(kept, "("), "$1"));
        }
        foreach (var sentence in ProseSentenceEnd().Split(Whitespace().Replace(File.ReadAllText(moby), " ")))
            if (Kept(sentence) is { } kept)
                sentences.Add(kept);
        var shuffled = sentences.ToArray();
        new Random(1).Shuffle(shuffled);
        return shuffled;
    }

    /// <summary>The sentence's words joined by single spaces and lower-cased when it has 4–16 of them, else null.</summary>
    private static string? Kept(string sentence)
    {
        var words = sentence.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return words.Length is >= 4 and <= 16 ? string.Join(' ', words).ToLowerInvariant() : null;
    }

    [GeneratedRegex(@" [.?!] ")]
    private static partial Regex WikiSentenceEnd();

    [GeneratedRegex(@"(?<=[.?!])\s+")]
    private static partial Regex ProseSentenceEnd();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    [GeneratedRegex(@" ([,;:'\)])")]
    private static partial Regex Closed();

    [GeneratedRegex(@"\( ")]
    private static partial Regex Opened();
}
