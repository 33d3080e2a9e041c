namespace Microsoft.ML.MemoryFormer.Benchmarks.Tabular;

/// <summary>One model on one set: two test metrics (named by the set's task), training time and scoring speed.</summary>
internal sealed record TabularResult(string Set, TabularTask Task, string Model, double Metric1, double Metric2,
    double TrainSeconds, double ScoreRowsPerSecond, string Note)
{
    /// <summary>The metric names of a task: accuracy/AUC, macro/micro accuracy, RMSE/R².</summary>
    public static (string First, string Second) MetricNames(TabularTask task) => task switch
    {
        TabularTask.Binary => ("accuracy", "AUC"),
        TabularTask.Multiclass => ("macro accuracy", "micro accuracy"),
        _ => ("RMSE", "R²"),
    };
}
