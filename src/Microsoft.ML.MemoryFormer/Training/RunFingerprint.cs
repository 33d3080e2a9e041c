using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// What identifies a training run for its checkpoint: named parts (architecture, training options, data, …), each a
/// short text or the SHA-256 of a long one. A checkpoint resumes only a run with the same parts; otherwise
/// <see cref="Difference"/> names the first part that differs.
/// </summary>
internal sealed class RunFingerprint
{
    private const int ShownLength = 160;
    private readonly SortedDictionary<string, string> parts = new(StringComparer.Ordinal);

    /// <summary>The parts, by name.</summary>
    public IReadOnlyDictionary<string, string> Parts => parts;

    /// <summary>Adds part <paramref name="name"/>; a value longer than a line is kept as its hash.</summary>
    public RunFingerprint With(string name, string value)
    {
        parts[name] = value.Length <= ShownLength ? value : Hash(Encoding.UTF8.GetBytes(value));
        return this;
    }

    /// <summary>Adds one part "<paramref name="prefix"/>.Property" per property of the JSON object <paramref name="json"/>.</summary>
    public RunFingerprint WithProperties(string prefix, string json)
    {
        using var document = JsonDocument.Parse(json);
        foreach (var property in document.RootElement.EnumerateObject())
            With($"{prefix}.{property.Name}", property.Value.GetRawText());
        return this;
    }

    /// <summary>Adds part <paramref name="name"/> as the hash of <paramref name="values"/>' bytes.</summary>
    public RunFingerprint WithData<T>(string name, ReadOnlySpan<T> values) where T : unmanaged
    {
        parts[name] = Hash(MemoryMarshal.AsBytes(values));
        return this;
    }

    /// <summary>Adds part <paramref name="name"/> as the hash of <paramref name="texts"/> (length-prefixed, null ≠ "").</summary>
    public RunFingerprint WithTexts(string name, IEnumerable<string?> texts)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var text in texts)
        {
            var bytes = text is null ? [] : Encoding.UTF8.GetBytes(text);
            hash.AppendData(BitConverter.GetBytes(text is null ? -1 : bytes.Length));
            hash.AppendData(bytes);
        }
        parts[name] = "sha256:" + Convert.ToHexString(hash.GetHashAndReset());
        return this;
    }

    /// <summary>How this run differs from <paramref name="saved"/>'s (the checkpoint's), or null when they are the same run.</summary>
    public string? Difference(RunFingerprint saved)
    {
        if (FirstDifference(saved) is not { } name) return null;
        saved.parts.TryGetValue(name, out var before);
        parts.TryGetValue(name, out var now);
        bool shown = before is not null && now is not null && !before.StartsWith("sha256:", StringComparison.Ordinal);
        return shown ? $"its {name} differs (checkpoint: {before}; this run: {now})" : $"its {name} differs";
    }

    /// <summary>The name of the first part (in name order) that differs from <paramref name="saved"/>'s, or null.</summary>
    public string? FirstDifference(RunFingerprint saved)
    {
        foreach (var name in parts.Keys.Union(saved.parts.Keys).Order(StringComparer.Ordinal))
        {
            saved.parts.TryGetValue(name, out var before);
            parts.TryGetValue(name, out var now);
            if (before != now) return name;
        }
        return null;
    }

    /// <summary>The parts as JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(parts);

    /// <summary>Reads parts written by <see cref="ToJson"/>.</summary>
    public static RunFingerprint FromJson(string json)
    {
        var fingerprint = new RunFingerprint();
        foreach (var (name, value) in JsonSerializer.Deserialize<Dictionary<string, string>>(json) ?? [])
            fingerprint.parts[name] = value;
        return fingerprint;
    }

    private static string Hash(ReadOnlySpan<byte> bytes) => "sha256:" + Convert.ToHexString(SHA256.HashData(bytes));
}
