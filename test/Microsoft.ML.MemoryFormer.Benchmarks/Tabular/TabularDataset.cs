using Microsoft.ML.Data;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Tabular;

/// <summary>The task of a benchmark table.</summary>
internal enum TabularTask { Binary, Multiclass, Regression }

/// <summary>
/// A developer data set from <c>../shared/data/tabular</c> with a fixed 80/20 split (ML.NET TrainTestSplit, seed 0) and the
/// featurization every model shares: categorical columns one-hot encoded, numeric ones concatenated raw into Features
/// (NaN kept: MemoryFormer and the trees handle it; SDCA gets ReplaceMissingValues + NormalizeMeanVariance on top).
/// </summary>
internal sealed record TabularDataset(string Name, TabularTask Task, IDataView Train, IDataView Test,
    IEstimator<ITransformer> Featurize, string Description, IDataView All)
{
    public static string[] Names { get; } = ["adult", "penguins", "housing"];

    /// <summary>Small sets scikit-learn ships, fetched by <c>tools/sklearn-sets.sh</c> into a folder of their own (pass it as
    /// <c>--data</c>): a held-out check of the trainer's defaults on a few hundred rows, sets no default was tuned on.</summary>
    public static string[] HeldOutNames { get; } = ["diabetes", "breast_cancer", "wine", "iris"];

    /// <summary>Two tables of 20,000 rows fetched by <c>tools/large-sets.sh</c> (pass its folder as <c>--data</c>): a held-out
    /// check of the trainer's large-table defaults.</summary>
    public static string[] LargeHeldOutNames { get; } = ["flights", "randhie"];

    /// <summary>Loads set <paramref name="name"/> from <paramref name="folder"/>, or returns null when its file is absent.
    /// The numeric columns named in <paramref name="valueCategories"/> are also read as text and one-hot encoded after
    /// the categorical columns (each distinct value a category), for every model alike.</summary>
    public static TabularDataset? Load(MLContext ml, string folder, string name, IReadOnlyCollection<string>? valueCategories = null) => name switch
    {
        "adult" => FromText(ml, folder, "adult.txt", TabularTask.Binary, ',', "label",
            new TextLoader.Column("label", DataKind.Boolean, 14),
            Numeric(("age", 0), ("fnlwgt", 2), ("education-num", 4), ("capital-gain", 10), ("capital-loss", 11), ("hours-per-week", 12)),
            Categorical(("workclass", 1), ("education", 3), ("marital-status", 5), ("occupation", 6), ("relationship", 7),
                ("ethnicity", 8), ("sex", 9), ("native-country", 13)), valueCategories),
        "penguins" => FromText(ml, folder, "penguins.csv", TabularTask.Multiclass, ',', "species",
            new TextLoader.Column("species", DataKind.String, 0),
            Numeric(("bill_length_mm", 2), ("bill_depth_mm", 3), ("flipper_length_mm", 4), ("body_mass_g", 5), ("year", 7)),
            Categorical(("island", 1), ("sex", 6)), valueCategories),
        "housing" => FromText(ml, folder, "housing.txt", TabularTask.Regression, '\t', "MedianHomeValue",
            new TextLoader.Column("MedianHomeValue", DataKind.Single, 0),
            Numbered(1, 13), [], valueCategories),
        "diabetes" => FromText(ml, folder, "diabetes.txt", TabularTask.Regression, ' ', "target",
            new TextLoader.Column("target", DataKind.Single, 0),
            Numbered(1, 10), [], valueCategories),
        "breast_cancer" => FromText(ml, folder, "breast_cancer.csv", TabularTask.Binary, ',', "malignant",
            new TextLoader.Column("malignant", DataKind.Boolean, 30),
            Numbered(0, 30), [], valueCategories),
        "wine" => FromText(ml, folder, "wine.csv", TabularTask.Multiclass, ',', "cultivar",
            new TextLoader.Column("cultivar", DataKind.String, 13),
            Numbered(0, 13), [], valueCategories),
        "iris" => FromText(ml, folder, "iris.csv", TabularTask.Multiclass, ',', "species",
            new TextLoader.Column("species", DataKind.String, 4),
            Numbered(0, 4), [], valueCategories),
        "flights" => FromText(ml, folder, "flights.csv", TabularTask.Binary, ',', "delayed",
            new TextLoader.Column("delayed", DataKind.Boolean, 0),
            Numeric(("hour", 1), ("weekday", 2), ("day", 3), ("month", 4), ("distance", 5)),
            Categorical(("origin", 6), ("destination", 7)), valueCategories),
        "randhie" => FromText(ml, folder, "randhie.csv", TabularTask.Regression, ',', "mdvis",
            new TextLoader.Column("mdvis", DataKind.Single, 0),
            Numbered(1, 9), [], valueCategories),
        _ => throw new ArgumentException($"Unknown tabular set '{name}'; known: {string.Join(", ", Names.Concat(HeldOutNames).Concat(LargeHeldOutNames))}."),
    };

    /// <summary>
    /// The set for model selection: the training split cut again (TrainTestSplit, seed 1) into a (1 − <paramref name="fraction"/>)
    /// training part and a <paramref name="fraction"/> development part that takes the test split's place, so that
    /// choices are made without the test rows.
    /// </summary>
    public TabularDataset Development(MLContext ml, double fraction)
    {
        var split = ml.Data.TrainTestSplit(Train, testFraction: fraction, seed: 1);
        return this with { Train = split.TrainSet, Test = split.TestSet, Description = $"{Description}; development split: {fraction} of the training split scored, the rest trained on" };
    }

    /// <summary>
    /// Fold <paramref name="fold"/> (0-based) of a <paramref name="folds"/>-fold cross-validation over every row of the file
    /// (ML.NET's <c>CrossValidationSplit</c>, seed 0): that fold takes the test split's place and the others are trained on,
    /// so that a comparison can be repeated on splits other than the one test split.
    /// </summary>
    public TabularDataset Fold(MLContext ml, int fold, int folds)
    {
        if (folds < 2 || fold < 0 || fold >= folds)
            throw new ArgumentOutOfRangeException(nameof(fold), $"--fold {fold} --folds {folds}: need folds ≥ 2 and 0 ≤ fold < folds.");
        var split = ml.Data.CrossValidationSplit(All, folds, seed: 0)[fold];
        return this with { Train = split.TrainSet, Test = split.TestSet, Description = $"{Description}; fold {fold} of a {folds}-fold split of every row scored, the other folds trained on" };
    }

    private static TextLoader.Column[] Numeric(params (string Name, int Index)[] columns) =>
        columns.Select(c => new TextLoader.Column(c.Name, DataKind.Single, c.Index)).ToArray();

    /// <summary>Numeric columns x{i} for the <paramref name="count"/> columns from index <paramref name="first"/> on.</summary>
    private static TextLoader.Column[] Numbered(int first, int count) =>
        Enumerable.Range(first, count).Select(i => new TextLoader.Column($"x{i}", DataKind.Single, i)).ToArray();

    private static TextLoader.Column[] Categorical(params (string Name, int Index)[] columns) =>
        columns.Select(c => new TextLoader.Column(c.Name, DataKind.String, c.Index)).ToArray();

    private static TabularDataset? FromText(MLContext ml, string folder, string file, TabularTask task, char separator,
        string labelName, TextLoader.Column label, TextLoader.Column[] numeric, TextLoader.Column[] categorical,
        IReadOnlyCollection<string>? valueCategories)
    {
        var unknown = valueCategories?.Where(v => numeric.All(c => c.Name != v)).ToArray() ?? [];
        if (unknown.Length > 0) throw new ArgumentException($"--value-categories: {string.Join(", ", unknown)} is not a numeric column of {file}.");
        categorical = [.. categorical, .. numeric.Where(c => valueCategories?.Contains(c.Name) == true)
            .Select(c => new TextLoader.Column(c.Name + "_value", DataKind.String, c.Source[0].Min))];
        var path = Path.Combine(folder, file);
        if (!File.Exists(path)) return null;
        var loader = ml.Data.CreateTextLoader(new TextLoader.Options
        {
            Separators = [separator], HasHeader = true, TrimWhitespace = true, Columns = [label, .. numeric, .. categorical],
        });
        var data = loader.Load(path);
        var split = ml.Data.TrainTestSplit(data, testFraction: 0.2, seed: 0);
        IEstimator<ITransformer> featurize = task switch
        {
            TabularTask.Multiclass => ml.Transforms.Conversion.MapValueToKey("Label", labelName),
            _ => ml.Transforms.CopyColumns("Label", labelName),
        };
        if (categorical.Length > 0)
            featurize = featurize.Append(ml.Transforms.Categorical.OneHotEncoding(
                categorical.Select(c => new InputOutputColumnPair(c.Name + "_onehot", c.Name)).ToArray()));
        featurize = featurize.Append(ml.Transforms.Concatenate("Features",
            [.. numeric.Select(c => c.Name), .. categorical.Select(c => c.Name + "_onehot")]));
        long rows = data.GetColumn<float>(numeric[0].Name).LongCount();
        return new TabularDataset(Path.GetFileNameWithoutExtension(file), task, split.TrainSet, split.TestSet, featurize,
            $"{rows} rows, {numeric.Length} numeric + {categorical.Length} categorical columns", data);
    }
}
