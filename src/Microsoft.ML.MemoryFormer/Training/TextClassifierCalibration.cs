using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks"): after training, one scalar T
/// is fitted on the validation rows to minimise their log-loss with probabilities softmax(logits / T). It rescales
/// confidence without changing any prediction (the arg-max is the same for every T &gt; 0). Rows with example weights
/// count in proportion to them (unless every one is 0), as in training.
/// </summary>
/// <remarks>
/// The mean negative log-likelihood is convex in β = 1/T (a log-sum-exp of functions linear in β minus a linear term),
/// so a golden-section search over log β in [ln 0.01, ln 100] finds its minimum; the logits are computed once.
/// </remarks>
internal static class TextClassifierCalibration
{
    private const double LowestLogBeta = -4.605170185988091;   // ln 0.01
    private const double HighestLogBeta = 4.605170185988091;   // ln 100
    private const int Iterations = 60;

    /// <summary>Fits the temperature on <paramref name="validation"/> with <paramref name="network"/> in eval mode.</summary>
    /// <returns>T, or 1 when the validation rows do not improve on it.</returns>
    public static double FitTemperature(SequenceClassifier network, TokenRows validation, int batchSize, Action<string>? log)
    {
        var (logits, labels, weights) = Logits(network, validation, batchSize);
        double Loss(double beta) => LogLoss(logits, labels, beta, weights);
        double before = Loss(1);
        double lo = LowestLogBeta, hi = HighestLogBeta, ratio = (Math.Sqrt(5) - 1) / 2;
        double a = hi - ratio * (hi - lo), b = lo + ratio * (hi - lo);
        double fa = Loss(Math.Exp(a)), fb = Loss(Math.Exp(b));
        for (int i = 0; i < Iterations; i++)
        {
            if (fa <= fb) { hi = b; b = a; fb = fa; a = hi - ratio * (hi - lo); fa = Loss(Math.Exp(a)); }
            else { lo = a; a = b; fa = fb; b = lo + ratio * (hi - lo); fb = Loss(Math.Exp(b)); }
        }
        double beta = Math.Exp((lo + hi) / 2), after = Loss(beta);
        if (!(after < before)) beta = 1;
        log?.Invoke($"Temperature scaling on {labels.Length} validation rows: T = {1 / beta:G4}, " +
            $"validation log-loss {before:F4} → {Math.Min(before, after):F4}.");
        return 1 / beta;
    }

    /// <summary>Mean −log softmax(β · z)[label] over the rows, in double precision; with <paramref name="weights"/> the
    /// weighted mean Σ wᵣ·lossᵣ / Σ wᵣ.</summary>
    internal static double LogLoss(float[][] logits, long[] labels, double beta, float[]? weights = null)
    {
        double total = 0, count = 0;
        for (int r = 0; r < logits.Length; r++)
        {
            var z = logits[r];
            double max = double.NegativeInfinity;
            foreach (var v in z) max = Math.Max(max, beta * v);
            double sum = 0;
            foreach (var v in z) sum += Math.Exp(beta * v - max);
            double w = weights?[r] ?? 1;
            total += w * (max + Math.Log(sum) - beta * z[labels[r]]);
            count += w;
        }
        return total / count;
    }

    /// <summary>The rows' logits and labels, and their weights when they have some above 0.</summary>
    private static (float[][] Logits, long[] Labels, float[]? Weights) Logits(SequenceClassifier network, TokenRows rows, int batchSize)
    {
        using var evaluation = EvaluationMode.Enter(network);          // eval mode, no gradients; training mode restored after
        var logits = new List<float[]>(rows.Count);
        var labels = new List<long>(rows.Count);
        var weights = new List<float>();
        for (int start = 0; start < rows.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var indices = Enumerable.Range(start, Math.Min(batchSize, rows.Count - start)).ToArray();
            var (outputs, targets) = rows.Run(indices);                                 // [B, C], [B]
            var flat = outputs.cpu().data<float>().ToArray();
            int classes = (int)outputs.shape[1];
            for (int i = 0; i < indices.Length; i++) logits.Add(flat.AsSpan(i * classes, classes).ToArray());
            labels.AddRange(targets.cpu().data<long>().ToArray());
            if (rows.Weights(indices) is { } w) weights.AddRange(w.cpu().data<float>().ToArray());
        }
        return (logits.ToArray(), labels.ToArray(), weights.Sum(w => (double)w) > 0 ? weights.ToArray() : null);
    }
}
