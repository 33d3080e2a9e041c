using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// AdamW over the three parameter groups — tables, matrices, vectors — with their own learning rates and weight
/// decays, plus global gradient clipping. Each group has its own single-pass <see cref="FusedAdamW"/>; with fused
/// Memory Layer kernels, clipping of the tables (≈ 95% of a MemoryFormer's parameters) is folded into their update.
/// </summary>
/// <remarks>While it exists it attaches the model's Memory Layers to their reused gradient buffers
/// (<see cref="TableGradient.Attached"/>): the fused backward then writes each table gradient in place for this
/// optimizer to consume in the same step, instead of returning it through autograd. <see cref="Dispose"/> detaches
/// them, so the model behaves as an ordinary autograd module again after training.</remarks>
internal sealed class ModelOptimizer : IDisposable
{
    private readonly TrainingOptions options;
    private readonly IDisposable training;
    private readonly FusedAdamW tableOptimizer;
    private readonly FusedAdamW matrixOptimizer;
    private readonly FusedAdamW vectorOptimizer;
    private readonly bool foldClipping;
    private readonly Parameter[] tables;
    private readonly TableGradient[] tableGradients;
    private readonly Parameter[] others;
    /// <summary>One per entry of <see cref="others"/>: the token embedding's gradient buffer where it is that parameter, else null.</summary>
    private readonly TableGradient?[] otherGradients;
    private readonly TableGradient[] embeddingGradients;
    private readonly bool fuseTableUpdates;

    /// <summary>The previous step's global clip factor (1 before the first step), for <see cref="TableGradientClipping.PreviousStep"/>.</summary>
    private double previousFactor = 1.0;

    private readonly Layers.Kernels.Bf16TableCopy[] forwardCopies;

    /// <summary>Times this training's steps to choose where the kernels fork (<see cref="KernelForkPolicy.Auto"/>).</summary>
    private readonly ForkTuner forks = new();

    public ModelOptimizer(nn.Module model, TrainingOptions options)
    {
        this.options = options;
        var g = ParameterGroups.Of(model);
        var layers = ParameterGroups.TableLayers(model);
        tables = [.. g.Tables];
        tableGradients = layers.Count == tables.Length ? layers.Select(l => l.Gradient).ToArray() : [];
        foreach (var gradient in tableGradients)
            gradient.Attached = true;                                    // the fused backward writes in place for this optimizer
        forwardCopies = options.MixedPrecisionTables ? layers.Select(l => l.ForwardCopy).ToArray() : [];
        foreach (var copy in forwardCopies)
            copy.Requested = true;                                       // the training forward reads the bf16 copy (Bf16TableCopy)
        others = [.. g.Matrices, .. g.Vectors];
        var backbones = model.named_modules().Select(m => m.module).OfType<TransformerBackbone>().ToArray();
        embeddingGradients = backbones.Select(b => b.EmbeddingGradient).ToArray();
        foreach (var gradient in embeddingGradients)
            gradient.Attached = true;                                    // a sparse token lookup writes it in place (SparseEmbedding)
        otherGradients = others.Select(p => EmbeddingGradientOf(p, backbones)).ToArray();
        foldClipping = ManagedTables(g.Tables);
        TableMoments = options.TableMomentPrecision ?? DefaultMoments(model);
        tableOptimizer = New(g.Tables, options.TableWeightDecay, options.LazyTableUpdates, TableMoments == MomentPrecision.BFloat16);
        if (tableGradients.Length == tables.Length)
            tableOptimizer.RowSources = tableGradients;                  // lazy steps visit only the rows a small batch hit
        matrixOptimizer = New(g.Matrices, options.WeightDecay, lazy: false);
        matrixOptimizer.RowSources = otherGradients[..g.Matrices.Count];  // the embedding's dense step skips rows no batch has held
        vectorOptimizer = New(g.Vectors, 0.0, lazy: false);
        fuseTableUpdates = options.TableClippingRule != TableGradientClipping.Global && tableGradients.Length == tables.Length
            && tables.Length > 0 && foldClipping;
        training = KernelBuffers.Training();                             // last: a constructor that throws holds no lease
    }

    /// <summary>The precision the tables' moments are stored in (the option, or <see cref="DefaultMoments"/> when unset).</summary>
    public MomentPrecision TableMoments { get; }

