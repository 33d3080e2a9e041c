using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;

namespace WebApi;

/// <summary>
/// The two models the API serves, loaded once at start-up from ML.NET zips with <c>LoadChecked</c> (which registers
/// the MemoryFormer loaders and reports a damaged file as <see cref="InvalidDataException"/>), and disposed with the app.
/// </summary>
public sealed class ServedModels : IDisposable
{
    private ServedModels(MLContext mlContext, ITransformer classifier, IReadOnlyList<string> classNames,
        MemoryFormerLanguageModelTransformer languageModel)
    {
        MLContext = mlContext;
        Classifier = classifier;
        TextClassifier = Find<MemoryFormerTextClassificationTransformer>(classifier);
        ClassNames = classNames;
        LanguageModel = languageModel;
    }

    /// <summary>The context the models were loaded with (prediction engines are created from it).</summary>
    public MLContext MLContext { get; }

    /// <summary>The classification pipeline (Text → PredictedLabel, Score).</summary>
    public ITransformer Classifier { get; }

    /// <summary>The MemoryFormer text classifier inside <see cref="Classifier"/> (for <c>/explain</c>); null when it holds none.</summary>
    public MemoryFormerTextClassificationTransformer? TextClassifier { get; }

    /// <summary>Class names in the order of the Score vector (its SlotNames).</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>The language model; thread-safe for generation (docs/reliability.md, "Thread safety").</summary>
    public MemoryFormerLanguageModelTransformer LanguageModel { get; }

    /// <summary>Loads both models and checks that they have the shape the endpoints need.</summary>
    /// <param name="options">The paths.</param>
    /// <exception cref="FileNotFoundException">A model file is missing (the message says how to make the demo ones).</exception>
    /// <exception cref="InvalidOperationException">A model is not a text classifier / language model.</exception>
    public static ServedModels Load(ServingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        string classifierPath = options.ResolvedClassifierPath, languageModelPath = options.ResolvedLanguageModelPath;
        foreach (var path in new[] { classifierPath, languageModelPath })
        {
            if (!File.Exists(path))
                throw new FileNotFoundException(
                    $"Model file '{path}' not found. Set {ServingOptions.Section}:ClassifierPath and {ServingOptions.Section}:LanguageModelPath " +
                    "to ML.NET zips, or start the app once with --train-demo to train and save two small demo models there.", path);
        }

        var mlContext = new MLContext(seed: 1);
        var classifier = mlContext.Model.LoadChecked(classifierPath, out _);
        var classNames = ReadClassNames(classifier, classifierPath);
        var loaded = mlContext.Model.LoadChecked(languageModelPath, out _);
        var languageModel = Find<MemoryFormerLanguageModelTransformer>(loaded) ?? throw new InvalidOperationException(
            $"'{languageModelPath}' holds no MemoryFormer language model (found {loaded.GetType().Name}); save one made by mlContext.Text.MemoryFormer(...).");
        return new ServedModels(mlContext, classifier, classNames, languageModel);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        LanguageModel.Dispose();
        (Classifier as IDisposable)?.Dispose();
    }

    /// <summary>The last <typeparamref name="T"/> in <paramref name="model"/>, looking inside chains.</summary>
    private static T? Find<T>(ITransformer model) where T : class, ITransformer => model switch
    {
        T found => found,
        IEnumerable<ITransformer> chain => chain.Select(Find<T>).LastOrDefault(t => t is not null),
        _ => null,
    };

    private static string[] ReadClassNames(ITransformer classifier, string path)
    {
        var input = SchemaDefinition.Create(typeof(ClassifierInput));
        var schema = classifier.GetOutputSchema(DataViewSchemaFor(input));
        var score = schema.GetColumnOrNull("Score");
        var label = schema.GetColumnOrNull("PredictedLabel");
        if (score is not { Type: VectorDataViewType { ItemType: NumberDataViewType, Size: > 0 } vector } || label is not { Type: TextDataViewType })
            throw new InvalidOperationException(
                $"'{path}' is not a multiclass text classifier with a Text input, a text PredictedLabel and a Score vector " +
                "(append MapKeyToValue(\"PredictedLabel\") to the pipeline before saving).");
        if (score.Value.Annotations.Schema.GetColumnOrNull("SlotNames") is null)
            return [.. Enumerable.Range(0, vector.Size).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture))];
        VBuffer<ReadOnlyMemory<char>> names = default;
        score.Value.GetSlotNames(ref names);
        return [.. names.DenseValues().Select(n => n.ToString())];
    }

    private static DataViewSchema DataViewSchemaFor(SchemaDefinition definition)
    {
        var builder = new DataViewSchema.Builder();
        foreach (var column in definition) builder.AddColumn(column.ColumnName, column.ColumnType);
        return builder.ToSchema();
    }
}
