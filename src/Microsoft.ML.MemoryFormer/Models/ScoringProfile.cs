namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// Where the time of <see cref="TextClassifierModel.LogProbabilities(IReadOnlyList{int[][]})"/> goes, accumulated over calls while a profile is
/// attached (<see cref="TextClassifierModel.Profile"/>): read by the <c>perf scoring</c> benchmark.
/// </summary>
internal sealed class ScoringProfile
{
    /// <summary>Milliseconds encoding rows into token windows.</summary>
    public double TokenizeMs { get; set; }

    /// <summary>Milliseconds grouping and padding windows into token tensors.</summary>
    public double PadMs { get; set; }

    /// <summary>Milliseconds in the encoder (embedding, blocks, final norm).</summary>
    public double ForwardMs { get; set; }

    /// <summary>Milliseconds in pooling, the head, averaging windows and the softmax.</summary>
    public double HeadMs { get; set; }

    /// <summary>Of <see cref="ForwardMs"/>, in the fused encoder only (<see cref="Layers.Kernels.FusedEncoder"/>): milliseconds
    /// copying embedding rows.</summary>
    public double FusedEmbeddingMs { get; set; }

    /// <summary>Fused encoder: milliseconds in the per-token pass before attention (RMSNorm, hash, Q/K/V rows, rotary).</summary>
    public double FusedAttentionInputsMs { get; set; }

    /// <summary>Fused encoder: milliseconds in attention (<see cref="Layers.Kernels.WindowAttention"/>).</summary>
    public double FusedAttentionMs { get; set; }

    /// <summary>Fused encoder: milliseconds in the per-token pass after attention (residual, RMSNorm, Memory Block, residual).</summary>
    public double FusedFeedforwardMs { get; set; }

    /// <summary>Fused encoder with staged passes, of the two passes around attention: milliseconds in the
    /// gathers (table-major or token by token); the rest is norms, hashes, rotary and residuals.</summary>
    public double FusedGatherMs { get; set; }

    /// <summary>Fused encoder with staged passes: milliseconds in the per-token norm + hash passes (with residuals).</summary>
    public double FusedHashMs { get; set; }

    /// <summary>Fused encoder with staged passes: milliseconds in rotary on Q and K.</summary>
    public double FusedRotaryMs { get; set; }

    /// <summary>Fused encoder: milliseconds in the final norm and pooling.</summary>
    public double FusedPoolingMs { get; set; }

    /// <summary>Calls of the model.</summary>
    public long Calls { get; set; }

    /// <summary>Rows of the first block's Q, K, V the fused encoder computed (once per distinct token id of a call when
    /// shared; <see cref="Tokens"/> when not).</summary>
    public long FusedFirstBlockRows { get; set; }

    /// <summary>Windows scored.</summary>
    public long Windows { get; set; }

    /// <summary>Real tokens scored.</summary>
    public long Tokens { get; set; }

    /// <summary>Tokens in the batches the encoder ran, padding included.</summary>
    public long PaddedTokens { get; set; }

    /// <summary>Milliseconds of all four phases.</summary>
    public double TotalMs => TokenizeMs + PadMs + ForwardMs + HeadMs;
}
