using System.Text.Json;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>
/// Toy transformer (Y = X + constant) showing the pattern every MemoryFormer transformer follows: a static
/// <see cref="Signature"/>, an explicit <see cref="ICanSaveModel.Save"/> through <see cref="ModelArchive"/>, and the
/// static <see cref="Create"/> loader that <see cref="MemoryFormerRegistration"/> hands to ML.NET.
/// </summary>
internal sealed class AddConstantTransformer(string outputColumnName, string inputColumnName, float constant)
    : ITransformer, IModelLoadable<AddConstantTransformer>
{
    private sealed record Config(string OutputColumnName, string InputColumnName);

    public static ModelSignatureInfo Signature { get; } =
        ModelSignatureInfo.For(typeof(AddConstantTransformer), "MFTOYADD", "MFToyAddConstant");

    public string OutputColumnName { get; } = outputColumnName;
    public string InputColumnName { get; } = inputColumnName;
    public float Constant { get; } = constant;

    public bool IsRowToRowMapper => true;

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => new AddConstantMapper(this, inputSchema).OutputSchema;

    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new AddConstantMapper(this, inputSchema);

    public IDataView Transform(IDataView input) => new RowMapperDataView(input, GetRowToRowMapper(input.Schema));

    void ICanSaveModel.Save(ModelSaveContext ctx) => new ModelArchive()
        .SetText(ModelArchive.ConfigEntry, JsonSerializer.Serialize(new Config(OutputColumnName, InputColumnName)))
        .Set(ModelArchive.WeightsEntry, BitConverter.GetBytes(Constant))
        .SaveTo(ctx, Signature);

    public static AddConstantTransformer Create(IHostEnvironment env, object modelLoadContext)
    {
        var archive = ModelArchive.LoadFrom(modelLoadContext, Signature);
        var config = JsonSerializer.Deserialize<Config>(archive.GetText(ModelArchive.ConfigEntry))!;
        return new AddConstantTransformer(config.OutputColumnName, config.InputColumnName,
            BitConverter.ToSingle(archive.Get(ModelArchive.WeightsEntry)));
    }
}
