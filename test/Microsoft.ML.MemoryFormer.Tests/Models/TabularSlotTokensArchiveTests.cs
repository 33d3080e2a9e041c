using System.Text.RegularExpressions;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Persistence;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Models;

public class TabularSlotTokensArchiveTests
{
    /// <summary>Runs <paramref name="test"/> on a 4-slot binary model's archive with its <c>tabular.json</c> rewritten by
    /// <paramref name="edit"/> after a round trip through a stream.</summary>
    private static void WithArchive(int[]? slotTokens, Func<string, string> edit, Action<ModelArchive> test)
    {
        var config = TabularPresets.Small with { Width = 16, Layers = 1, Heads = 2 };
        var info = new TabularModelInfo("Features", new LabelColumn("Label", PredictionKind.BinaryClassification, 2, null),
            new FeatureScaler([0f, 0f, 0f, 0f], [1f, 1f, 1f, 1f]), 0, 1, SlotTokens: slotTokens);
        using var predictor = new TabularPredictor(new TabularModel(config, 4, 2, slotTokens: slotTokens), info, CPU);
        var stream = new MemoryStream();
        using (var written = predictor.ToArchive()) written.WriteTo(stream);
        stream.Position = 0;
        using var archive = ModelArchive.ReadFrom(stream);
        test(archive.SetText(TabularModelInfo.Entry, edit(archive.GetText(TabularModelInfo.Entry))));
    }

    [Fact]
    public void A_model_saved_before_slot_groups_loads_with_one_token_per_slot()
    {
        WithArchive(null, json => Regex.Replace(json, ",?\\s*\"SlotTokens\":\\s*null", ""), archive =>
        {
            Assert.DoesNotContain("SlotTokens", archive.GetText(TabularModelInfo.Entry), StringComparison.Ordinal);
            using var loaded = TabularPredictor.FromArchive(archive, CPU);
            Assert.Null(loaded.Info.SlotTokens);
            Assert.Equal(5, loaded.Config.ContextLength);
        });
    }

    [Fact]
    public void A_grouped_model_loads_with_its_groups_and_a_damaged_grouping_is_refused()
    {
        WithArchive([0, 1, 1, 1], json => json, archive =>
        {
            using var good = TabularPredictor.FromArchive(archive, CPU);
            Assert.Equal([0, 1, 1, 1], good.Info.SlotTokens!);
            Assert.Equal(3, good.Config.ContextLength);
        });
        WithArchive([0, 1, 1, 1], json => Regex.Replace(json, "\"SlotTokens\":\\s*\\[[^\\]]*\\]", "\"SlotTokens\":[0,2,2,2]"), damaged =>
        {
            Assert.Contains("[0,2,2,2]", damaged.GetText(TabularModelInfo.Entry), StringComparison.Ordinal);
            var e = Assert.Throws<InvalidDataException>(() => TabularPredictor.FromArchive(damaged, CPU));
            Assert.Contains("feature tokens", e.Message, StringComparison.Ordinal);
        });
    }
}
