using Microsoft.ML.MemoryFormer.TestHost;
using Spectre.Console.Cli;

// Each command writes progress lines to stdout ("READY", "STEP n", ...) that the parent test waits for before it kills us.
var app = new CommandApp();
app.Configure(config =>
{
    config.SetApplicationName("testhost");
    config.AddCommand<PingCommand>("ping").WithDescription("Prints READY and exits (checks that the host starts).");
    config.AddCommand<TrainCommand>("train").WithDescription("Trains a tiny language model with checkpoints; prints STEP n and CHECKPOINT n.");
});
return app.Run(args);
