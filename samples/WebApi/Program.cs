// The Model Builder–style Web API for a MemoryFormer text classifier and language model.
//   dotnet run --project samples/WebApi -c Release -- --train-demo
// trains two small demo models into ~/.cache/memoryformer/webapi (once; about a minute) and serves them on
// http://localhost:5000. Your own models: --Serving:ClassifierPath=a.zip --Serving:LanguageModelPath=b.zip.
using WebApi;

if (args.Contains("--train-demo"))
{
    var configured = new ConfigurationBuilder().AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true)
        .AddEnvironmentVariables().AddCommandLine(args.Where(a => a != "--train-demo").ToArray()).Build()
        .GetSection(ServingOptions.Section).Get<ServingOptions>() ?? new ServingOptions();
    string classifier = configured.ResolvedClassifierPath, languageModel = configured.ResolvedLanguageModelPath;
    if (!File.Exists(classifier) || !File.Exists(languageModel))
    {
        Console.WriteLine($"Training the demo models into {Path.GetDirectoryName(classifier)} ...");
        var watch = System.Diagnostics.Stopwatch.StartNew();
        DemoModels.Train(classifier, languageModel);
        Console.WriteLine($"Trained and saved in {watch.Elapsed.TotalSeconds:F0} s: {classifier}, {languageModel}");
    }
    args = [.. args.Where(a => a != "--train-demo")];
}

using var app = ServingApp.Build(args);
app.Run();
