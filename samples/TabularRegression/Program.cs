// Predicts a Palmer penguin's body mass (grams) with a MemoryFormer regression on tabular features, Model Builder
// style: load → split → train (with progress) → evaluate → explain → save → load → predict.
// Usage: dotnet run --project samples/TabularRegression [path/to/penguins.csv]
using Microsoft.ML;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Training;
using TabularRegression;

var mlContext = new MLContext(seed: 0);

// 1. Load penguins.csv (fetched with apt-get into a cache on first run, or your own file). Two penguins have no body
//    mass: drop them (a missing label cannot be learned or scored against), then hold out 20% for testing.
var path = PenguinsData.Locate(args);
var data = mlContext.Data.LoadFromTextFile<ModelInput>(path, separatorChar: ',', hasHeader: true);
data = mlContext.Data.FilterRowsByMissingValues(data, nameof(ModelInput.BodyMassG));
var split = mlContext.Data.TrainTestSplit(data, testFraction: 0.2, seed: 0);

// 2. Train. Progress arrives once per epoch; training stops early when the validation RMSE stops improving.
var progress = new Progress<TrainingProgress>(p => Console.WriteLine(
    $"  step {p.Step,4}/{p.TotalSteps}  loss {p.Loss:F4}" + (p.ValidationMetric is { } m ? $"  validation RMSE (standardised) {-m:F3}" : "")));
Console.WriteLine("Training...");
var model = PenguinMassModel.RetrainModel(mlContext, split.TrainSet, progress);

// 3. Evaluate on the held-out rows with ML.NET's own evaluator.
var metrics = mlContext.Regression.Evaluate(model.Transform(split.TestSet));
Console.WriteLine($"RMSE {metrics.RootMeanSquaredError:F0} g, MAE {metrics.MeanAbsoluteError:F0} g, R² {metrics.RSquared:F3}");

// 4. Which features the model relies on: ML.NET's permutation feature importance shuffles one Features slot at a time
//    (three times each) and reports how much the test RMSE rises.
var importance = mlContext.Regression.PermutationFeatureImportance(model, model.Transform(split.TestSet), permutationCount: 3);
Console.WriteLine("Features the model relies on most (RMSE rise when the slot is shuffled):");
foreach (var (slot, change) in importance.OrderByDescending(p => p.Value.RootMeanSquaredError.Mean).Take(5))
    Console.WriteLine($"  {slot,-24} +{change.RootMeanSquaredError.Mean:F0} g ± {change.RootMeanSquaredError.StandardError:F0}");

// 5. Why one penguin's predicted mass: each feature's values are replaced by those of 100 training penguins in turn, and
//    its contribution is how much the prediction falls on average (a one-hot column is one feature).
var why = mlContext.Model.ExplainTabular(model, mlContext.Data.TakeRows(split.TestSet, 1), background: split.TrainSet)[0];
Console.WriteLine($"The first test penguin: {why.Prediction:F0} g predicted (a typical penguin: {why.BackgroundPrediction:F0} g), mostly because of:");
foreach (var feature in why.Top(3))
    Console.WriteLine($"  {feature.Name,-24} {feature.DisplayValue,-12} {feature.Contribution,6:F0} g");

// 6. Save, then predict through the consumption code, which loads the file in a fresh MLContext.
mlContext.Model.SaveAtomically(model, data.Schema, PenguinMassModel.ModelPath);
Console.WriteLine($"Saved {PenguinMassModel.ModelPath}");
foreach (var row in mlContext.Data.CreateEnumerable<ModelInput>(split.TestSet, reuseRowObject: false).Take(5))
    Console.WriteLine($"  {row.Species,-10} {row.Sex,-6} flipper {row.FlipperLengthMm,4:F0} mm → " +
        $"{PenguinMassModel.Predict(row).Score,5:F0} g; truth {row.BodyMassG:F0} g");
