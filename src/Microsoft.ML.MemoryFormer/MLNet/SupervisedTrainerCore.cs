using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// What every supervised MemoryFormer trainer (text classification, tabular) does around its model, written once:
/// the label check for the task, reading the rows (skipping and reporting rows whose label is missing), the
/// single-class check, the validation set's class check or the seeded hold-out, the seed and device from the
/// MLContext, and the output schema of ML.NET's own trainers of the task.
/// </summary>
/// <typeparam name="TData">The rows in memory (<see cref="LabelledTexts"/>, <see cref="TabularData"/>).</typeparam>
internal sealed class SupervisedTrainerCore<TData> where TData : class, ILabelledData<TData>
{
    private readonly IHostEnvironment env;
    private readonly MemoryFormerTrainerOptions options;
    private readonly string labelColumnName;
    private readonly Func<IDataView, LabelColumn, (TData Data, int Skipped)> read;

    /// <param name="env">The MLContext (or any environment) the trainer was made from.</param>
    /// <param name="name">The trainer's name for ML.NET's log.</param>
    /// <param name="kind">The task.</param>
    /// <param name="options">The trainer's options (validated by the caller).</param>
    /// <param name="labelColumnName">The label column.</param>
    /// <param name="read">Reads the rows with a label, and counts those without one.</param>
    public SupervisedTrainerCore(IHostEnvironment env, string name, PredictionKind kind, MemoryFormerTrainerOptions options,
        string labelColumnName, Func<IDataView, LabelColumn, (TData Data, int Skipped)> read)
    {
        ArgumentNullException.ThrowIfNull(env);
        env.ComponentCatalog.RegisterMemoryFormer();
        (this.env, this.options, this.labelColumnName, this.read, Kind) = (env, options, labelColumnName, read, kind);
        Host = env.Register(name);
    }

    /// <summary>The task.</summary>
    public PredictionKind Kind { get; }

    /// <summary>The trainer's host (log channels, ML.NET's cancellation).</summary>
    public IHost Host { get; }

    /// <summary>The device the MLContext asks for (<see cref="MLContext.GpuDeviceId"/>, <see cref="MLContext.FallbackToCpu"/>).</summary>
    public Device Device => MLContextDevice.Of(env);

    /// <summary>Whether ML.NET asked the environment to stop.</summary>
    public bool IsCanceled() => MLNetInternals.IsCanceled(Host);

    /// <summary>
    /// Reads and checks the training data: the label column, the rows, at least two classes; then the validation rows
    /// (<see cref="MemoryFormerTrainerOptions.ValidationSet"/>, whose classes must match) or a seeded hold-out of
    /// <see cref="MemoryFormerTrainerOptions.ValidationFraction"/> when early stopping is on.
    /// </summary>
    public (LabelColumn Label, TData Train, TData? Validation, int Seed) Read(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var label = LabelColumn.Of(input.Schema, labelColumnName, Kind);
        var all = ReadRows(input, label, "training data");
        CheckClasses(all, label);
        int seed = options.Seed ?? Host.Rand.Next();
        if (options.ValidationSet is { } validationSet)
        {
            label.CheckSameClasses(LabelColumn.Of(validationSet.Schema, label.Name, Kind), "validation set");
            return (label, all, ReadRows(validationSet, label, "validation set"), seed);
        }
        var (train, validation) = HoldOut(all, seed);
        return (label, train, validation, seed);
    }

    /// <summary>
    /// <paramref name="inputSchema"/> plus the columns the fitted transformer appends, exactly as its real output schema
    /// has them (types and annotations, KeyValues of any item type included); the label must suit the task.
    /// </summary>
    public SchemaShape OutputSchema(SchemaShape inputSchema, string scoreColumnName, string predictedLabelColumnName)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var label = inputSchema.LastOrDefault(c => c.Name == labelColumnName);
        if (label.Name is null)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"The label column '{labelColumnName}' is not in the data " +
                $"(columns: {string.Join(", ", inputSchema.Select(c => c.Name))}). Set labelColumnName.");
        bool ok = label.Kind == SchemaShape.Column.VectorKind.Scalar && Kind switch
        {
            PredictionKind.MulticlassClassification => label.IsKey && label.ItemType.RawType == typeof(uint),
            PredictionKind.BinaryClassification => label.ItemType is BooleanDataViewType,
            _ => label.ItemType == NumberDataViewType.Single,
        };
        if (!ok) throw LabelColumn.WrongType(label.Name, label.ItemType, Kind);
        var columns = inputSchema.ToDictionary(c => c.Name);
        foreach (var column in new PredictionColumns(ShapeLabel(label), scoreColumnName, predictedLabelColumnName).Shape())
            columns[column.Name] = column;
        return new SchemaShape(columns.Values);
    }

    /// <summary>The label as the shape knows it: its class count, and KeyValues of the same item type when it has them
    /// (their values are not known before the data is read; the shape only needs their type).</summary>
    private LabelColumn ShapeLabel(SchemaShape.Column label)
    {
        if (Kind != PredictionKind.MulticlassClassification) return new LabelColumn(label.Name, Kind, Kind == PredictionKind.BinaryClassification ? 2 : 1, null);
        int classes = label.ItemType is KeyDataViewType key ? checked((int)key.Count) : 1;   // a shape keeps no key count
        var keyValues = label.Annotations.LastOrDefault(c => c.Name == "KeyValues");
        if (keyValues.Name is null || !LabelColumn.TryKindOf(keyValues.ItemType, out var kind))
            return new LabelColumn(label.Name, Kind, classes, null);
        return new LabelColumn(label.Name, Kind, classes, new string[classes], kind);
    }

    private TData ReadRows(IDataView data, LabelColumn label, string what)
    {
        var (rows, skipped) = read(data, label);
        if (rows.Count == 0)
            throw new ArgumentException($"The {what} has no rows" + (skipped > 0 ? $" with a label ({skipped} rows have a missing label)" : "") + ".");
        if (skipped > 0)
            using (var channel = Host.Start("Reading"))
                channel.Warning(MessageSensitivity.None, $"Skipped {skipped} rows of the {what} whose label is missing.");
        return rows;
    }

    private static void CheckClasses(TData data, LabelColumn label)
    {
        if (label.Kind == PredictionKind.Regression) return;
        long first = data.ClassOf(0);
        for (int i = 1; i < data.Count; i++)
            if (data.ClassOf(i) != first) return;
        throw new ArgumentException($"The training data's label column '{label.Name}' holds a single class" +
            (label.ClassNames is { } names ? $" ('{names[first]}')" : "") + ": a classifier needs rows of at least two classes.");
    }

    /// <summary>A seeded random hold-out for early stopping; none when early stopping is off or the data is too small.</summary>
    private (TData Train, TData? Validation) HoldOut(TData all, int seed)
    {
        int held = options.HeldOutRows(all.Count);
        if (held == 0) return (all, null);
        var order = Enumerable.Range(0, all.Count).ToArray();
        new Random(seed).Shuffle(order);
        return (all.Subset(order[held..]), all.Subset(order[..held]));
    }
}
