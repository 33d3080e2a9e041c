// The consumer check: what a new user does with the package, in two processes.
//   ConsumerCheck fit <folder>      trains a tiny tabular regression model, saves it with mlContext.Model.Save and
//                                   writes the scores it gives to <folder>/expected.txt
//   ConsumerCheck predict <folder>  a fresh process: new MLContext, mlContext.Model.Load with no registration call,
//                                   PredictionEngine, and the same scores as the process that trained
//   ConsumerCheck package <nupkg>   what the package promises a user: no libtorch backend forced on the app, the
//                                   ML.NET range, readme, licence, repository, the native fix, symbols
using System.Globalization;
using System.IO.Compression;
using System.Reflection;
using System.Xml.Linq;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;

if (args.Length != 2 || args[0] is not ("fit" or "predict" or "package"))
{
    Console.Error.WriteLine("usage: ConsumerCheck fit|predict <folder> | package <nupkg>");
    return 2;
}
if (args[0] == "package")
    return CheckPackage(args[1]);

var folder = args[1];
var modelPath = Path.Combine(folder, "model.zip");
var expectedPath = Path.Combine(folder, "expected.txt");
var mlNet = typeof(MLContext).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0];
var rows = Rows(32, seed: 2);

if (args[0] == "fit")
{
    Directory.CreateDirectory(folder);
    var mlContext = new MLContext(seed: 1);
    var train = mlContext.Data.LoadFromEnumerable(Rows(128, seed: 1));
    var options = new MemoryFormerTabularOptions
    {
        Architecture = TabularPresets.Small with { Width = 16, Layers = 1, Heads = 2, Dropout = 0 },
        BatchSize = 32, Epochs = 3, Seed = 7,
    };
    var model = mlContext.Regression.Trainers.MemoryFormerTabular(options).Fit(train);
    mlContext.ComponentCatalog.RegisterMemoryFormer();             // not needed, and harmless
    mlContext.Model.Save(model, train.Schema, modelPath);
    var scores = mlContext.Data.CreateEnumerable<Prediction>(model.Transform(mlContext.Data.LoadFromEnumerable(rows)), reuseRowObject: false);
    File.WriteAllLines(expectedPath, scores.Select(p => p.Score.ToString("R", CultureInfo.InvariantCulture)));
    Console.WriteLine($"fit: saved {modelPath} ({new FileInfo(modelPath).Length} bytes) with ML.NET {mlNet}");
    return 0;
}

var fresh = new MLContext();
var loaded = fresh.Model.Load(modelPath, out _);
var engine = fresh.Model.CreatePredictionEngine<Row, Prediction>(loaded);
var expected = File.ReadAllLines(expectedPath).Select(s => float.Parse(s, CultureInfo.InvariantCulture)).ToArray();
int bad = 0;
for (int i = 0; i < rows.Length; i++)
{
    float score = engine.Predict(rows[i]).Score;
    if (!(Math.Abs(score - expected[i]) <= 1e-3f * Math.Max(1f, Math.Abs(expected[i]))))
    {
        Console.Error.WriteLine($"row {i}: predicted {score}, the training process scored {expected[i]}");
        bad++;
    }
}
if (bad > 0)
{
    Console.Error.WriteLine($"predict: {bad} of {rows.Length} rows differ");
    return 1;
}
Console.WriteLine($"predict: loaded in a fresh process and predicted {rows.Length} rows as the training process did, ML.NET {mlNet}");
return 0;

static int CheckPackage(string nupkg)
{
    using var zip = ZipFile.OpenRead(nupkg);
    var files = zip.Entries.Select(e => e.FullName).ToHashSet();
    using var nuspecStream = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open();
    var metadata = XDocument.Load(nuspecStream).Root!.Elements().Single(e => e.Name.LocalName == "metadata");
    string? Value(string name) => metadata.Elements().SingleOrDefault(e => e.Name.LocalName == name)?.Value;
    var dependencies = metadata.Descendants().Where(e => e.Name.LocalName == "dependency")
        .ToDictionary(e => (string)e.Attribute("id")!, e => (string)e.Attribute("version")!);
    var repository = metadata.Elements().SingleOrDefault(e => e.Name.LocalName == "repository");
    var problems = new List<string>();
    void Require(bool ok, string what) { if (!ok) problems.Add(what); }
    Require(!dependencies.Keys.Any(id => id.StartsWith("TorchSharp-", StringComparison.Ordinal) || id == "libtorch-cpu"),
        "no libtorch backend package among the dependencies (the app chooses TorchSharp-cpu or -cuda)");
    Require(dependencies.ContainsKey("TorchSharp"), "a dependency on TorchSharp (managed)");
    Require(dependencies.GetValueOrDefault("Microsoft.ML") == "[5.0.1, 7.0.0)", "Microsoft.ML [5.0.1, 7.0.0)");
    Require(Value("readme") is { } readme && files.Contains(readme), "a readme in the package");
    Require(Value("license") == "MIT" && files.Contains("LICENSE"), "the MIT licence expression and the LICENSE file");
    Require(repository?.Attribute("url")?.Value.StartsWith("https://", StringComparison.Ordinal) == true
        && !string.IsNullOrEmpty(repository.Attribute("commit")?.Value), "the repository URL and commit (SourceLink)");
    Require(files.Contains("buildTransitive/Microsoft.ML.MemoryFormer.targets"), "the native fix as buildTransitive targets");
    Require(File.Exists(Path.ChangeExtension(nupkg, ".snupkg")), "a symbol package (.snupkg) next to it");
    foreach (var p in problems) Console.Error.WriteLine($"package: missing {p}");
    if (problems.Count > 0) return 1;
    Console.WriteLine($"package: {Path.GetFileName(nupkg)} has its metadata, the native fix and symbols, and leaves the backend to the app");
    return 0;
}

static Row[] Rows(int count, int seed)
{
    var random = new Random(seed);
    return Enumerable.Range(0, count).Select(_ =>
    {
        var x = Enumerable.Range(0, 4).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
        return new Row { Features = x, Label = 10 + 3 * x[0] - 2 * x[1] };
    }).ToArray();
}

/// <summary>One training or scoring row.</summary>
internal sealed class Row
{
    [VectorType(4)] public float[] Features { get; set; } = [];
    public float Label { get; set; }
}

/// <summary>What the model predicts for a row.</summary>
internal sealed class Prediction
{
    public float Score { get; set; }
}
