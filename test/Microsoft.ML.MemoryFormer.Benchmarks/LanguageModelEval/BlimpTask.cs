using System.Text.Json;

namespace Microsoft.ML.MemoryFormer.Benchmarks.LanguageModelEval;

/// <summary>One BLiMP paradigm (Warstadt et al. 2020): a JSON-lines file of minimal pairs with <c>sentence_good</c>
/// and <c>sentence_bad</c> fields, named after the file.</summary>
internal sealed record BlimpTask(string Name, IReadOnlyList<(string Good, string Bad)> Pairs)
{
    /// <summary>Reads the first <paramref name="maxPairs"/> pairs of every <c>*.jsonl</c> file in <paramref name="folder"/>, by name.</summary>
    public static IReadOnlyList<BlimpTask> LoadAll(string folder, int maxPairs) =>
        Directory.GetFiles(folder, "*.jsonl").Order(StringComparer.Ordinal).Select(path => new BlimpTask(
            Path.GetFileNameWithoutExtension(path),
            File.ReadLines(path).Where(line => line.Length > 0).Take(maxPairs).Select(Parse).ToArray())).ToArray();

    private static (string Good, string Bad) Parse(string line)
    {
        using var json = JsonDocument.Parse(line);
        return (json.RootElement.GetProperty("sentence_good").GetString() ?? "", json.RootElement.GetProperty("sentence_bad").GetString() ?? "");
    }
}
