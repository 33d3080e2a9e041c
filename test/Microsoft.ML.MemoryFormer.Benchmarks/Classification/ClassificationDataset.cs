using Microsoft.ML.Data;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Classification;

/// <summary>A text classification set from ../shared/data/classification: fixed train and test splits with Text and Label columns;
/// for clinc150 also its in-scope validation split and its out-of-scope test queries, when present (<c>--out-of-scope</c>).</summary>
internal sealed record ClassificationDataset(string Name, IDataView Train, IDataView Test, IDataView? Validation = null, IDataView? OutOfScope = null)
{
    private sealed class Row
    {
        public string Text { get; set; } = "";
        public string Label { get; set; } = "";
    }

    /// <summary>The sets found under <paramref name="folder"/>, and a line for each one that is missing.</summary>
    public static (List<ClassificationDataset> Found, List<string> Missing) Load(MLContext ml, string folder, IReadOnlyCollection<string> names)
    {
        var found = new List<ClassificationDataset>();
        var missing = new List<string>();
        foreach (var name in names)
        {
            if (name.StartsWith("tsv:", StringComparison.Ordinal))
            {
                var path = name[4..];
                if (File.Exists(path))
                    found.Add(Tsv(ml, Path.GetFileNameWithoutExtension(path), path));
                else
                    missing.Add($"Skipped {name}: {Path.GetFullPath(path)} not found.");
                continue;
            }
            if (LongDocumentSets.Names.Contains(name))
            {
                var shared = Path.GetFullPath(Path.Combine(folder, ".."));
                if (LongDocumentSets.Files(name).Select(f => Path.Combine(shared, f)).FirstOrDefault(p => !File.Exists(p)) is { } file)
                    missing.Add($"Skipped {name}: {file} not found (developer data set, not part of the repository).");
                else
                    found.Add(Split(ml, name, LongDocumentSets.Rows(name, shared).Select(r => new Row { Text = r.Text, Label = r.Label }).ToArray()));
                continue;
            }
            var files = name switch
            {
                "banking77" => new[] { "banking77_train.csv", "banking77_test.csv" },
                "clinc150" => ["clinc150_train.tsv", "clinc150_test.tsv"],
                "sms_spam" => ["sms_spam.tsv"],
                "detox" => ["wikipedia_detox_250.tsv"],
                _ => throw new ArgumentException($"Unknown data set '{name}' (known: banking77, clinc150, sms_spam, detox, {string.Join(", ", LongDocumentSets.Names)})."),
            };
            var paths = files.Select(f => Path.Combine(folder, f)).ToArray();
            if (paths.FirstOrDefault(p => !File.Exists(p)) is { } absent)
            {
                missing.Add($"Skipped {name}: {absent} not found (developer data set, not part of the repository).");
                continue;
            }
            found.Add(name switch
            {
                "banking77" => new(name, Banking(ml, paths[0]), Banking(ml, paths[1])),
                "clinc150" => new(name, Clinc(ml, paths[0]), Clinc(ml, paths[1]), ClincIfPresent(ml, folder, "clinc150_val.tsv"),
                    ClincIfPresent(ml, folder, "clinc150_oos_test.tsv")),
                "detox" => Detox(ml, paths[0]),
                _ => Sms(ml, paths[0]),
            });
        }
        return (found, missing);
    }

    // header text,category; RFC 4180 quoting with line breaks inside quotes
    private static IDataView Banking(MLContext ml, string path) => ml.Data.LoadFromTextFile(path, new TextLoader.Options
    {
        Columns = [new TextLoader.Column("Text", DataKind.String, 0), new TextLoader.Column("Label", DataKind.String, 1)],
        Separators = [','], HasHeader = true, AllowQuoting = true, ReadMultilines = true,
    });

    // header Intent<TAB>Domain<TAB>Text, no quoting
    private static IDataView Clinc(MLContext ml, string path) => ml.Data.LoadFromTextFile(path, [
        new TextLoader.Column("Label", DataKind.String, 0), new TextLoader.Column("Text", DataKind.String, 2)],
        separatorChar: '\t', hasHeader: true, allowQuoting: false);

    private static IDataView? ClincIfPresent(MLContext ml, string folder, string file) =>
        File.Exists(Path.Combine(folder, file)) ? Clinc(ml, Path.Combine(folder, file)) : null;

    // no header: label<TAB>text; no fixed split upstream, so a seeded 80/20 split
    private static ClassificationDataset Sms(MLContext ml, string path) => Tsv(ml, "sms_spam", path);

    /// <summary>Any file of label&lt;TAB&gt;text lines (<c>--datasets tsv:PATH</c>, e.g. a held-out set of one's own), split as sms_spam.</summary>
    private static ClassificationDataset Tsv(MLContext ml, string name, string path)
    {
        var rows = File.ReadLines(path).Where(l => l.Length > 0).Select(l => l.Split('\t', 2))
            .Select((p, i) => p.Length == 2 ? new Row { Label = p[0], Text = p[1] }
                : throw new InvalidDataException($"{path}, line {i + 1}: expected label<TAB>text.")).ToArray();
        return Split(ml, name, rows);
    }

    // rows in file order → shuffled with Random(42), first 80 % train, rest test
    private static ClassificationDataset Split(MLContext ml, string name, Row[] rows)
    {
        var order = Enumerable.Range(0, rows.Length).ToArray();
        new Random(42).Shuffle(order);
        int cut = rows.Length * 4 / 5;
        return new(name, ml.Data.LoadFromEnumerable(order[..cut].Select(i => rows[i]).ToArray()),
            ml.Data.LoadFromEnumerable(order[cut..].Select(i => rows[i]).ToArray()));
    }

    // header Sentiment<TAB>SentimentText<TAB>LoggedIn (label 1 = toxic), 250 rows, no split upstream: a seeded split
    // stratified by label, 80 % of each class for training
    private static ClassificationDataset Detox(MLContext ml, string path)
    {
        var rows = File.ReadLines(path).Skip(1).Where(l => l.Length > 0).Select(l => l.Split('\t'))
            .Select(p => new Row { Label = p[0], Text = p[1].Trim() }).ToArray();
        var random = new Random(42);
        var train = new List<Row>();
        var test = new List<Row>();
        foreach (var group in rows.GroupBy(r => r.Label).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var members = group.ToArray();
            random.Shuffle(members);
            int cut = (int)Math.Round(members.Length * 0.8);
            train.AddRange(members[..cut]);
            test.AddRange(members[cut..]);
        }
        random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(train));   // no class-sorted training order
        return new("detox", ml.Data.LoadFromEnumerable(train), ml.Data.LoadFromEnumerable(test));
    }

    /// <summary>At most <paramref name="rows"/> training rows: a seeded (Random(7)) sample, in file order; the test split is kept whole.</summary>
    public ClassificationDataset WithTrainingRows(MLContext ml, int rows)
    {
        var all = ml.Data.CreateEnumerable<Row>(Train, reuseRowObject: false).ToArray();
        if (rows <= 0 || rows >= all.Length) return this;
        var order = Enumerable.Range(0, all.Length).ToArray();
        new Random(7).Shuffle(order);
        var kept = order[..rows];
        Array.Sort(kept);
        return this with { Train = ml.Data.LoadFromEnumerable(kept.Select(i => all[i]).ToArray()) };
    }
}
