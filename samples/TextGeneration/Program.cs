// Trains a MemoryFormer language model on Moby Dick in an ML.NET pipeline, evaluates it, saves it, loads it back
// and generates text. Run it with `build/build.sh demo` (or `dotnet run -c Release -- --help` for the options).
//
// Files, in the order Model Builder would generate them:
//   ModelInput.cs / ModelOutput.cs          the row types (documents and prompts in, generated text out)
//   TextGenerationModel.training.cs         BuildPipeline and RetrainModel
//   TextGenerationModel.consumption.cs      Predict over a lazily created PredictionEngine
//   TrainCommand.cs                         the steps of this program, numbered 1–6
using Spectre.Console.Cli;
using TextGeneration;

var app = new CommandApp<TrainCommand>();
app.Configure(config => config.SetApplicationName("TextGeneration").UseStrictParsing());
return await app.RunAsync(args);
