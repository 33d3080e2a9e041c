using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>Registers the <c>perf</c> branch (issue 7): one line in Program.cs, <c>config.AddPerfCommands()</c>.</summary>
internal static class PerfCommands
{
    public static IConfigurator AddPerfCommands(this IConfigurator config)
    {
        config.AddBranch("perf", perf =>
        {
            perf.SetDescription("Performance benchmarks of issue 7: MemoryFormer vs dense, side by side in one run.");
            perf.AddCommand<LayerCommand>("layer").WithDescription("Memory Layer vs Linear, fwd and fwd+bwd, d × N sweep.");
            perf.AddCommand<TrainCommand>("train").WithDescription("Training tokens/s, MF vs dense, d=256 and d=512.");
            perf.AddCommand<DecodeCommand>("decode").WithDescription("Batch-1 decode tokens/s with KV cache, MF vs dense (both fused, fp32 and bf16), d=1024.");
            perf.AddCommand<OptimizerCommand>("optimizer").WithDescription("Table AdamW step time vs table size and the bandwidth bound.");
            perf.AddCommand<BandwidthCommand>("bandwidth").WithDescription("Memory-bandwidth probe: a 512 MB tensor copy and sum.");
            perf.AddCommand<AllCommand>("all").WithDescription("Everything above in one run, plus artifacts/perf/summary.md.");
            perf.AddCommand<DecodeProfileCommand>("decode-profile").WithDescription("One decode step: the LM head alone and fused vs general MF steps vs dense.");
            perf.AddCommand<TrainProfileCommand>("train-profile").WithDescription("One training step part by part (norms, Q/K/V, attention, FFN, head, optimizer), MF beside dense.");
            perf.AddCommand<PhaseProfileCommand>("profile-phases").WithDescription("A training step's Memory Layer calls (Q/K/V, ML₁, ML₂) split into hash, gather, hit sort, row pass, table update and the rest, with GB/s.");
            perf.AddCommand<LayerBudgetCommand>("layer-budget").WithDescription("Issue 16: perf layer's MF fwd+bwd (d = 512, N = 4096) by phase with the bytes each moves and GB/s, and this machine's rates for those access patterns on 2 threads.");
            perf.AddCommand<ProfileCommand>("profile").WithDescription("Phase breakdown of one Memory Layer fwd+bwd.");
            perf.AddCommand<CheckpointCommand>("checkpoint").WithDescription("Write and resume a training checkpoint: size, time, peak memory.");
            perf.AddCommand<OpenMPCommand>("openmp").WithDescription("What idle OpenMP workers spinning after a torch op cost the managed kernels.");
            perf.AddCommand<ProbeCommand>("probe").WithDescription("Issue 16 probe: hits on 1/8/33.5 MB tables; blocked column-tiled gather vs today's kernel.");
            perf.AddCommand<GatherPrefetchProbeCommand>("probe-gather-prefetch").WithDescription("Issue 16: the token-major forward gather alone, without and with whole rows prefetched a few hits ahead (L2 or L1), interleaved.");
            perf.AddCommand<HashProbeCommand>("probe-hash").WithDescription("Issue 16: the sign hash alone at the d = 256 training shapes, WideSignHash off ÷ on (16 chunks in AVX-512 registers), interleaved.");
            perf.AddCommand<RowPassProbeCommand>("probe-rowpass").WithDescription("Issue 16: the backward row pass alone, today vs variants, interleaved.");
            perf.AddCommand<UpdateProbeCommand>("probe-update").WithDescription("Issue 16: one d = 512 step's row passes with the fused AdamW on tables from memory, variants and floors, interleaved.");
            perf.AddCommand<Bf16ForwardProbeCommand>("probe-bf16fwd").WithDescription("Issue 16: the training forward over the fp32 table vs its bf16 copy, tiled and token-major, CPU time and wall time.");
            perf.AddCommand<TiledProbeCommand>("probe-tiled").WithDescription("Issue 16: the forward gather per call shape (train d = 256/512, perf layer): as dispatched vs token-major (L2 prefetch) vs tiled and its variants, interleaved.");
            perf.AddCommand<ForwardProbeCommand>("probe-forward").WithDescription("Issue 16: the forward gather, today's kernel vs 16-column tiles in an L2 scratch, interleaved.");
            perf.AddCommand<Bf16Command>("bf16").WithDescription("Issue 16: accuracy cost of bf16 inference weights (bits/byte, greedy text) on small trained models.");
            perf.AddCommand<DenseBf16ProbeCommand>("dense-bf16-probe").WithDescription("Issue 16: the dense baseline's Linear layers at the train shapes, fp32 vs bf16 (autocast-style casts), fwd+bwd, interleaved.");
            perf.AddCommand<ScoringBf16ProbeCommand>("scoring-bf16-probe").WithDescription("Issue 16: the scoring encoder's window attention as torch bmm/SDPA in fp32 and bf16 vs the managed kernel.");
            perf.AddCommand<ScoringKernelsCommand>("scoring-kernels").WithDescription("Issue 16: the scoring encoder's same-bits kernel switches (16-key attention tiles, one-walk 160-wide bag sum) on and off, one thread.");
            perf.AddCommand<ScoringPrecisionCommand>("scoring-precision").WithDescription("Issue 16: accuracy cost of bf16 scoring (tables, attention) on trained classifiers: accuracy, log-loss, argmax agreement.");
            perf.AddCommand<ScoringCommand>("scoring").WithDescription("Issue 16: text-classification scoring rows/s on long and short rows, Transform and PredictionEngine, phases.");
            perf.AddCommand<TabularScoringCommand>("tabular-scoring").WithDescription("Tabular scoring rows/s, the fused inference encoder vs the torch modules, Transform and PredictionEngine.");
            perf.AddCommand<AttentionCommand>("attention").WithDescription("Issue 16: causal attention at the training shapes, SDPA vs blocked, fwd and fwd+bwd, interleaved.");
            perf.AddCommand<OnnxCommand>("onnx").WithDescription("ONNX Runtime CPU vs this library: batched classification scoring and batch-1 decode.");
        });
        return config;
    }
}
