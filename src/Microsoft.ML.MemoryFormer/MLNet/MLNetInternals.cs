using System.Reflection;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// The one place that reaches into ML.NET internals (Microsoft.ML 5.0.x) by reflection (the members ML.NET keeps
/// internal: model save/load contexts, the component catalog, schema shapes, the environment's seed, device and
/// cancellation). Every member is resolved once, lazily, and a missing one throws an
/// <see cref="InvalidOperationException"/> that names it and the supported version.
/// </summary>
/// <remarks>
/// The pattern a transformer follows (the test project's <c>AddConstantTransformer</c> is the worked example):
/// <list type="number">
/// <item>A static <see cref="ModelSignatureInfo"/> <c>Signature</c> and a loader
/// <c>static T Create(IHostEnvironment env, object modelLoadContext)</c> (the context type is internal to ML.NET);
/// the type implements <see cref="IModelLoadable{TSelf}"/>, which names both.</item>
/// <item><c>ICanSaveModel.Save(ModelSaveContext ctx)</c> writes through <see cref="SaveModel"/> (usually via
/// <c>ModelArchive.SaveTo</c>); <c>Create</c> reads back through <see cref="BeginLoadModel"/> and
/// <see cref="TryLoadBinaryStream"/> (usually via <c>ModelArchive.LoadFrom</c>).</item>
/// <item>Any MLContext finds the loaders by itself through the assembly's <c>LoadableClass</c> attributes
/// (MemoryFormerLoadableClasses.cs); <see cref="RegisterLoader"/> serves types outside this assembly.</item>
/// <item><c>GetOutputSchema</c> builds its columns with <see cref="NewColumn"/>; catalog extensions get the
/// environment with <see cref="GetEnvironment"/>.</item>
/// </list>
/// </remarks>
internal static class MLNetInternals
{
    private const string SupportedVersion = "5.0.1 to 6.x";
    private const BindingFlags Any = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static;

    private static readonly Assembly CoreAssembly = typeof(IHostEnvironment).Assembly;
    private static readonly Assembly DataAssembly = typeof(MLContext).Assembly;

    private static readonly Lazy<Type> VersionInfoType = Resolve(() => CoreAssembly.GetType("Microsoft.ML.VersionInfo"), "Microsoft.ML.VersionInfo");
    private static readonly Lazy<Type> LoadContextType = Resolve(() => CoreAssembly.GetType("Microsoft.ML.ModelLoadContext"), "Microsoft.ML.ModelLoadContext");
    private static readonly Lazy<Type> SignatureLoadModelType = Resolve(() => CoreAssembly.GetType("Microsoft.ML.SignatureLoadModel"), "Microsoft.ML.SignatureLoadModel");

    private static readonly Lazy<ConstructorInfo> VersionInfoCtor = Resolve(() => VersionInfoType.Value.GetConstructor(Any, null,
        [typeof(string), typeof(uint), typeof(uint), typeof(uint), typeof(string), typeof(string), typeof(string)], null),
        "VersionInfo(string, uint, uint, uint, string, string, string)");

    private static readonly Lazy<MethodInfo> SaveCheckAtModel = Method(typeof(ModelSaveContext), "CheckAtModel", []);
    private static readonly Lazy<MethodInfo> SaveSetVersionInfo = Resolve(() => typeof(ModelSaveContext).GetMethod("SetVersionInfo", Any, [VersionInfoType.Value]), "ModelSaveContext.SetVersionInfo(VersionInfo)");
    private static readonly Lazy<FieldInfo> SaveWriter = Field(typeof(ModelSaveContext), "Writer");
    private static readonly Lazy<MethodInfo> SaveBinaryStream = Method(typeof(ModelSaveContext), "SaveBinaryStream", [typeof(string), typeof(Action<BinaryWriter>)]);

    private static readonly Lazy<MethodInfo> LoadCheckAtModel = Resolve(() => LoadContextType.Value.GetMethod("CheckAtModel", Any, [VersionInfoType.Value]), "ModelLoadContext.CheckAtModel(VersionInfo)");
    private static readonly Lazy<FieldInfo> LoadReader = Resolve(() => LoadContextType.Value.GetField("Reader", Any), "ModelLoadContext.Reader");
    private static readonly Lazy<MethodInfo> LoadBinaryStream = Resolve(() => LoadContextType.Value.GetMethod("TryLoadBinaryStream", Any, [typeof(string), typeof(Action<BinaryReader>)]), "ModelLoadContext.TryLoadBinaryStream(string, Action<BinaryReader>)");