    /// <summary>The moments' precision of a new run of <paramref name="model"/> whose option is unset:
    /// <see cref="TrainingOptions.DefaultTableMomentPrecision"/> when its tables take the managed CPU kernels (which round
    /// bf16 moments stochastically), else Float32 (torch's path rounds to nearest, which can freeze a slow moment).</summary>
    public static MomentPrecision DefaultMoments(nn.Module model) =>
        ManagedTables(ParameterGroups.Of(model).Tables) ? TrainingOptions.DefaultTableMomentPrecision : MomentPrecision.Float32;

    /// <summary>The gradient buffer of the backbone whose token embedding <paramref name="p"/> is, or null.</summary>
    private static unsafe TableGradient? EmbeddingGradientOf(Parameter p, IEnumerable<TransformerBackbone> backbones) =>
        backbones.FirstOrDefault(b => TensorMemory.Address(b.Embedding.weight!) == TensorMemory.Address(p))?.EmbeddingGradient;

    /// <summary>Whether there are tables and every one takes the managed CPU kernels (fused kernels on, CPU fp32).</summary>
    private static bool ManagedTables(IReadOnlyCollection<Parameter> tables) =>
        tables.Count > 0 && KernelSettings.Current.UseFusedKernels && tables.All(FusedMemoryGather.IsSupported);

    private FusedAdamW New(IEnumerable<Parameter> parameters, double weightDecay, bool lazy, bool bf16Moments = false) =>
        new(parameters, options.Beta1, options.Beta2, options.Epsilon, weightDecay, lazy, bf16Moments);

    /// <summary>Clears all gradients (sets them to none); given the coming <paramref name="step"/>, also arms the tables'
    /// update for the backward to apply in place when the clipping rule allows (<see cref="TableUpdate"/>).</summary>
    public void ZeroGrad(int? step = null)
    {
        forks.Begin();                                                   // a step starts here and ends with Step
        tableOptimizer.ZeroGrad();
        matrixOptimizer.ZeroGrad();
        vectorOptimizer.ZeroGrad();
        foreach (var gradient in tableGradients)
            gradient.Update = null;
        if (step is not { } s || !fuseTableUpdates)
            return;
        double lr = RateAt(s, table: true), scale = TableScale();
        for (int i = 0; i < tables.Length; i++)
            tableGradients[i].Update = tableOptimizer.Arm(i, lr, scale);
    }

    /// <summary>The tables' gradient scale known before the backward: the previous step's factor, or 1.</summary>
    private double TableScale() => options.GradientClip > 0 && options.TableClippingRule == TableGradientClipping.PreviousStep ? previousFactor : 1.0;

    /// <summary>Clips, sets the scheduled learning rates and applies one AdamW step; returns the gradient norm.</summary>
    /// <remarks>With the fused table optimizer, clipping makes no pass of its own over the table gradients: their
    /// norms come from the fused backward (<see cref="TableGradient"/>) and the clip factor is applied inside the
    /// optimizer's single pass. Same result as <c>clip_grad_norm_</c> followed by AdamW, within float rounding.</remarks>
    public double Step(int step)
    {
        double norm = double.NaN;
        double tableScale = 1.0;
        if (options.GradientClip > 0)
            (norm, tableScale) = Clip(options.GradientClip);
        tableOptimizer.Step(RateAt(step, table: true), tableScale);
        foreach (var gradient in tableGradients)
            gradient.Update = null;
        matrixOptimizer.Step(RateAt(step, table: false));
        vectorOptimizer.Step(RateAt(step, table: false));
        forks.End();
        return norm;
    }

