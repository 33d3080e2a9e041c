namespace Microsoft.ML.MemoryFormer.Tests.Reliability;

/// <summary>
/// A real interruption: the test host trains a tiny language model with a checkpoint every 5 steps; one child runs to
/// the end, another is killed right after its checkpoint at step 10, a third resumes that checkpoint to the end. Dropout
/// is on, so the resumed run must also replay the random masks.
/// </summary>
public class CheckpointResumeTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    [Fact]
    public void A_killed_language_model_run_resumes_to_bit_identical_losses_and_weights()
    {
        using var folder = new CheckpointFolder();
        string[] Train(string checkpoint, string output, params string[] extra) =>
            ["train", "--checkpoint", folder.File(checkpoint), "--output", folder.File(output), "--steps", "30", "--every", "5", .. extra];

        using (var uninterrupted = ChildProcess.Start(Train("a.ckpt", "a.txt")))
            Assert.Equal(0, uninterrupted.WaitForExit(Timeout));

        using (var killed = ChildProcess.Start(Train("b.ckpt", "killed.txt", "--step-delay-ms", "200")))
        {
            killed.WaitForLine(l => l == "CHECKPOINT 10", Timeout);
            killed.Kill();
        }
        Assert.False(File.Exists(folder.File("killed.txt")), "the killed run must not have finished");
        int savedStep = CheckpointFolder.StepOf(folder.File("b.ckpt"));
        Assert.InRange(savedStep, 10, 29);

        using (var resumed = ChildProcess.Start(Train("b.ckpt", "b.txt")))
        {
            Assert.Equal($"RESUMED {savedStep}", resumed.WaitForLine(l => l.StartsWith("RESUMED", StringComparison.Ordinal), Timeout));
            Assert.Equal(0, resumed.WaitForExit(Timeout));
        }

        var expected = File.ReadAllLines(folder.File("a.txt"));
        Assert.Equal(31, expected.Length);                                   // 30 losses and the model digest
        Assert.Equal(expected, File.ReadAllLines(folder.File("b.txt")));
        Assert.Equal(CheckpointFolder.Tensors(folder.File("a.ckpt")), CheckpointFolder.Tensors(folder.File("b.ckpt")));
    }
}
