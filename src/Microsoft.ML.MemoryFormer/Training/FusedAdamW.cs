using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// AdamW in one pass per element: parameter, gradient and both moments are read once and parameter and moments
/// written once (the row kernel is <see cref="AdamWKernel"/>), instead of the five or six tensor-op passes of
/// <c>torch.optim.AdamW</c>, which on the CPU is bound by that memory traffic. The trainer uses one instance per
/// parameter group (tables, matrices, vectors). It also replaces TorchSharp 0.107's <c>optim.AdamW</c>, whose
/// step was measured to grow the process by about half the parameters' size per step (an unreleased native
/// buffer), which ended long runs.
/// </summary>
/// <remarks>
/// <para>Dense mode (the default) follows <c>torch.optim.AdamW</c> element for element, with the same fp32
/// operation order: <c>p ← p·(1 − lr·λ)</c> (decoupled weight decay), <c>m ← β₁m + (1 − β₁)g</c>,
/// <c>v ← β₂v + (1 − β₂)g²</c>, <c>p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)</c>, with t counted
/// per parameter. A parameter whose <c>grad</c> is undefined is skipped, as torch does.</para>
/// <para>With <see cref="SkipUntouchedRows"/> ("lazy" Adam) a table row (first dimension) whose gradient is all
/// zero this step is left bit-for-bit untouched: no weight decay, no moment decay and no parameter update. This is
/// not the dense AdamW of the paper and the official code (docs/model-spec.md, "Training"): there, every row decays by (1 − lr·λ) every step and rows
/// hit in earlier steps keep moving on their momentum, so rarely hit rows shrink toward zero; under lazy Adam a
/// row changes only in the steps that hit it, so it neither decays nor coasts while unused, and its moments then
/// describe only the steps that touched it. The bias correction still uses the parameter's global step count
/// (as TensorFlow's LazyAdam does). At training batch sizes most rows are hit every step (a batch of N tokens makes N
/// draws from each table's 2^τ rows), so the mode mainly helps small batches and fine-tuning.</para>
/// <para>With bf16 moments (<see cref="Bf16Moments"/>, <c>TrainingOptions.TableMomentPrecision</c>) the moments are stored
/// as stochastically rounded bfloat16 and the update is otherwise the same fp32 arithmetic; it then no longer matches
/// torch bit for bit.</para>
/// <para>CPU fp32 contiguous parameters take the managed SIMD kernel (unless <c>TorchRuntime.UseFusedKernels</c> is
/// off); any other parameter is updated with equivalent torch ops.</para>
/// </remarks>
internal sealed class FusedAdamW : IDisposable
{
    private readonly Parameter[] _parameters;
    private readonly Tensor[] _expAvg;
    private readonly Tensor[] _expAvgSq;
    private readonly long[] _steps;
    private TableUpdate?[]? _armed;
    private bool[]?[]? _active;
    private bool _disposed;

