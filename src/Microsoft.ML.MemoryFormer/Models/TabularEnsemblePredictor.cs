using System.Text.Json;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Persistence;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// One or more <see cref="TabularPredictor"/>s of the same task and features that predict together, independent of
/// ML.NET: a deep ensemble (Lakshminarayanan et al. 2017) of models that differ only in their seed. Regression returns
/// the members' mean value; classification the log of the members' mean class probabilities. One member behaves and
/// saves exactly as the single model it holds.
/// </summary>
/// <remarks>Archive layout: one member writes the single model's entries (<c>config.json</c>, <c>tabular.json</c>,
/// weights), so files saved before ensembles load as one member. Several write <see cref="Entry"/> (format version and
/// member count) and each member's entries under <c>member_{i}.</c>.</remarks>
internal sealed class TabularEnsemblePredictor : IDisposable
{
    private readonly TabularPredictor[] members;

    /// <param name="members">The members (at least one; same feature column, feature count and label); owned from here on.</param>
    public TabularEnsemblePredictor(IReadOnlyList<TabularPredictor> members)
    {
        ArgumentNullException.ThrowIfNull(members);
        if (members.Count < 1) throw new ArgumentException("An ensemble needs at least one member.", nameof(members));
        var first = members[0].Info;
        if (members.Any(m => m.Info.FeatureColumnName != first.FeatureColumnName || m.Info.InputCount != first.InputCount
            || m.Info.OutputCount != first.OutputCount || m.Info.Label.Kind != first.Label.Kind))
            throw new ArgumentException("Ensemble members must read the same feature column and slots and predict the same label.", nameof(members));
        this.members = [.. members];
    }

    /// <summary>The archive entry that marks an ensemble of several members.</summary>
    public const string Entry = "ensemble.json";

    /// <summary>The ensemble layout this code writes and reads.</summary>
    public const int CurrentFormatVersion = 1;

    /// <summary>The members, in seed order.</summary>
    public IReadOnlyList<TabularPredictor> Members => members;

    /// <summary>The first member's feature column, label, standardisation and output count (the column, label and counts
    /// are every member's; the statistics are the first member's).</summary>
    public TabularModelInfo Info => members[0].Info;

    /// <summary>The architecture of every member.</summary>
    public MemoryFormerConfig Config => members[0].Config;

    /// <summary>
    /// Per row, the members' mean value in label units (regression) or the log of their mean class probabilities
    /// (classification) of <paramref name="features"/> [n·F] (raw, row-major; may be modified).
    /// </summary>
    public float[][] Forward(float[] features, int rows)
    {
        DisposedModel.ThrowIf(disposed, "MemoryFormer tabular model");
        if (members.Length == 1) return members[0].Forward(features, rows);
        bool regression = Info.Label.Kind == PredictionKind.Regression;
        var sums = new double[rows][];
        for (int r = 0; r < rows; r++) sums[r] = new double[Info.OutputCount];
        foreach (var member in members)
        {
            var outputs = member.Forward((float[])features.Clone(), rows);      // each member standardises with its own statistics
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < outputs[r].Length; c++)
                    sums[r][c] += regression ? outputs[r][c] : Math.Exp(outputs[r][c]);
        }
        return sums.Select(row => row.Select(s => s / members.Length).Select(m => (float)(regression ? m : Math.Log(m))).ToArray()).ToArray();
    }

    /// <summary>The ensemble as archive entries (see the remarks for the layout).</summary>
    public ModelArchive ToArchive()
    {
        if (members.Length == 1) return members[0].ToArchive();
        var archive = new ModelArchive().SetText(Entry, JsonSerializer.Serialize(new Layout(CurrentFormatVersion, members.Length)));
        for (int i = 0; i < members.Length; i++) archive.SetAll(MemberPrefix(i), members[i].ToArchive());
        return archive;
    }

    /// <summary>Rebuilds an ensemble (or a single model, saved with or without ensembles) written by <see cref="ToArchive"/>.</summary>
    /// <exception cref="InvalidDataException">The entries are damaged, of an unknown layout, or do not agree with each other.</exception>
    public static TabularEnsemblePredictor FromArchive(ModelArchive archive, Device device)
    {
        if (!archive.Contains(Entry)) return new([TabularPredictor.FromArchive(archive, device)]);
        var layout = archive.GetJson<Layout>(Entry);
        if (layout.FormatVersion != CurrentFormatVersion)
            throw new InvalidDataException($"The model's '{Entry}' has layout version {layout.FormatVersion}; this library reads " +
                $"version {CurrentFormatVersion}. Load it with the library version that saved it.");
        if (layout.Members is < 2 or > MaxMembers)
            throw new InvalidDataException($"The model's '{Entry}' declares {layout.Members} members; an ensemble has 2 to {MaxMembers}.");
        var loaded = new List<TabularPredictor>();
        try
        {
            for (int i = 0; i < layout.Members; i++)
            {
                try
                {
                    loaded.Add(TabularPredictor.FromArchive(archive.Part(MemberPrefix(i)), device));
                }
                catch (InvalidDataException e)
                {
                    throw new InvalidDataException($"The model's ensemble member {i} (entries '{MemberPrefix(i)}*'): {e.Message}", e);
                }
            }
            return new TabularEnsemblePredictor(loaded);
        }
        catch (ArgumentException e)
        {
            loaded.ForEach(m => m.Dispose());
            throw new InvalidDataException($"The model's ensemble members do not agree: {e.Message}", e);
        }
        catch
        {
            loaded.ForEach(m => m.Dispose());
            throw;
        }
    }

    /// <summary>Most members a saved ensemble may declare (the tabular trainer's MaxEnsembleSize; a bound against hostile files).</summary>
    internal const int MaxMembers = 16;

    private static string MemberPrefix(int member) => $"member_{member}.";

    /// <summary>Frees every member's tensors.</summary>
    public void Dispose()
    {
        disposed = true;
        foreach (var member in members) member.Dispose();
    }

    private bool disposed;

    private sealed record Layout(int FormatVersion, int Members);
}