    /// <summary>
    /// Global norm as clip_grad_norm_ computes it (which is not used: in TorchSharp 0.107 it leaks native memory every
    /// step). Scales the dense gradients in place; the tables' factor is returned to be folded into their update, or
    /// applied in place too when the fused kernels are off.
    /// </summary>
    private (double Norm, double TableScale) Clip(double maxNorm)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        double squared = 0;
        for (int i = 0; i < tables.Length; i++)
        {
            if (i < tableGradients.Length && tableGradients[i].Update is { Applied: true } applied)
                squared += applied.SquaredNorm;                                 // updated inside the backward, norm measured there
            else if (i < tableGradients.Length && tableGradients[i].TryTakeSquaredNorm(tables[i], out double measured))
                squared += measured;
            else if (tables[i].grad is { } g && !g.IsInvalid)
                squared += Math.Pow(g.norm().to(ScalarType.Float64).item<double>(), 2);
        }
        var dense = new List<Tensor>();
        var sparse = new List<int>();                                           // others whose norm their sparse backward measured
        for (int i = 0; i < others.Length; i++)
        {
            if (others[i].grad is not { } g || g.IsInvalid)
                continue;
            if (otherGradients[i] is { } sink && sink.TryTakeSquaredNorm(others[i], out double measuredSquare))
            {
                squared += measuredSquare;
                sparse.Add(i);
            }
            else
                dense.Add(g);
        }
        if (dense.Count > 0)
        {
            var norms = stack(dense.Select(g => g.norm().to(ScalarType.Float64)).ToArray());
            squared += norms.mul(norms).sum().item<double>();                   // not square() or pow(2): TorchSharp makes an implicit scalar there
        }
        double norm = Math.Sqrt(squared);
        double coefficient = Math.Min(1.0, maxNorm / (norm + 1e-6));
        // The tables' factor by the clipping rule; this step's global factor is the next step's "previous" one.
        double tableFactor = options.TableClippingRule switch
        {
            TableGradientClipping.PreviousStep => previousFactor,
            TableGradientClipping.None => 1.0,
            _ => coefficient,
        };
        previousFactor = coefficient;
        if (coefficient < 1.0)
        {
            using Scalar factor = coefficient;               // kept alive across the native calls (Runtime.LiveScalars)
            foreach (var g in dense) g.mul_(factor);
            foreach (int i in sparse) otherGradients[i]!.Scale(others[i], coefficient);   // its non-zero rows only
        }
        if (tableFactor >= 1.0) return (norm, 1.0);
        if (foldClipping) return (norm, tableFactor);
        using Scalar tablesFactor = tableFactor;
        foreach (var t in tables)
            if (t.grad is { } g && !g.IsInvalid) g.mul_(tablesFactor);
        return (norm, 1.0);
    }

    /// <summary>The dense learning rate at <paramref name="step"/>.</summary>
    public double LearningRateAt(int step) => RateAt(step, table: false);

    /// <summary>The tables' learning rate at <paramref name="step"/> (their own warm-up when <see cref="TrainingOptions.TableWarmupSteps"/> is set).</summary>
    internal double TableLearningRateAt(int step) => RateAt(step, table: true);

    private double RateAt(int step, bool table) => table
        ? LearningRateSchedule.At(step, options.TableLearningRate, options.TableWarmupSteps ?? options.WarmupSteps, options.MaxSteps, options.MinLearningRateRatio)
        : LearningRateSchedule.At(step, options.LearningRate, options.WarmupSteps, options.MaxSteps, options.MinLearningRateRatio);

    /// <summary>Writes the three groups' states (moments and step counts) for a checkpoint.</summary>
    public void SaveState(BinaryWriter writer)
    {
        foreach (var group in new[] { tableOptimizer, matrixOptimizer, vectorOptimizer }) group.SaveState(writer);
        if (options.TableClippingRule == TableGradientClipping.PreviousStep)
            writer.Write(previousFactor);                                       // the next step's table clip factor
    }

    /// <summary>Restores what <see cref="SaveState"/> wrote (same model, same parameter groups).</summary>
    public void LoadState(BinaryReader reader)
    {
        foreach (var group in new[] { tableOptimizer, matrixOptimizer, vectorOptimizer }) group.LoadState(reader);
        if (options.TableClippingRule == TableGradientClipping.PreviousStep)
            previousFactor = reader.ReadDouble();
    }

    /// <summary>Disposes the optimizers' states, detaches the layers' gradient buffers and frees the kernels' idle
    /// reused blocks (<see cref="KernelBuffers"/>: kept between steps, not after training).</summary>
    public void Dispose()
    {
        foreach (var gradient in tableGradients)
            gradient.Attached = false;
        foreach (var gradient in embeddingGradients)
        {
            gradient.Attached = false;
            gradient.Dispose();                                          // [V, d] back; a later run rents a new one
        }
        foreach (var copy in forwardCopies)
        {
            copy.Requested = false;
            copy.Dispose();                                              // its memory back; a later run rebuilds it
        }
        tableOptimizer.Dispose();
        matrixOptimizer.Dispose();
        vectorOptimizer.Dispose();
        forks.Stop();
        training.Dispose();                                              // the last training's end frees the kernels' idle blocks
    }
}
