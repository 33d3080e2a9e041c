using Microsoft.ML.MemoryFormer.TestHost;
using Spectre.Console.Cli;

// Each command writes progress lines to stdout ("READY", "STEP n", ...) that the parent test waits for before it kills us.
var app = new CommandApp();
app.Configure(config =>
{
    config.SetApplicationName("testhost");
    config.UseStrictParsing();
    config.AddCommand<PingCommand>("ping").WithDescription("Prints READY and exits (checks that the host starts).");
    config.AddCommand<SaveLoopCommand>("save-loop").WithDescription("Saves model versions to one path in a loop (crash-safe saving test).");
    config.AddCommand<TrainCommand>("train").WithDescription("Trains a tiny language model with checkpoints; prints STEP n and CHECKPOINT n.");
});
return app.Run(args);
