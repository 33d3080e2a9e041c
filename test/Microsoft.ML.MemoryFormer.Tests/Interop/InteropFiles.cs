using System.Text.Json;
using Microsoft.ML.MemoryFormer.Models;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Tests.Interop;

/// <summary>The checked-in fixture of tools/interop/make_fixture.py and helpers shared by the interop tests.</summary>
internal static class InteropFiles
{
    public static string Fixtures => Path.Combine(AppContext.BaseDirectory, "Interop", "Fixtures");

    /// <summary>The save folder of the official checkpoint (holds 'latest').</summary>
    public static string OfficialFolder => Path.Combine(Fixtures, "official");

    /// <summary>The single-file checkpoint written by torch.save from the official code.</summary>
    public static string OfficialFile => Path.Combine(OfficialFolder, "global_step0", "mp_rank_00_model_states.pt");

    /// <summary>The fixed tokens [2, 12] and the official code's logits for them [2, 12, 64].</summary>
    public static (long[,] Tokens, float[] Logits) Expected()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures, "logits.json")));
        var rows = doc.RootElement.GetProperty("tokens").EnumerateArray().Select(r => r.EnumerateArray().Select(t => t.GetInt64()).ToArray()).ToArray();
        var tokens = new long[rows.Length, rows[0].Length];
        for (int i = 0; i < rows.Length; i++)
            for (int j = 0; j < rows[i].Length; j++) tokens[i, j] = rows[i][j];
        var logits = doc.RootElement.GetProperty("logits").EnumerateArray()
            .SelectMany(b => b.EnumerateArray()).SelectMany(t => t.EnumerateArray()).Select(v => (float)v.GetDouble()).ToArray();
        return (tokens, logits);
    }

    /// <summary>The model's logits for <paramref name="tokens"/>, flattened.</summary>
    public static float[] Logits(LanguageModel model, long[,] tokens)
    {
        model.eval();
        using var _ = torch.no_grad();
        using var input = torch.tensor(tokens);
        using var logits = model.call(input);
        return logits.data<float>().ToArray();
    }

    /// <summary>max |a − b| / max |b|.</summary>
    public static double RelativeError(float[] actual, float[] expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        double diff = 0, scale = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            diff = Math.Max(diff, Math.Abs(actual[i] - expected[i]));
            scale = Math.Max(scale, Math.Abs(expected[i]));
        }
        return diff / scale;
    }

    /// <summary>A fresh temporary folder, deleted by disposing the result.</summary>
    public static TempFolder NewFolder() => new();

    public sealed class TempFolder : IDisposable
    {
        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"mf-interop-{Guid.NewGuid():N}");

        public TempFolder() => Directory.CreateDirectory(Path);

        public void Dispose()
        {
            try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
        }
    }
}
