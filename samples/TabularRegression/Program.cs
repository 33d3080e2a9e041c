// Predicts a Palmer penguin's body mass (grams) with a MemoryFormer regression on tabular features, Model Builder
// style: load → split → train (with progress) → evaluate → explain → save → load → predict.
// Usage: dotnet run --project samples/TabularRegression [path/to/penguins.csv]
using Microsoft.ML;
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

// 5. Save, then predict through the consumption code, which loads the file in a fresh MLContext.
mlContext.Model.SaveAtomically(model, data.Schema, PenguinMassModel.ModelPath);
Console.WriteLine($"Saved {PenguinMassModel.ModelPath}");
foreach (var row in mlContext.Data.CreateEnumerable<ModelInput>(split.TestSet, reuseRowObject: false).Take(5))
    Console.WriteLine($"  {row.Species,-10} {row.Sex,-6} flipper {row.FlipperLengthMm,4:F0} mm → " +
        $"{PenguinMassModel.Predict(row).Score,5:F0} g; truth {row.BodyMassG:F0} g");
