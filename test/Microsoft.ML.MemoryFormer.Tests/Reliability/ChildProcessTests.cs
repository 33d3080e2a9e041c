namespace Microsoft.ML.MemoryFormer.Tests.Reliability;

public class ChildProcessTests
{
    [Fact]
    public void The_test_host_starts_and_loads_the_library()
    {
        using var child = ChildProcess.Start("ping");
        var line = child.WaitForLine(l => l.StartsWith("READY", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        Assert.Equal("READY Microsoft.ML.MemoryFormer", line);
        Assert.Equal(0, child.WaitForExit(TimeSpan.FromSeconds(30)));
    }
}
