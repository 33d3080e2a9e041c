using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Tabular;

/// <summary>A model of the tabular benchmark: its name and the trainer (appended after the shared featurization).</summary>
internal sealed record TabularContender(string Name, Func<MLContext, TabularTask, IEstimator<ITransformer>> Trainer)
{
    /// <summary>MemoryFormer and ML.NET's LightGBM, FastTree and SDCA, each with its defaults.</summary>
    public static TabularContender[] All(MemoryFormerTabularOptions memoryFormer, Action<string>? log) =>
    [
        new("MemoryFormer", (ml, task) => task switch
        {
            TabularTask.Binary => ml.BinaryClassification.Trainers.MemoryFormerTabular(With(memoryFormer, log)),
            TabularTask.Multiclass => ml.MulticlassClassification.Trainers.MemoryFormerTabular(With(memoryFormer, log)),
            _ => ml.Regression.Trainers.MemoryFormerTabular(With(memoryFormer, log)),
        }),
        new("LightGBM", (ml, task) => task switch
        {
            TabularTask.Binary => ml.BinaryClassification.Trainers.LightGbm(),
            TabularTask.Multiclass => ml.MulticlassClassification.Trainers.LightGbm(),
            _ => ml.Regression.Trainers.LightGbm(),
        }),
        new("FastTree", (ml, task) => task switch
        {
            TabularTask.Binary => ml.BinaryClassification.Trainers.FastTree(),
            TabularTask.Multiclass => ml.MulticlassClassification.Trainers.OneVersusAll(ml.BinaryClassification.Trainers.FastTree()),
            _ => ml.Regression.Trainers.FastTree(),
        }),
        new("SDCA", (ml, task) =>
        {
            var prepare = ml.Transforms.ReplaceMissingValues("Features").Append(ml.Transforms.NormalizeMeanVariance("Features"));
            return task switch
            {
                TabularTask.Binary => prepare.Append(ml.BinaryClassification.Trainers.SdcaLogisticRegression()),
                TabularTask.Multiclass => prepare.Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy()),
                _ => prepare.Append(ml.Regression.Trainers.Sdca()),
            };
        }),
    ];

    // Every option reaches the trainer: a copy of all fields, not a list of them (a listed copy once dropped MinLearningRateRatio).
    private static MemoryFormerTabularOptions With(MemoryFormerTabularOptions o, Action<string>? log)
    {
        var copy = o.Copy();
        copy.Log = log;
        return copy;
    }
}
