using Microsoft.ML.MemoryFormer.Benchmarks.Classification;

namespace Microsoft.ML.MemoryFormer.Benchmarks.LanguageModelEval;

/// <summary>
/// What <c>bench pretrain</c> trains and scores on: the general English text (<c>text</c>: WikiText-2's validation split,
/// Moby Dick, Tiny Shakespeare, one document each) and, for task-adaptive pretraining, the texts of a classification
/// set's <b>training</b> split (one document per row, labels never read; the test split is only ever scored).
/// </summary>
internal static class PretrainCorpus
{
    /// <summary>The name of the general English corpus in <c>--corpus</c>.</summary>
    public const string General = "text";

    /// <summary>The training documents of each named part (<see cref="General"/> or a classification set), in order;
    /// null with the missing file's path when one is absent.</summary>
    public static (List<string>? Documents, string? Missing) Training(IEnumerable<string> names)
    {
        var documents = new List<string>();
        foreach (var name in names)
        {
            if (name == General)
            {
                var paths = PretrainCommand.Corpus.Select(BenchmarkPaths.SharedData).ToArray();
                if (paths.FirstOrDefault(p => !File.Exists(p)) is { } absent) return (null, absent);
                documents.AddRange(paths.Select(File.ReadAllText));
                continue;
            }
            var (set, missing) = Set(name);
            if (set is null) return (null, missing);
            documents.AddRange(Texts(set.Train));
        }
        return (documents, null);
    }

    /// <summary>The test-split texts of a classification set (scored only), or null with why.</summary>
    public static (List<string>? Texts, string? Missing) Test(string name)
    {
        var (set, missing) = Set(name);
        return set is null ? (null, missing) : (Texts(set.Test), null);
    }

    private static (ClassificationDataset? Set, string? Missing) Set(string name)
    {
        var (found, missing) = ClassificationDataset.Load(new MLContext(1), BenchmarkPaths.SharedData("classification"), [name]);
        return found.Count == 1 ? (found[0], null) : (null, missing.FirstOrDefault() ?? name);
    }

    private static List<string> Texts(IDataView data)
    {
        var texts = new List<string>();
        using var cursor = data.GetRowCursor([data.Schema["Text"]]);
        var getter = cursor.GetGetter<ReadOnlyMemory<char>>(data.Schema["Text"]);
        ReadOnlyMemory<char> value = default;
        while (cursor.MoveNext())
        {
            getter(ref value);
            if (!value.IsEmpty) texts.Add(value.ToString());
        }
        return texts;
    }
}
