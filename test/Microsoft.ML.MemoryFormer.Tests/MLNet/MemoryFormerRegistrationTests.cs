using System.Reflection;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>Model.Load needs no registration call, and the explicit call stays harmless.</summary>
public class MemoryFormerRegistrationTests
{
    private static readonly Assembly Library = typeof(MemoryFormerRegistration).Assembly;

    [Fact]
    public void Every_loadable_transformer_is_declared_to_MLNet_under_its_loader_signature()
    {
        var declared = Library.GetCustomAttributesData()
            .Where(a => a.AttributeType.FullName == "Microsoft.ML.LoadableClassAttribute")
            .ToDictionary(a => (Type)a.ConstructorArguments[0].Value!,
                a => ((IEnumerable<CustomAttributeTypedArgument>)a.ConstructorArguments[5].Value!).Select(v => (string)v.Value!).Single());
        var loadable = Library.GetTypes().Where(t => t.GetInterfaces().Any(i => i.IsGenericType
            && i.GetGenericTypeDefinition() == typeof(IModelLoadable<>) && i.GetGenericArguments()[0] == t)).ToArray();
        Assert.NotEmpty(loadable);
        foreach (var type in loadable)
        {
            Assert.True(declared.TryGetValue(type, out var loadName), $"{type.Name} has no [assembly: LoadableClass] line in MLNet/MemoryFormerLoadableClasses.cs");
            Assert.Equal(SignatureOf(type).LoaderSignature, loadName);
        }
        Assert.Equal(loadable.Length, declared.Count);
    }

    [Fact]
    public void The_explicit_call_is_harmless_before_and_after_a_load_and_when_repeated()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(32, 1));
        using var model = ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(epochs: 1)).Fit(data);
        using var stream = new MemoryStream();
        ml.Model.Save(model, data.Schema, stream);

        var before = new MLContext();
        before.ComponentCatalog.RegisterMemoryFormer();
        before.ComponentCatalog.RegisterMemoryFormer();
        stream.Position = 0;
        Assert.NotNull(before.Model.Load(stream, out _));

        var after = new MLContext();
        stream.Position = 0;
        Assert.NotNull(after.Model.Load(stream, out _));           // no call at all
        after.ComponentCatalog.RegisterMemoryFormer();
        stream.Position = 0;
        Assert.NotNull(after.Model.Load(stream, out _));
    }

    private static ModelSignatureInfo SignatureOf(Type type)
    {
        var contract = typeof(IModelLoadable<>).MakeGenericType(type);
        var map = type.GetInterfaceMap(contract);
        var getter = map.TargetMethods[Array.FindIndex(map.InterfaceMethods, m => m.Name == "get_Signature")];
        return (ModelSignatureInfo)getter.Invoke(null, null)!;
    }
}
