namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// The training loop's options for a run of a given shape: an ML.NET-free trainer calls it once it knows how many
/// optimizer steps one pass over its data takes and whether it has validation data. The ML.NET options supply it
/// (<c>MemoryFormerTrainerOptions.ToTrainingOptions</c>, the one mapping); callers without ML.NET pass a lambda.
/// </summary>
/// <param name="stepsPerEpoch">Optimizer steps in one pass over the training data.</param>
/// <param name="validated">Whether the run has validation data.</param>
internal delegate TrainingOptions TrainingSchedule(int stepsPerEpoch, bool validated);
