using System.IO.Compression;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

public class MLNetInternalsTests
{
    public sealed class Input
    {
        public float X { get; set; }
    }

    public sealed class Output
    {
        public float Y { get; set; }
    }

    private static readonly float[] Xs = [1f, -2f, 0.5f];

    private static (MLContext Context, IDataView Data, ITransformer Model) FitToyChain()
    {
        var mlContext = new MLContext(seed: 1);
        var data = mlContext.Data.LoadFromEnumerable(Xs.Select(x => new Input { X = x }));
        var pipeline = mlContext.Transforms.CopyColumns("X2", "X")
            .Append(mlContext.Transforms.AddConstant("Y", "X2", 2.5f));
        return (mlContext, data, pipeline.Fit(data));
    }

    private static float[] Ys(ITransformer model, IDataView data) => model.Transform(data).GetColumn<float>("Y").ToArray();

    private static MemoryStream Save(MLContext mlContext, ITransformer model, IDataView data)
    {
        var stream = new MemoryStream();
        mlContext.Model.Save(model, data.Schema, stream);
        stream.Position = 0;
        return stream;
    }

    [Fact]
    public void Estimator_in_a_chain_fits_and_transforms()
    {
        var (_, data, model) = FitToyChain();

        Assert.Equal(Xs.Select(x => x + 2.5f), Ys(model, data));
    }

    [Fact]
    public void Saved_model_loads_in_a_fresh_context_after_registration_and_predicts_the_same()
    {
        var (mlContext, data, model) = FitToyChain();
        using var zip = Save(mlContext, model, data);

        var fresh = new MLContext();
        fresh.ComponentCatalog.RegisterMemoryFormer();
        var loaded = fresh.Model.Load(zip, out var inputSchema);

        Assert.Equal(Ys(model, data), Ys(loaded, fresh.Data.LoadFromEnumerable(Xs.Select(x => new Input { X = x }))));
        Assert.NotNull(inputSchema.GetColumnOrNull("X"));
        var engine = fresh.Model.CreatePredictionEngine<Input, Output>(loaded);
        Assert.Equal(-2f + 2.5f, engine.Predict(new Input { X = -2f }).Y);
    }

    [Fact]
    public void Saved_model_stores_each_archive_entry_as_its_own_zip_entry()
    {
        var (mlContext, data, model) = FitToyChain();
        using var zip = Save(mlContext, model, data);

        using var archive = new ZipArchive(zip, ZipArchiveMode.Read);
        var names = archive.Entries.Select(e => e.FullName.Replace('\\', '/')).ToArray();

        Assert.Contains(names, n => n.EndsWith("/config.json", StringComparison.Ordinal));
        Assert.Contains(names, n => n.EndsWith("/weights.bin", StringComparison.Ordinal));
    }

    [Fact]
    public void Loading_in_a_fresh_context_without_registration_fails_naming_the_missing_transform()
    {
        var (mlContext, data, model) = FitToyChain();
        using var zip = Save(mlContext, model, data);

        // ML.NET 5.0.1 wraps it: InvalidOperationException("Error during class instantiation") around the
        // TransformerChain loader, whose inner FormatException names the transform it could not load.
        var error = Assert.ThrowsAny<Exception>(() => new MLContext().Model.Load(zip, out _));

        var causes = new List<Exception>();
        for (var e = error; e is not null; e = e.InnerException)
            causes.Add(e);
        var format = Assert.Single(causes.OfType<FormatException>());
        Assert.Equal("Couldn't load model: 'TransformerChain/Transform_001'", format.Message);
    }

    [Fact]
    public void Registration_is_idempotent_per_catalog()
    {
        var (mlContext, data, model) = FitToyChain();   // the estimator registered the loaders once already
        using var zip = Save(mlContext, model, data);

        var repeat = Record.Exception(() =>
        {
            mlContext.ComponentCatalog.RegisterMemoryFormer();
            mlContext.ComponentCatalog.RegisterMemoryFormer();
        });

        Assert.Null(repeat);
        Assert.Equal(Ys(model, data), Ys(mlContext.Model.Load(zip, out _), data));   // still one working loader
    }

    [Fact]
    public void Registering_a_taken_loader_signature_for_another_type_throws()
    {
        var mlContext = new MLContext();
        _ = new AddConstantEstimator(mlContext, "Y", "X", 1f);
        var create = typeof(AddConstantTransformer).GetMethod(nameof(AddConstantTransformer.Create))!;

        var error = Assert.Throws<InvalidOperationException>(() => MLNetInternals.RegisterLoader(
            mlContext.ComponentCatalog, typeof(ITransformer), AddConstantTransformer.Signature.LoaderSignature, create));

        Assert.Contains(AddConstantTransformer.Signature.LoaderSignature, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RegisterLoader_rejects_a_create_method_with_the_wrong_signature()
    {
        var wrong = typeof(AddConstantTransformer).GetMethod(nameof(AddConstantTransformer.GetOutputSchema))!;

        Assert.Throws<ArgumentException>(() => MLNetInternals.RegisterLoader(
            new MLContext().ComponentCatalog, typeof(AddConstantTransformer), "MemoryFormerToyWrong", wrong));
    }

    [Fact]
    public void GetEnvironment_reaches_the_environment_behind_contexts_and_catalogs()
    {
        var mlContext = new MLContext();
        object[] owners = [mlContext, mlContext.Transforms, mlContext.Transforms.Text, mlContext.Model,
            mlContext.MulticlassClassification.Trainers, mlContext.BinaryClassification.Trainers, mlContext.Regression.Trainers];

        foreach (var owner in owners)
            Assert.Same(mlContext.ComponentCatalog, MLNetInternals.GetEnvironment(owner).ComponentCatalog);
        Assert.Throws<ArgumentException>(() => MLNetInternals.GetEnvironment("not a catalog"));
    }

    [Fact]
    public void NewColumn_and_ShapeOf_build_schema_shapes()
    {
        var annotations = new DataViewSchema.Annotations.Builder();
        ValueGetter<VBuffer<ReadOnlyMemory<char>>> slotNames = (ref VBuffer<ReadOnlyMemory<char>> value) =>
            value = new VBuffer<ReadOnlyMemory<char>>(2, ["a".AsMemory(), "b".AsMemory()]);
        annotations.Add("SlotNames", new VectorDataViewType(TextDataViewType.Instance, 2), slotNames);
        var annotationShape = MLNetInternals.ShapeOf(annotations.ToAnnotations());

        var column = MLNetInternals.NewColumn("Score", SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single,
            isKey: false, annotationShape);

        Assert.Equal(("Score", SchemaShape.Column.VectorKind.Vector, false), (column.Name, column.Kind, column.IsKey));
        Assert.Equal(NumberDataViewType.Single, column.ItemType);
        var slotNamesShape = Assert.Single(column.Annotations);
        Assert.Equal(("SlotNames", TextDataViewType.Instance), (slotNamesShape.Name, slotNamesShape.ItemType));
        Assert.Empty(MLNetInternals.NewColumn("Y", SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single, false).Annotations);
    }

    [Fact]
    public void ModelSignatureInfo_rejects_what_the_model_header_cannot_hold()
    {
        Assert.Throws<ArgumentException>(() => ModelSignatureInfo.For(typeof(object), "SHORT", "Loader"));
        Assert.Throws<ArgumentException>(() => ModelSignatureInfo.For(typeof(object), "EIGHTCHR", new string('L', 25)));
    }
}