    /// <summary>Creates the optimizer and its zero moments (one pair per parameter, same shape and device).</summary>
    /// <param name="parameters">The tables, each [R, h] (any shape works; rows are the first dimension).</param>
    /// <param name="beta1">β₁, the first-moment decay.</param>
    /// <param name="beta2">β₂, the second-moment decay.</param>
    /// <param name="eps">ε added to the bias-corrected root of the second moment.</param>
    /// <param name="weightDecay">λ, decoupled weight decay (torch's AdamW default is 0.01).</param>
    /// <param name="skipUntouchedRows">Lazy mode, see <see cref="SkipUntouchedRows"/>.</param>
    /// <param name="bf16Moments">Store the moments as bfloat16 with stochastic rounding (<see cref="Bf16Moments"/>).</param>
    public FusedAdamW(
        IEnumerable<Parameter> parameters,
        double beta1 = 0.9,
        double beta2 = 0.999,
        double eps = 1e-8,
        double weightDecay = 0.01,
        bool skipUntouchedRows = false,
        bool bf16Moments = false)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (beta1 is < 0 or >= 1 || beta2 is < 0 or >= 1)
            throw new ArgumentOutOfRangeException(nameof(beta1), "Betas must lie in [0, 1).");
        _parameters = parameters.ToArray();
        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
        WeightDecay = weightDecay;
        SkipUntouchedRows = skipUntouchedRows;
        _steps = new long[_parameters.Length];
        using (no_grad())
        {
            var dtype = bf16Moments ? ScalarType.BFloat16 : (ScalarType?)null;
            _expAvg = _parameters.Select(p => zeros_like(p, dtype: dtype).DetachFromDisposeScope()).ToArray();
            _expAvgSq = _parameters.Select(p => zeros_like(p, dtype: dtype).DetachFromDisposeScope()).ToArray();
        }
    }

    /// <summary>β₁.</summary>
    public double Beta1 { get; }

    /// <summary>β₂.</summary>
    public double Beta2 { get; }

    /// <summary>ε.</summary>
    public double Eps { get; }

    /// <summary>λ, the decoupled weight decay.</summary>
    public double WeightDecay { get; }

    /// <summary>Lazy Adam: leave rows whose gradient is all zero completely untouched (see the class remarks).</summary>
    public bool SkipUntouchedRows { get; set; }

    /// <summary>
    /// Optional, one per parameter (null entries allowed): the Memory Layers' gradient buffers. In lazy mode a parameter
    /// whose gradient is its buffer with known non-zero rows (<see cref="TableGradient.NonZeroRowsOf"/>) is stepped over
    /// those rows only — the same result, since every other row is zero and skipped, without reading the whole table.
    /// </summary>
    public IReadOnlyList<TableGradient?>? RowSources { get; set; }

    /// <summary>
    /// The rows of parameter <paramref name="index"/> a dense step must update in full, given the rows its gradient may be
    /// non-zero in this step (<paramref name="touched"/>, from its <see cref="RowSources"/> entry): every row whose moments
    /// may be non-zero, i.e. every row some step's gradient has touched. The others have a zero gradient and zero moments,
    /// and dense AdamW only decays them (<see cref="AdamWKernel.StepActive"/>). Built from the moments themselves the first
    /// time (and after a restore or a step whose touched rows were unknown), so it holds whatever came before. Null for bf16
    /// moments, which take the ordinary step.
    /// </summary>
    internal bool[]? ActiveRows(int index, int[] touched)
    {
        var m = _expAvg[index];
        if (!TensorMemory.IsCpuFloat32(m) || !m.is_contiguous() || !_expAvgSq[index].is_contiguous() || m.dim() == 0)
            return null;
        _active ??= new bool[]?[_parameters.Length];
        var active = _active[index] ??= AdamWKernel.NonZeroMomentRows(m, _expAvgSq[index]);
        foreach (int r in touched)
            active[r] = true;
        return active;
    }

    /// <summary>The parameters this optimizer updates.</summary>
    public IReadOnlyList<Parameter> Parameters => _parameters;

    /// <summary>The first moment of parameter <paramref name="index"/> (for checkpoints and tests).</summary>
    public Tensor ExpAvg(int index) => _expAvg[index];

    /// <summary>The second moment of parameter <paramref name="index"/>.</summary>
    public Tensor ExpAvgSq(int index) => _expAvgSq[index];

    /// <summary>The number of steps taken by parameter <paramref name="index"/>.</summary>
    public long StepCount(int index) => _steps[index];

    /// <summary>Writes the state (per parameter: step count, first and second moments) for a checkpoint.</summary>
    public void SaveState(BinaryWriter writer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        writer.Write(_parameters.Length);
        for (int i = 0; i < _parameters.Length; i++)
        {
            writer.Write(_steps[i]);
            _expAvg[i].Save(writer);
            _expAvgSq[i].Save(writer);
        }
    }

    /// <summary>Restores what <see cref="SaveState"/> wrote, into this optimizer's moments (same parameters, same shapes).</summary>
    /// <exception cref="InvalidDataException">The state belongs to other parameters.</exception>
    public void LoadState(BinaryReader reader)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int count = reader.ReadInt32();
        if (count != _parameters.Length)
            throw new InvalidDataException($"The optimizer state holds {count} parameters; this optimizer has {_parameters.Length}.");
        using var guard = no_grad();
        _active = null;                                                     // rebuilt from the restored moments
        for (int i = 0; i < count; i++)
        {
            _steps[i] = reader.ReadInt64();
            _expAvg[i].Load(reader);
            _expAvgSq[i].Load(reader);
        }
    }

    /// <summary>
    /// This step's update of parameter <paramref name="index"/> as a <see cref="TableUpdate"/> for the backward to apply
    /// in place (<see cref="TableGradient.Update"/>), or null where only this optimizer can take it (lazy mode, fused
    /// kernels off, a parameter the kernel does not take). fp32 and bf16 moments both fuse (the row pass takes bf16 ones
    /// with the rounding seed this optimizer would use). <see cref="Step"/> then counts the step of an
    /// applied update and skips the parameter; one not applied leaves its gradient for <see cref="Step"/> as usual.
    /// </summary>
    /// <param name="index">The parameter.</param>
    /// <param name="lr">The learning rate of the coming step.</param>
    /// <param name="gradScale">The gradient scale of the coming step; <see cref="Step"/> must get the same one.</param>
    public TableUpdate? Arm(int index, double lr, double gradScale)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var p = _parameters[index];
        bool bf16 = _expAvg[index].dtype == ScalarType.BFloat16 && _expAvg[index].device_type == DeviceType.CPU && _expAvg[index].is_contiguous();
        if (SkipUntouchedRows || !KernelSettings.Current.UseFusedKernels || !TensorMemory.IsCpuFloat32(p) || !p.is_contiguous()
            || !(TensorMemory.IsCpuFloat32(_expAvg[index]) || bf16))
            return null;
        long t = _steps[index] + 1;
        var update = new TableUpdate(_expAvg[index], _expAvgSq[index],
            new AdamWKernel.Coefficients(lr, Beta1, Beta2, Eps, WeightDecay, t, gradScale), Bf16Moments.Salt(t, index));
        _armed ??= new TableUpdate?[_parameters.Length];
        _armed[index] = update;
        return update;
    }

    /// <summary>One AdamW step with learning rate <paramref name="lr"/> over every parameter that has a gradient.</summary>
    /// <param name="lr">The learning rate of this step.</param>
    /// <param name="gradScale">Factor applied to every gradient as it is read (gradient clipping folded into the same
    /// pass); the stored gradient is not changed.</param>
    public void Step(double lr, double gradScale = 1.0)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var guard = no_grad();
        var armed = _armed;
        _armed = null;
        for (int i = 0; i < _parameters.Length; i++)
        {
            if (armed?[i] is { Applied: true })
            {
                ++_steps[i];                                                // taken inside the backward (Arm)
                continue;
            }
            var p = _parameters[i];
            using var grad = p.grad;
            if (grad is null || grad.IsInvalid)
                continue;
            long t = ++_steps[i];
            var c = new AdamWKernel.Coefficients(lr, Beta1, Beta2, Eps, WeightDecay, t, gradScale);
            int[]? rows = SkipUntouchedRows && RowSources is { } sources && i < sources.Count ? sources[i]?.NonZeroRowsOf(p) : null;
            bool managed = KernelSettings.Current.UseFusedKernels && AdamWKernel.IsSupported(p, grad, _expAvg[i]);
            int[]? touched = !SkipUntouchedRows && managed && RowSources is { } known && i < known.Count ? known[i]?.NonZeroRowsOf(p) : null;
            if (managed && touched is not null && ActiveRows(i, touched) is { } active)
            {
                AdamWKernel.StepActive(p, grad, _expAvg[i], _expAvgSq[i], c, active);    // dense AdamW, quiet rows only decayed
                TableVersion.Bump(p);
                continue;
            }
            if (_active is not null)
                _active[i] = null;                                          // rows touched now are unknown: rebuilt if needed
            if (managed)
            {
                if (rows is not null)
                    AdamWKernel.StepRows(p, grad, _expAvg[i], _expAvgSq[i], c, Bf16Moments.Salt(t, i), rows);
                else
                    AdamWKernel.Step(p, grad, _expAvg[i], _expAvgSq[i], c, Bf16Moments.Salt(t, i), SkipUntouchedRows);
                TableVersion.Bump(p);                                       // a raw write: a Memory Layer's bf16 copy is stale (Bf16TableCopy)
            }
            else if (_expAvg[i].dtype == ScalarType.BFloat16)
                StepTorchBf16(p, grad, _expAvg[i], _expAvgSq[i], c);
            else
                StepTorch(p, grad, _expAvg[i], _expAvgSq[i], c);
        }
    }

    /// <summary>Clears the gradients; by default sets them to undefined so the next backward allocates fresh ones
    /// instead of accumulating into the old ones (saves a zero-fill and an add pass over the tables).</summary>
    public void ZeroGrad(bool setToNone = true)
    {
        foreach (var p in _parameters)
        {
            if (setToNone)
            {
                p.grad = null;
                continue;
            }
            using var grad = p.grad;
            grad?.zero_();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        foreach (var t in _expAvg.Concat(_expAvgSq))
            t.Dispose();
    }

    /// <summary>
    /// <see cref="StepTorch"/> with bf16 moments: the update runs on fp32 copies, and the moments are stored back
    /// rounded to nearest (torch's copy), not stochastically as in the managed kernel.
    /// </summary>
    private void StepTorchBf16(Tensor p, Tensor grad, Tensor m16, Tensor v16, AdamWKernel.Coefficients c)
    {
        using var scope = NewDisposeScope();
        var m = m16.to(p.dtype);
        var v = v16.to(p.dtype);
        StepTorch(p, grad, m, v, c);
        m16.copy_(m);
        v16.copy_(v);
    }

    /// <summary>The same update with torch ops, for CUDA or non-fp32 parameters.</summary>
    private void StepTorch(Tensor p, Tensor grad, Tensor m, Tensor v, AdamWKernel.Coefficients c)
    {
        using var scope = NewDisposeScope();
        // Every scalar is a named local, disposed at the end: an implicit one could be finalized while an op reads it (LiveScalars).
        using Scalar gradScale = c.GradScale, decay = c.Decay, beta1 = c.Beta1, beta2 = c.Beta2, eps = c.Eps,
            oneMinusBeta1 = 1 - Beta1, oneMinusBeta2 = 1 - Beta2, bias2 = c.Bias2SqrtDouble, negStep = -c.StepSize,
            weightDecay = 1 - (c.Lr * c.WeightDecay), beta1Double = Beta1, beta2Double = Beta2;
        if (c.GradScale != 1f)
            grad = grad.mul(gradScale);
        if (SkipUntouchedRows && p.dim() > 0)
        {
            var g2 = grad.reshape(grad.shape[0], -1);
            var touched = g2.ne(LiveScalars.ZeroInteger).any(1);                       // [R]
            var mask = touched.view([p.shape[0], .. Enumerable.Repeat(1L, (int)p.dim() - 1)]);
            var pNew = p.mul(decay);
            var mNew = m.mul(beta1).add_(grad, alpha: oneMinusBeta1);
            var vNew = v.mul(beta2).addcmul_(grad, grad, value: oneMinusBeta2);
            var denom = vNew.sqrt().div(bias2).add_(eps, LiveScalars.One);
            pNew.addcdiv_(mNew, denom, value: negStep);
            p.copy_(where(mask, pNew, p));
            m.copy_(where(mask, mNew, m));
            v.copy_(where(mask, vNew, v));
            return;
        }
        p.mul_(weightDecay);
        m.mul_(beta1Double).add_(grad, alpha: oneMinusBeta1);
        v.mul_(beta2Double).addcmul_(grad, grad, value: oneMinusBeta2);
        var d = v.sqrt().div(bias2).add_(eps, LiveScalars.One);
        p.addcdiv_(m, d, value: negStep);
    }
}
