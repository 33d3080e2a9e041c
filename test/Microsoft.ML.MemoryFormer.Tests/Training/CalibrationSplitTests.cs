using Microsoft.ML.MemoryFormer.Training;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Tests.Training;

/// <summary>The calibration hold-out's split and the label-smoothed cross-entropy.</summary>
public class CalibrationSplitTests
{
    [Fact]
    public void The_split_is_stratified_seeded_and_keeps_a_row_of_every_class()
    {
        long[] labels = [.. Enumerable.Range(0, 40).Select(i => (long)(i % 4)), 4];   // 10 rows of classes 0–3, 1 of class 4
        var split = CalibrationSplit.Of(labels, classes: 5, fraction: 0.3, seed: 7)!;

        Assert.Equal(Enumerable.Range(0, 41), split.Kept.Concat(split.Held).Order());
        Assert.Equal(split.Held.Order(), split.Held);
        Assert.Equal(split.Kept.Order(), split.Kept);
        for (int c = 0; c < 4; c++) Assert.Equal(3, split.Held.Count(r => labels[r] == c));
        Assert.Contains(40, split.Kept);                                            // a class's last row is never held out
        Assert.Equal(split.Held, CalibrationSplit.Of(labels, 5, 0.3, seed: 7)!.Held);
        Assert.NotEqual(split.Held, CalibrationSplit.Of(labels, 5, 0.3, seed: 8)!.Held);
    }

    [Fact]
    public void No_split_when_it_would_hold_out_fewer_than_two_rows_per_class()
    {
        long[] labels = [.. Enumerable.Range(0, 12).Select(i => (long)(i % 2))];   // 6 rows per class
        Assert.Null(CalibrationSplit.Of(labels, classes: 2, fraction: 0.1, seed: 1));  // 1 per class
        Assert.Null(CalibrationSplit.Of([0, 1], classes: 2, fraction: 0.5, seed: 1));   // never a class's last row
        Assert.Equal(4, CalibrationSplit.Of(labels, classes: 2, fraction: 0.34, seed: 1)!.Held.Length);
    }

    [Fact]
    public void Label_smoothing_mixes_the_cross_entropy_with_the_mean_over_classes()
    {
        using var logits = tensor(new float[] { 2, -1, 0.5f, 0, 3, -2 }).reshape(2, 3);
        using var targets = tensor(new long[] { 0, 2 });
        double plain = new ClassificationObjective().Loss(logits, targets).item<float>();
        double smoothed = new ClassificationObjective(labelSmoothing: 0.1).Loss(logits, targets).item<float>();
        double uniform = (-F.log_softmax(logits, 1)).mean().item<float>();        // mean over rows and classes
        Assert.Equal(0.9 * plain + 0.1 * uniform, smoothed, 5);
        Assert.NotEqual(plain, smoothed, 3);
    }
}
