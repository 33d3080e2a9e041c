namespace Microsoft.ML.MemoryFormer.Interop;

/// <summary>How a model is written in the official code's GPT-NeoX checkpoint layout.</summary>
public sealed record GptNeoXExportOptions
{
    /// <summary>
    /// False (default): one <c>mp_rank_00_model_states.pt</c> with the whole model under <c>module</c>, as GPT-NeoX writes
    /// with <c>pipe-parallel-size: 0</c>. True: one <c>layer_XX-model_00-model_states.pt</c> per pipeline stage plus an
    /// <c>mp_rank_00_model_states.pt</c> without weights, as it writes with <c>pipe-parallel-size ≥ 1</c>.
    /// </summary>
    public bool PipelineLayout { get; init; }

    /// <summary>The iteration recorded in the checkpoint; the files go to <c>global_step{Iteration}</c>.</summary>
    public int Iteration { get; init; }
}
