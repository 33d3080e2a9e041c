using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// AdamW over the three parameter groups — tables, matrices, vectors — with their own learning rates and weight
/// decays, plus global gradient clipping. On the CPU the tables (≈ 95% of a MemoryFormer's parameters) go through
/// the single-pass <see cref="FusedTableAdamW"/>; everything else through torch's AdamW.
/// </summary>
internal sealed class ModelOptimizer : IDisposable
{
    private readonly TrainingOptions options;
    private readonly Parameter[] all;
    private readonly FusedTableAdamW? fusedTables;
    private readonly optim.Optimizer? adam;
    private readonly List<(ParamGroup Group, bool Table)> groups = [];

    public ModelOptimizer(nn.Module model, TrainingOptions options)
    {
        this.options = options;
        var g = ParameterGroups.Of(model);
        all = [.. g.Tables, .. g.Matrices, .. g.Vectors];
        bool fused = g.Tables.Count > 0 && TorchRuntime.UseFusedKernels && g.Tables.All(FusedMemoryGather.IsSupported);
        if (fused)
            fusedTables = new FusedTableAdamW(g.Tables, options.Beta1, options.Beta2, options.Epsilon, options.TableWeightDecay,
                options.LazyTableUpdates);
        var specs = new List<(IReadOnlyList<Parameter> Params, double Lr, double Wd, bool Table)>
        {
            (fused ? [] : g.Tables, options.TableLearningRate, options.TableWeightDecay, true),
            (g.Matrices, options.LearningRate, options.WeightDecay, false),
            (g.Vectors, options.LearningRate, 0.0, false),
        };
        specs.RemoveAll(s => s.Params.Count == 0);
        if (specs.Count == 0) return;
        var paramGroups = specs.Select(s => new AdamW.ParamGroup(s.Params, new AdamW.Options
        {
            LearningRate = s.Lr, weight_decay = s.Wd, beta1 = options.Beta1, beta2 = options.Beta2, eps = options.Epsilon,
        })).ToArray();
        adam = optim.AdamW(paramGroups, options.LearningRate, options.Beta1, options.Beta2, options.Epsilon);
        groups.AddRange(paramGroups.Select((p, i) => ((ParamGroup)p, specs[i].Table)));
    }

    /// <summary>Clears all gradients (sets them to none).</summary>
    public void ZeroGrad()
    {
        adam?.zero_grad();
        fusedTables?.ZeroGrad();
    }

    /// <summary>Clips, sets the scheduled learning rates and applies one AdamW step; returns the gradient norm.</summary>
    public double Step(int step)
    {
        double norm = options.GradientClip > 0
            ? nn.utils.clip_grad_norm_(all.Where(p => p.grad is not null), options.GradientClip)
            : double.NaN;
        foreach (var (group, table) in groups) group.LearningRate = RateAt(step, table);
        adam?.step();
        fusedTables?.Step(RateAt(step, table: true));
        return norm;
    }

    /// <summary>The dense learning rate at <paramref name="step"/>.</summary>
    public double LearningRateAt(int step) => RateAt(step, table: false);

    private double RateAt(int step, bool table) => LearningRateSchedule.At(step,
        table ? options.TableLearningRate : options.LearningRate, options.WarmupSteps, options.MaxSteps, options.MinLearningRateRatio);

    public void Dispose()
    {
        adam?.Dispose();
        fusedTables?.Dispose();
    }
}
