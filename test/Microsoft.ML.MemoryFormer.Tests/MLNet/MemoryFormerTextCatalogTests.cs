using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

public class MemoryFormerTextCatalogTests
{
    private sealed class Row
    {
        public string Text { get; set; } = "";
        public bool Label { get; set; }
        public uint Key { get; set; }
    }

    [Fact]
    public void The_text_catalog_reaches_both_classifiers_with_their_output_columns()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(new[] { new Row { Text = "a", Label = true, Key = 1 } });
        var binary = ml.Text.BinaryClassifier(new MemoryFormerTextClassificationOptions { LabelColumnName = "Label" });
        var binaryShape = binary.GetOutputSchema(MLNetInternals.ShapeOf(data.Schema));
        Assert.Contains(binaryShape, c => c.Name == "Probability");
        Assert.Contains(binaryShape, c => c.Name == "PredictedLabel" && c.ItemType == BooleanDataViewType.Instance);

        var keyed = ml.Transforms.Conversion.MapValueToKey("Key", "Text").Fit(data).Transform(data);
        var multiclass = ml.Text.MulticlassClassifier(new MemoryFormerTextClassificationOptions { LabelColumnName = "Key" });
        var multiShape = multiclass.GetOutputSchema(MLNetInternals.ShapeOf(keyed.Schema));
        Assert.Contains(multiShape, c => c.Name == "Score" && c.Kind == SchemaShape.Column.VectorKind.Vector);
        Assert.Contains(multiShape, c => c.Name == "PredictedLabel" && c.IsKey);
    }
}
