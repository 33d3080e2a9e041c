using System.Text;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// What ML.NET writes into a model header for one of our transformers (ML.NET's internal <c>VersionInfo</c>).
/// Give each transformer type one static instance and never change <see cref="ModelSignature"/> or
/// <see cref="LoaderSignature"/> once models are saved: the loader signature is how ML.NET finds our
/// <c>Create</c> method when it reads a model zip.
/// </summary>
/// <param name="ModelSignature">Exactly 8 ASCII characters naming the binary format, e.g. <c>"MFLMTRNS"</c>.</param>
/// <param name="VerWritten">Format version this code writes.</param>
/// <param name="VerReadable">Oldest code version that can read what this code writes.</param>
/// <param name="VerWeCanReadBack">Oldest format version this code can still read.</param>
/// <param name="LoaderSignature">Name under which the loader is registered (at most 24 ASCII characters).</param>
/// <param name="LoaderSignatureAlt">Optional older loader name still accepted (at most 24 ASCII characters).</param>
/// <param name="LoaderAssemblyName">Assembly ML.NET loads before looking up the loader; usually the transformer's.</param>
internal sealed record ModelSignatureInfo(
    string ModelSignature,
    uint VerWritten,
    uint VerReadable,
    uint VerWeCanReadBack,
    string LoaderSignature,
    string? LoaderSignatureAlt,
    string? LoaderAssemblyName)
{
    /// <summary>Throws when a field breaks a limit of ML.NET's model header (which would fail only at save time).</summary>
    public ModelSignatureInfo Validate()
    {
        if (ModelSignature is not { Length: 8 } || !Ascii.IsValid(ModelSignature))
            throw new ArgumentException($"Model signature '{ModelSignature}' must be exactly 8 ASCII characters.");
        CheckLoaderName(LoaderSignature, nameof(LoaderSignature));
        if (LoaderSignatureAlt is not null)
            CheckLoaderName(LoaderSignatureAlt, nameof(LoaderSignatureAlt));
        if (VerReadable > VerWritten || VerWeCanReadBack > VerWritten)
            throw new ArgumentException($"Versions of '{LoaderSignature}' must satisfy readable <= written and readBack <= written.");
        return this;
    }

    /// <summary>Creates the info for <paramref name="transformerType"/> with a single format version.</summary>
    public static ModelSignatureInfo For(Type transformerType, string modelSignature, string loaderSignature, uint version = 0x00010001) =>
        new ModelSignatureInfo(modelSignature, version, version, version, loaderSignature, null,
            transformerType.Assembly.FullName).Validate();

    private static void CheckLoaderName(string name, string what)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Length > 24 || !Ascii.IsValid(name))
            throw new ArgumentException($"{what} '{name}' must be 1 to 24 ASCII characters.");
    }
}
