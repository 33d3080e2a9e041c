namespace Microsoft.ML.MemoryFormer.LanguageModeling;

/// <summary>
/// Zero-shot accuracy of a language model on minimal pairs (BLiMP, Warstadt et al. 2020): a pair counts as right
/// when the model gives the acceptable sentence a strictly higher probability than the unacceptable one, each scored
/// as the sum of its tokens' log-probabilities after an end-of-text token (as lm-evaluation-harness scores BLiMP).
/// </summary>
/// <param name="Pairs">Pairs scored.</param>
/// <param name="Correct">Pairs where log P(good) &gt; log P(bad).</param>
/// <param name="MeanMarginNats">Mean of log P(good) − log P(bad) over the pairs, in nats.</param>
public sealed record MinimalPairsMetrics(int Pairs, int Correct, double MeanMarginNats)
{
    /// <summary><see cref="Correct"/> / <see cref="Pairs"/>; 0.5 is chance.</summary>
    public double Accuracy => Pairs == 0 ? 0 : (double)Correct / Pairs;
}