    private static readonly Lazy<ConstructorInfo> LoadableClassAttributeCtor = Resolve(() => CoreAssembly.GetType("Microsoft.ML.LoadableClassAttribute")?.GetConstructor(Any, null,
        [typeof(Type), typeof(Type), typeof(Type), typeof(Type), typeof(string), typeof(string[])], null),
        "LoadableClassAttribute(Type, Type, Type, Type, string, string[])");
    private static readonly Lazy<Type> LoadableClassInfoType = Resolve(() => typeof(ComponentCatalog).GetNestedType("LoadableClassInfo", Any), "ComponentCatalog.LoadableClassInfo");
    private static readonly Lazy<ConstructorInfo> LoadableClassInfoCtor = Resolve(() => LoadableClassInfoType.Value.GetConstructors(Any).SingleOrDefault(c => c.GetParameters().Length == 5),
        "ComponentCatalog.LoadableClassInfo(LoadableClassAttributeBase, MethodInfo, ConstructorInfo, MethodInfo, bool)");
    private static readonly Lazy<PropertyInfo> LoadableClassInfoTypeProperty = Resolve(() => LoadableClassInfoType.Value.GetProperty("Type", Any), "ComponentCatalog.LoadableClassInfo.Type");
    private static readonly Lazy<MethodInfo> CatalogAddClass = Resolve(() => typeof(ComponentCatalog).GetMethod("AddClass", Any, [LoadableClassInfoType.Value, typeof(string[]), typeof(bool)]), "ComponentCatalog.AddClass(LoadableClassInfo, string[], bool)");
    private static readonly Lazy<MethodInfo> CatalogGetClassInfo = Method(typeof(ComponentCatalog), "GetLoadableClassInfo", [typeof(string), typeof(Type)]);
    private static readonly Lazy<FieldInfo> CatalogLock = Field(typeof(ComponentCatalog), "_lock");

    private static readonly Lazy<PropertyInfo> InternalCatalogEnvironment = Resolve(() => DataAssembly.GetType("Microsoft.ML.Data.IInternalCatalog")?.GetProperty("Environment", Any), "IInternalCatalog.Environment");
    private static readonly Lazy<ConstructorInfo> SchemaColumnCtor = Resolve(() => typeof(SchemaShape.Column).GetConstructor(Any, null,
        [typeof(string), typeof(SchemaShape.Column.VectorKind), typeof(DataViewType), typeof(bool), typeof(SchemaShape)], null),
        "SchemaShape.Column(string, VectorKind, DataViewType, bool, SchemaShape)");
    private static readonly Lazy<MethodInfo> SchemaShapeCreate = Method(typeof(SchemaShape), "Create", [typeof(DataViewSchema)]);
    private static readonly Lazy<PropertyInfo> EnvironmentSeed = Resolve(() => CoreAssembly.GetType("Microsoft.ML.Runtime.IHostEnvironmentInternal")?.GetProperty("Seed", Any), "IHostEnvironmentInternal.Seed");
    private static readonly Lazy<PropertyInfo> EnvironmentGpuDeviceId = Resolve(() => CoreAssembly.GetType("Microsoft.ML.Runtime.IHostEnvironmentInternal")?.GetProperty("GpuDeviceId", Any), "IHostEnvironmentInternal.GpuDeviceId");
    private static readonly Lazy<PropertyInfo> EnvironmentFallbackToCpu = Resolve(() => CoreAssembly.GetType("Microsoft.ML.Runtime.IHostEnvironmentInternal")?.GetProperty("FallbackToCpu", Any), "IHostEnvironmentInternal.FallbackToCpu");
    private static readonly Lazy<PropertyInfo> EnvironmentIsCanceled = Resolve(() => CoreAssembly.GetType("Microsoft.ML.Runtime.ICancelable")?.GetProperty("IsCanceled", Any), "ICancelable.IsCanceled");

