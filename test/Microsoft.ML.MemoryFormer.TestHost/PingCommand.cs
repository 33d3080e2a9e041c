using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.TestHost;

/// <summary>Prints READY: the parent checks the host starts and can load the library.</summary>
internal sealed class PingCommand : Spectre.Console.Cli.Command
{
    public override int Execute(CommandContext context, CancellationToken cancellationToken)
    {
        Console.WriteLine($"READY {typeof(Microsoft.ML.MemoryFormer.Training.TrainingOptions).Assembly.GetName().Name}");
        return 0;
    }
}
