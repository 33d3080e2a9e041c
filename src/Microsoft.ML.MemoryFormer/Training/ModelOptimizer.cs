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
    private readonly Parameter[] tables;
    private readonly TableGradient[] tableGradients;
    private readonly Parameter[] others;

    public ModelOptimizer(nn.Module model, TrainingOptions options)
    {
        this.options = options;
        var g = ParameterGroups.Of(model);
        all = [.. g.Tables, .. g.Matrices, .. g.Vectors];
        var layers = ParameterGroups.TableLayers(model);
        tables = [.. g.Tables];
        tableGradients = layers.Count == tables.Length ? layers.Select(l => l.Gradient).ToArray() : [];
        others = [.. g.Matrices, .. g.Vectors];
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
    /// <remarks>With the fused table optimizer, clipping makes no pass of its own over the table gradients: their
    /// norms come from the fused backward (<see cref="TableGradient"/>) and the clip factor is applied inside the
    /// optimizer's single pass. Same result as <c>clip_grad_norm_</c> followed by AdamW, within float rounding.</remarks>
    public double Step(int step)
    {
        double norm = double.NaN;
        double tableScale = 1.0;
        if (options.GradientClip > 0 && fusedTables is null)
            norm = nn.utils.clip_grad_norm_(all.Where(p => p.grad is not null), options.GradientClip);
        else if (options.GradientClip > 0)
            (norm, tableScale) = ClipFolded(options.GradientClip);
        foreach (var (group, table) in groups) group.LearningRate = RateAt(step, table);
        adam?.step();
        fusedTables?.Step(RateAt(step, table: true), tableScale);
        return norm;
    }

    /// <summary>Global norm as clip_grad_norm_ computes it; scales the dense gradients, returns the tables' factor.</summary>
    private (double Norm, double TableScale) ClipFolded(double maxNorm)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        double squared = 0;
        for (int i = 0; i < tables.Length; i++)
        {
            if (i < tableGradients.Length && tableGradients[i].TryTakeSquaredNorm(tables[i], out double measured))
                squared += measured;
            else if (tables[i].grad is { } g && !g.IsInvalid)
                squared += Math.Pow(g.norm().to(ScalarType.Float64).item<double>(), 2);
        }
        var dense = others.Select(p => p.grad).Where(g => g is not null && !g.IsInvalid).Select(g => g!).ToArray();
        if (dense.Length > 0)
            squared += stack(dense.Select(g => g.norm().to(ScalarType.Float64)).ToArray()).pow(2).sum().item<double>();
        double norm = Math.Sqrt(squared);
        double coefficient = maxNorm / (norm + 1e-6);
        if (coefficient >= 1.0) return (norm, 1.0);
        foreach (var g in dense) g.mul_(coefficient);
        return (norm, coefficient);
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
