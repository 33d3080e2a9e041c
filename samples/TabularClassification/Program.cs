// Classifies Palmer penguins by species with a MemoryFormer on tabular features, Model Builder style:
// load → split → train (with progress) → evaluate → explain (the features overall, then one row) → save → load → predict.
// Usage: dotnet run --project samples/TabularClassification [path/to/penguins.csv]
using Microsoft.ML;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Training;
using TabularClassification;

var mlContext = new MLContext(seed: 0);

// 1. Load penguins.csv (fetched with apt-get into a cache on first run, or your own file) and hold out 20% for testing.
var path = PenguinsData.Locate(args);
var data = mlContext.Data.LoadFromTextFile<ModelInput>(path, separatorChar: ',', hasHeader: true);
var split = mlContext.Data.TrainTestSplit(data, testFraction: 0.2, seed: 0);

// 2. Train. Progress arrives once per epoch; training stops early when validation accuracy stops improving.
var progress = new Progress<TrainingProgress>(p => Console.WriteLine(
    $"  step {p.Step,4}/{p.TotalSteps}  loss {p.Loss:F4}" + (p.ValidationMetric is { } a ? $"  validation accuracy {a:P1}" : "")));
Console.WriteLine("Training...");
var model = PenguinsModel.RetrainModel(mlContext, split.TrainSet, progress);

// 3. Evaluate on the held-out rows with ML.NET's own evaluator.
var metrics = mlContext.MulticlassClassification.Evaluate(model.Transform(split.TestSet));
Console.WriteLine($"Macro accuracy {metrics.MacroAccuracy:P1}, micro accuracy {metrics.MicroAccuracy:P1}, log-loss {metrics.LogLoss:F3}");
Console.WriteLine(metrics.ConfusionMatrix.GetFormattedConfusionTable());

// 4. Which features the model relies on: ML.NET's permutation feature importance shuffles one Features slot at a time
//    (three times each) and reports how much the test metrics fall.
var scoredTest = model.Transform(split.TestSet);
var importance = mlContext.MulticlassClassification.PermutationFeatureImportance(model, scoredTest, permutationCount: 3);
Console.WriteLine("Features the model relies on most (macro accuracy when the slot is shuffled):");
foreach (var (slot, change) in importance.OrderBy(p => p.Value.MacroAccuracy.Mean).Take(5))
    Console.WriteLine($"  {slot,-22} {change.MacroAccuracy.Mean:+0.000;-0.000} ± {change.MacroAccuracy.StandardError:0.000}");

// 5. Why one penguin got its species: each feature's values are replaced by those of 100 training penguins in turn, and
//    its contribution is how much the predicted species' probability falls on average (a one-hot column is one feature).
var why = mlContext.Model.ExplainTabular(model, mlContext.Data.TakeRows(split.TestSet, 1), background: split.TrainSet)[0];
Console.WriteLine($"The first test penguin is {why.ClassName} with probability {why.Prediction:P0} " +
    $"(a typical penguin: {why.BackgroundPrediction:P0}), mostly because of:");
foreach (var feature in why.Top(3))
    Console.WriteLine($"  {feature.Name,-22} {feature.DisplayValue,-12} {feature.Contribution,7:F3}");

// 6. Save, then predict through the consumption code, which loads the file in a fresh MLContext.
mlContext.Model.SaveAtomically(model, data.Schema, PenguinsModel.ModelPath);
Console.WriteLine($"Saved {PenguinsModel.ModelPath}");
foreach (var row in mlContext.Data.CreateEnumerable<ModelInput>(split.TestSet, reuseRowObject: false).Take(5))
{
    var prediction = PenguinsModel.Predict(row);
    Console.WriteLine($"  {row.Island,-10} bill {row.BillLengthMm,5:F1} mm  flipper {row.FlipperLengthMm,4:F0} mm → " +
        $"{prediction.PredictedSpecies,-10} ({prediction.Score.Max():P0}); truth {row.Species}");
}
