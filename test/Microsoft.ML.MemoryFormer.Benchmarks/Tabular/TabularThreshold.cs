using Microsoft.ML.Data;
using System.Globalization;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Tabular;

/// <summary>
/// The decision threshold of a binary MemoryFormer model chosen on the trainer's own early-stopping hold-out (the
/// threshold of maximum hold-out accuracy) instead of 0.5, and the test accuracy it gives. The hold-out is rebuilt
/// exactly as the trainer draws it (a <c>new Random(seed)</c> shuffle of the training rows' indices, the first
/// ⌊fraction · rows⌋ held out; MLNet/SupervisedTrainerCore.cs), so no test row and no training row the model fitted on
/// chooses the threshold; the hold-out accuracy at 0.5 printed beside it equals the trainer's best validation accuracy
/// when the rebuild is right.
/// </summary>
internal static class TabularThreshold
{
    /// <summary>A note for the result table: the chosen threshold, hold-out accuracy at 0.5 and at it, test accuracy at it.</summary>
    /// <param name="model">The fitted pipeline (featurization + binary MemoryFormer, one model).</param>
    /// <param name="train">The training rows the model was fitted on (before featurization; labels never missing).</param>
    /// <param name="scoredTest">The test rows scored by <paramref name="model"/>.</param>
    /// <param name="fraction">The trainer's ValidationFraction.</param>
    /// <param name="seed">The trainer's seed.</param>
    public static string Measure(ITransformer model, IDataView train, IDataView scoredTest, double fraction, int seed)
    {
        var scoredTrain = model.Transform(train);
        bool[] labels = scoredTrain.GetColumn<bool>("Label").ToArray();
        float[] probabilities = scoredTrain.GetColumn<float>("Probability").ToArray();
        var holdOut = HoldOut(labels.Length, fraction, seed);
        if (holdOut.Length < 1) return "no hold-out to choose a threshold on";
        float threshold = Choose(holdOut.Select(i => probabilities[i]).ToArray(), holdOut.Select(i => labels[i]).ToArray());
        double atHalf = Accuracy(holdOut.Select(i => probabilities[i]), holdOut.Select(i => labels[i]), 0.5f);
        double atThreshold = Accuracy(holdOut.Select(i => probabilities[i]), holdOut.Select(i => labels[i]), threshold);
        double test = Accuracy(scoredTest.GetColumn<float>("Probability"), scoredTest.GetColumn<bool>("Label"), threshold);
        return string.Create(CultureInfo.InvariantCulture,
            $"hold-out accuracy {atHalf:F4} at 0.5; threshold {threshold:F3} chosen on it: hold-out {atThreshold:F4}, test accuracy {test:F4}");
    }

    /// <summary>The indices of the rows the trainer holds out of <paramref name="rows"/> training rows.</summary>
    internal static int[] HoldOut(int rows, double fraction, int seed)
    {
        var order = Enumerable.Range(0, rows).ToArray();
        new Random(seed).Shuffle(order);
        return order[..(int)(rows * fraction)];
    }

    /// <summary>The cut between two distinct probabilities that maximises accuracy (predict true above it); among equal
    /// accuracies the one nearest 0.5.</summary>
    internal static float Choose(float[] probabilities, bool[] labels)
    {
        var order = Enumerable.Range(0, probabilities.Length).OrderByDescending(i => probabilities[i]).ToArray();
        int negatives = labels.Count(l => !l);
        int correct = negatives, best = negatives;                   // nothing predicted true
        float bestThreshold = probabilities[order[0]] + 1e-6f;
        for (int k = 0; k < order.Length; k++)
        {
            correct += labels[order[k]] ? 1 : -1;                    // row k now predicted true
            if (k + 1 < order.Length && probabilities[order[k + 1]] == probabilities[order[k]]) continue;
            float cut = k + 1 < order.Length ? (probabilities[order[k]] + probabilities[order[k + 1]]) / 2 : 0f;
            if (correct > best || (correct == best && Math.Abs(cut - 0.5f) < Math.Abs(bestThreshold - 0.5f)))
                (best, bestThreshold) = (correct, cut);
        }
        return bestThreshold;
    }

    internal static double Accuracy(IEnumerable<float> probabilities, IEnumerable<bool> labels, float threshold) =>
        probabilities.Zip(labels).Average(p => p.First > threshold == p.Second ? 1.0 : 0.0);
}