    /// <summary>
    /// Writes a model block: checks the context, records <paramref name="info"/> in the header, stores each binary
    /// stream as its own zip entry (each written straight into ML.NET's entry, which ML.NET keeps in a temporary file
    /// until it zips it), then lets <paramref name="writeHeader"/> write the small model block, so the header can
    /// describe the streams just written.
    /// </summary>
    public static void SaveModel(ModelSaveContext ctx, ModelSignatureInfo info,
        IReadOnlyList<(string Name, Action<Stream> Write)> binaryStreams, Action<BinaryWriter> writeHeader)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        Invoke(SaveCheckAtModel.Value, ctx);
        Invoke(SaveSetVersionInfo.Value, ctx, NewVersionInfo(info));
        foreach (var (name, write) in binaryStreams)
            Invoke(SaveBinaryStream.Value, ctx, name, (Action<BinaryWriter>)(w => { w.Flush(); write(w.BaseStream); }));
        writeHeader((BinaryWriter)SaveWriter.Value.GetValue(ctx)!);
    }

    /// <summary>
    /// Checks that <paramref name="modelLoadContext"/> holds a model written with <paramref name="info"/>'s signature
    /// and a readable version, and returns the reader positioned at the model block. The loader must read exactly
    /// what <see cref="SaveModel"/>'s header writer wrote: ML.NET checks the block length afterwards.
    /// </summary>
    public static BinaryReader BeginLoadModel(object modelLoadContext, ModelSignatureInfo info)
    {
        CheckLoadContext(modelLoadContext);
        Invoke(LoadCheckAtModel.Value, modelLoadContext, NewVersionInfo(info));
        return (BinaryReader)LoadReader.Value.GetValue(modelLoadContext)!;
    }

    /// <summary>
    /// Returns the bytes of the binary stream <paramref name="name"/> next to the model, or null if absent. Reads at most
    /// <paramref name="maxBytes"/> + 1 bytes, so a damaged or hostile zip entry cannot make it decompress without bound;
    /// a result longer than <paramref name="maxBytes"/> means the entry is longer than expected.
    /// </summary>
    public static byte[]? TryLoadBinaryStream(object modelLoadContext, string name, long maxBytes = int.MaxValue)
    {
        byte[]? bytes = null;
        return TryReadBinaryStream(modelLoadContext, name, stream =>
        {
            using var buffer = new MemoryStream();
            var block = new byte[81920];
            long limit = Math.Min(maxBytes, Array.MaxLength - 1) + 1;
            int n;
            while (buffer.Length < limit && (n = stream.Read(block, 0, (int)Math.Min(block.Length, limit - buffer.Length))) > 0)
                buffer.Write(block, 0, n);
            bytes = buffer.ToArray();
        }) ? bytes : null;
    }

    /// <summary>
    /// Runs <paramref name="read"/> on the binary stream <paramref name="name"/> next to the model, valid only during the
    /// call (ML.NET extracts the zip entry to a temporary file, or to memory, so it is seekable); false if absent.
    /// </summary>
    public static bool TryReadBinaryStream(object modelLoadContext, string name, Action<Stream> read)
    {
        CheckLoadContext(modelLoadContext);
        return (bool)Invoke(LoadBinaryStream.Value, modelLoadContext, name, (Action<BinaryReader>)(r => read(r.BaseStream)))!;
    }

    /// <summary>
    /// Registers <paramref name="create"/> (<c>static T Create(IHostEnvironment, object)</c>) as the loader of
    /// <paramref name="transformerType"/> under <paramref name="loaderSignature"/> in <paramref name="catalog"/>.
    /// Idempotent; throws if the name is already taken by another type.
    /// </summary>
    public static void RegisterLoader(ComponentCatalog catalog, Type transformerType, string loaderSignature, MethodInfo create)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        CheckCreateMethod(transformerType, create);
        lock (CatalogLock.Value.GetValue(catalog)!)
        {
            var existing = Invoke(CatalogGetClassInfo.Value, catalog, loaderSignature, SignatureLoadModelType.Value);
            if (existing is not null)
            {
                var registeredType = (Type)LoadableClassInfoTypeProperty.Value.GetValue(existing)!;
                if (registeredType == transformerType)
                    return;
                throw new InvalidOperationException(
                    $"Loader signature '{loaderSignature}' is already registered for '{registeredType.FullName}'; cannot register '{transformerType.FullName}'.");
            }

            string[] loadNames = [loaderSignature];
            var attribute = Invoke(LoadableClassAttributeCtor.Value, null,
                transformerType, create.DeclaringType!, null, SignatureLoadModelType.Value, transformerType.Name, loadNames);
            var info = Invoke(LoadableClassInfoCtor.Value, null, attribute, null, null, create, /* requireEnvironment */ true);
            Invoke(CatalogAddClass.Value, catalog, info, loadNames, /* throwOnError */ true);
        }
    }

    /// <summary>
    /// The <see cref="IHostEnvironment"/> behind <paramref name="catalogOrContext"/>: an <see cref="MLContext"/> (or any
    /// environment) itself, or any ML.NET catalog (trainer catalogs, <c>TransformsCatalog.TextTransforms</c>, ...).
    /// </summary>
    public static IHostEnvironment GetEnvironment(object catalogOrContext)
    {
        ArgumentNullException.ThrowIfNull(catalogOrContext);
        if (catalogOrContext is IHostEnvironment env)
            return env;
        var property = InternalCatalogEnvironment.Value;
        if (!property.DeclaringType!.IsInstanceOfType(catalogOrContext))
            throw new ArgumentException($"'{catalogOrContext.GetType().FullName}' is neither an ML.NET catalog nor an IHostEnvironment.", nameof(catalogOrContext));
        return (IHostEnvironment)property.GetValue(catalogOrContext)!;
    }

    /// <summary>The seed the <see cref="MLContext"/> was created with (<c>new MLContext(seed)</c>), or null when it has none.</summary>
    public static int? GetSeed(IHostEnvironment env) =>
        EnvironmentSeed.Value.DeclaringType!.IsInstanceOfType(env) ? (int?)EnvironmentSeed.Value.GetValue(env) : null;

    /// <summary>
    /// The device preference of the environment (<c>MLContext.GpuDeviceId</c> / <c>FallbackToCpu</c>); environments
    /// that ML.NET hands to loaders are not always the MLContext itself, so this reads the internal interface.
    /// </summary>
    public static (int? GpuDeviceId, bool FallbackToCpu) GetDevicePreference(IHostEnvironment env)
    {
        if (env is MLContext ml) return (ml.GpuDeviceId, ml.FallbackToCpu);
        if (!EnvironmentGpuDeviceId.Value.DeclaringType!.IsInstanceOfType(env)) return (null, true);
        return ((int?)EnvironmentGpuDeviceId.Value.GetValue(env), (bool)EnvironmentFallbackToCpu.Value.GetValue(env)!);
    }

    /// <summary>Whether ML.NET asked the environment to stop (its internal <c>ICancelable.CancelExecution</c>).</summary>
    public static bool IsCanceled(IHostEnvironment env) =>
        EnvironmentIsCanceled.Value.DeclaringType!.IsInstanceOfType(env) && (bool)EnvironmentIsCanceled.Value.GetValue(env)!;

    /// <summary>Creates a <see cref="SchemaShape.Column"/> (its constructor is internal) for <c>GetOutputSchema</c>.</summary>
    public static SchemaShape.Column NewColumn(string name, SchemaShape.Column.VectorKind kind, DataViewType itemType,
        bool isKey, SchemaShape? annotations = null) =>
        (SchemaShape.Column)Invoke(SchemaColumnCtor.Value, null, name, kind, itemType, isKey, annotations ?? new SchemaShape([]))!;

    /// <summary>The shape of <paramref name="schema"/>, as ML.NET computes it (<c>SchemaShape.Create</c>).</summary>
    public static SchemaShape ShapeOf(DataViewSchema schema) => (SchemaShape)Invoke(SchemaShapeCreate.Value, null, schema)!;

    /// <summary>The shape of a column's annotations, for copying them onto a <see cref="SchemaShape.Column"/>.</summary>
    public static SchemaShape ShapeOf(DataViewSchema.Annotations annotations) => ShapeOf(annotations.Schema);

    private static object NewVersionInfo(ModelSignatureInfo info)
    {
        info.Validate();
        return Invoke(VersionInfoCtor.Value, null, info.ModelSignature, info.VerWritten, info.VerReadable,
            info.VerWeCanReadBack, info.LoaderAssemblyName, info.LoaderSignature, info.LoaderSignatureAlt)!;
    }

    private static void CheckLoadContext(object modelLoadContext)
    {
        ArgumentNullException.ThrowIfNull(modelLoadContext);
        if (!LoadContextType.Value.IsInstanceOfType(modelLoadContext))
            throw new ArgumentException($"Expected ML.NET's ModelLoadContext, got '{modelLoadContext.GetType().FullName}'.", nameof(modelLoadContext));
    }

    private static void CheckCreateMethod(Type transformerType, MethodInfo create)
    {
        var parameters = create.GetParameters();
        if (!create.IsStatic || !transformerType.IsAssignableFrom(create.ReturnType) || parameters.Length != 2
            || parameters[0].ParameterType != typeof(IHostEnvironment) || parameters[1].ParameterType != typeof(object))
            throw new ArgumentException(
                $"Loader '{create.DeclaringType?.Name}.{create.Name}' must be 'static {transformerType.Name} Create(IHostEnvironment env, object modelLoadContext)'.", nameof(create));
    }

    /// <summary>Invokes a reflected member and rethrows what it threw, not the TargetInvocationException around it.</summary>
    private static object? Invoke(MethodBase member, object? target, params object?[] args)
    {
        try
        {
            return member is ConstructorInfo ctor ? ctor.Invoke(args) : member.Invoke(target, args);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerException);
            throw;
        }
    }

    private static Lazy<MethodInfo> Method(Type type, string name, Type[] parameters) =>
        Resolve(() => type.GetMethod(name, Any, parameters), $"{type.Name}.{name}({string.Join(", ", parameters.Select(p => p.Name))})");

    private static Lazy<FieldInfo> Field(Type type, string name) => Resolve(() => type.GetField(name, Any), $"{type.Name}.{name}");

    private static Lazy<T> Resolve<T>(Func<T?> find, string member) where T : class =>
        new(() => find() ?? throw new InvalidOperationException(
            $"ML.NET internal member '{member}' was not found in Microsoft.ML {CoreAssembly.GetName().Version}. " +
            $"Microsoft.ML.MemoryFormer supports Microsoft.ML {SupportedVersion} only."));
}
