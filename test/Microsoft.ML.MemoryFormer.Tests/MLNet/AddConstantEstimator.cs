using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>Estimator of <see cref="AddConstantTransformer"/>; registers the loader so its context can load what it saves.</summary>
internal sealed class AddConstantEstimator : IEstimator<AddConstantTransformer>
{
    private readonly string _outputColumnName;
    private readonly string _inputColumnName;
    private readonly float _constant;

    public AddConstantEstimator(IHostEnvironment env, string outputColumnName, string inputColumnName, float constant)
    {
        // Library transformers are found automatically; a type outside the library adds itself first.
        MemoryFormerRegistration.Register<AddConstantTransformer>();
        env.ComponentCatalog.RegisterMemoryFormer();
        (_outputColumnName, _inputColumnName, _constant) = (outputColumnName, inputColumnName, constant);
    }

    public AddConstantTransformer Fit(IDataView input)
    {
        GetOutputSchema(MLNetInternals.ShapeOf(input.Schema));
        return new AddConstantTransformer(_outputColumnName, _inputColumnName, _constant);
    }

    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        var columns = inputSchema.ToDictionary(c => c.Name);
        if (!columns.TryGetValue(_inputColumnName, out var input))
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Input column '{_inputColumnName}' not found.");
        if (input.Kind != SchemaShape.Column.VectorKind.Scalar || input.ItemType != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Column '{_inputColumnName}' must be a Single scalar.");
        columns[_outputColumnName] = MLNetInternals.NewColumn(
            _outputColumnName, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single, isKey: false);
        return new SchemaShape(columns.Values);
    }
}
