using System.Diagnostics;
using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// Keeps an exception thrown inside one of this library's managed backwards from ending the process.
/// </summary>
/// <remarks>
/// <para>libtorch calls a TorchSharp custom function's backward from native code, and TorchSharp 0.107 does not catch what
/// it throws, so any exception there (a table modified in place between forward and backward, which fails the saved
/// tensors' version check; an allocation failure) crashed the process. <see cref="GuardedFunction{T}"/> and
/// <see cref="GuardedMultiFunction{T}"/> catch it, keep it, and hand autograd gradients of an impossible shape at every
/// tensor input instead: libtorch then fails the backward with its own "invalid gradient" error, which reaches the caller of
/// <c>backward()</c> as an ordinary exception. <see cref="Scope.Backward"/> (the training loop's call) replaces that error
/// with the kept one.</para>
/// <para>Where a failure is kept: each guarded forward records the <see cref="Scope"/> open on its thread (the training loop
/// opens one per step, around its forward and backward), and a failing backward keeps its exception in that scope, so
/// trainings running at the same time on different threads each get their own failure and never another's. The scope is
/// recorded at the forward, not looked up at the backward, because the backward may run on another thread (libtorch's
/// device threads on CUDA). A forward outside any scope (a user's own <c>backward()</c>), or a backward run after its
/// scope closed, keeps its failure for <see cref="Take"/> only, which no training reads.</para>
/// </remarks>
internal static class BackwardGuard
{
    private const string RecordKey = "guard.record";
    private static readonly AsyncLocal<Scope?> Current = new();
    private static Exception? unscoped;

    /// <summary>Records which forward arguments are tensors, as TorchSharp counts the backward's results, and the scope open
    /// on this thread (null: none).</summary>
    public static void RecordInputs(autograd.AutogradContext ctx, object[] vars) =>
        ctx.save_data(RecordKey, new Record(vars.Select(v => v is Tensor t && !t.IsInvalid).ToArray(), Current.Value));

    /// <summary>Opens a scope on this thread: the failures of guarded backwards whose forwards run until it is disposed are
    /// kept for its <see cref="Scope.Backward"/>. Dispose it on the thread that opened it.</summary>
    public static Scope Open() => new();

    /// <summary>Runs <paramref name="backward"/>; on an exception keeps it and returns gradients autograd refuses.</summary>
    public static List<Tensor> Run(autograd.AutogradContext ctx, string name, Func<List<Tensor>> backward)
    {
        try
        {
            return backward();
        }
        catch (Exception e)
        {
            var kept = new InvalidOperationException($"The backward of {name} failed: {e.Message}", e);
            var record = (Record)ctx.get_data(RecordKey);
            if (record.Scope is not { } scope || !scope.Keep(kept))
                Interlocked.Exchange(ref unscoped, kept);
            Trace.TraceError(kept.Message);
            return record.TensorInputs.Select(isTensor => isTensor ? Refused() : null!).ToList();
        }
    }

    /// <summary>The kept exception of the last guarded backward outside any open scope that failed, cleared by reading it
    /// (tests).</summary>
    internal static Exception? Take() => Interlocked.Exchange(ref unscoped, null);

    /// <summary>A gradient no input can take: more dimensions than any input of these functions has.</summary>
    private static Tensor Refused() => zeros([1, 1, 1, 1, 1, 1, 1, 1, 2]);

    /// <summary>What a guarded forward records in its autograd context.</summary>
    private sealed record Record(bool[] TensorInputs, Scope? Scope);

    /// <summary>One training step's claim on the failures of the guarded backwards whose forwards ran inside it
    /// (<see cref="Open"/>); nested scopes are allowed and restore the outer one when disposed.</summary>
    public sealed class Scope : IDisposable
    {
        private readonly Scope? outer;
        private Exception? failure;
        private int open = 1;

        internal Scope()
        {
            outer = Current.Value;
            Current.Value = this;
        }

        /// <summary><c>loss.backward()</c>, throwing the kept exception of a guarded backward of this scope that failed
        /// inside it (the backward's own error otherwise).</summary>
        public void Backward(Tensor loss)
        {
            Interlocked.Exchange(ref failure, null);
            try
            {
                loss.backward();
            }
            catch (ExternalException) when (Volatile.Read(ref failure) is not null)
            {
                var kept = Interlocked.Exchange(ref failure, null)!;
                throw new InvalidOperationException(kept.Message, kept.InnerException);
            }
        }

        /// <summary>Keeps the first failure while the scope is open; false once it is closed.</summary>
        internal bool Keep(Exception kept)
        {
            if (Volatile.Read(ref open) == 0)
                return false;
            Interlocked.CompareExchange(ref failure, kept, null);
            return true;
        }

        /// <summary>Closes the scope: later failures of its graphs go to <see cref="Take"/>, and the thread's outer scope
        /// is current again.</summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref open, 0) == 1 && Current.Value == this)
                Current.Value = outer;
        }
    }
}

/// <summary>A single-output custom autograd function whose backward goes through <see cref="BackwardGuard"/>.</summary>
internal abstract class GuardedFunction<T> : autograd.SingleTensorFunction<T> where T : GuardedFunction<T>, new()
{
    public sealed override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        BackwardGuard.RecordInputs(ctx, vars);
        return ForwardPass(ctx, vars);
    }

    public sealed override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output) =>
        BackwardGuard.Run(ctx, Name, () => BackwardPass(ctx, grad_output));

    /// <summary>The function's forward (TorchSharp's <c>forward</c>).</summary>
    protected abstract Tensor ForwardPass(autograd.AutogradContext ctx, object[] vars);

    /// <summary>The function's backward (TorchSharp's <c>backward</c>): one gradient per forward argument.</summary>
    protected abstract List<Tensor> BackwardPass(autograd.AutogradContext ctx, Tensor gradOutput);
}

/// <summary>A several-output custom autograd function whose backward goes through <see cref="BackwardGuard"/>.</summary>
internal abstract class GuardedMultiFunction<T> : autograd.MultiTensorFunction<T> where T : GuardedMultiFunction<T>, new()
{
    public sealed override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        BackwardGuard.RecordInputs(ctx, vars);
        return ForwardPass(ctx, vars);
    }

    public sealed override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> grad_outputs) =>
        BackwardGuard.Run(ctx, Name, () => BackwardPass(ctx, grad_outputs));

    /// <summary>The function's forward (TorchSharp's <c>forward</c>).</summary>
    protected abstract List<Tensor> ForwardPass(autograd.AutogradContext ctx, object[] vars);

    /// <summary>The function's backward (TorchSharp's <c>backward</c>): one gradient per forward argument.</summary>
    protected abstract List<Tensor> BackwardPass(autograd.AutogradContext ctx, List<Tensor> gradOutputs);
}
