using Microsoft.ML.MemoryFormer.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// AdamW over the three parameter groups (tables, matrices, vectors) with their own learning rates and weight
/// decays, plus global gradient clipping.
/// </summary>
internal sealed class ModelOptimizer : IDisposable
{
    private readonly TrainingOptions options;
    private readonly Parameter[] all;
    private readonly optim.Optimizer adam;
    private readonly ParamGroup[] groups;
    private readonly bool[] isTableGroup;

    public ModelOptimizer(nn.Module model, TrainingOptions options)
    {
        this.options = options;
        var g = ParameterGroups.Of(model);
        all = [.. g.Tables, .. g.Matrices, .. g.Vectors];
        var specs = new List<(IReadOnlyList<Parameter> Params, double Lr, double Wd, bool Table)>
        {
            (g.Tables, options.TableLearningRate, options.TableWeightDecay, true),
            (g.Matrices, options.LearningRate, options.WeightDecay, false),
            (g.Vectors, options.LearningRate, 0.0, false),
        };
        specs.RemoveAll(s => s.Params.Count == 0);
        var paramGroups = specs.Select(s => new AdamW.ParamGroup(s.Params, new AdamW.Options
        {
            LearningRate = s.Lr, weight_decay = s.Wd, beta1 = options.Beta1, beta2 = options.Beta2, eps = options.Epsilon,
        })).ToArray();
        adam = optim.AdamW(paramGroups, options.LearningRate, options.Beta1, options.Beta2, options.Epsilon);
        groups = paramGroups;
        isTableGroup = specs.Select(s => s.Table).ToArray();
    }

    /// <summary>Clears all gradients (sets them to none).</summary>
    public void ZeroGrad() => adam.zero_grad();

    /// <summary>Clips, sets the scheduled learning rates and applies one AdamW step; returns the gradient norm.</summary>
    public double Step(int step)
    {
        double norm = options.GradientClip > 0
            ? nn.utils.clip_grad_norm_(all.Where(p => p.grad is not null), options.GradientClip)
            : double.NaN;
        for (int i = 0; i < groups.Length; i++)
        {
            double peak = isTableGroup[i] ? options.TableLearningRate : options.LearningRate;
            groups[i].LearningRate = LearningRateSchedule.At(step, peak, options.WarmupSteps, options.MaxSteps,
                options.MinLearningRateRatio);
        }
        adam.step();
        return norm;
    }

    /// <summary>The dense learning rate at <paramref name="step"/>.</summary>
    public double LearningRateAt(int step) => LearningRateSchedule.At(step, options.LearningRate, options.WarmupSteps,
        options.MaxSteps, options.MinLearningRateRatio);

    public void Dispose() => adam.Dispose();
}
