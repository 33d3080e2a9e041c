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
/// <c>backward()</c> as an ordinary exception. <see cref="Backward"/> (the training loop's call) replaces that error with
/// the kept one.</para>
/// </remarks>
internal static class BackwardGuard
{
    private const string InputsKey = "guard.tensorInputs";
    private static Exception? failure;

    /// <summary>Records which forward arguments are tensors, as TorchSharp counts the backward's results.</summary>
    public static void RecordInputs(autograd.AutogradContext ctx, object[] vars) =>
        ctx.save_data(InputsKey, vars.Select(v => v is Tensor t && !t.IsInvalid).ToArray());

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
            Interlocked.Exchange(ref failure, kept);
            Trace.TraceError(kept.Message);
            var tensorInputs = (bool[])ctx.get_data(InputsKey);
            return tensorInputs.Select(isTensor => isTensor ? Refused() : null!).ToList();
        }
    }

    /// <summary><c>loss.backward()</c>, throwing the kept exception of a guarded backward that failed inside it.</summary>
    public static void Backward(Tensor loss)
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

    /// <summary>The kept exception of the last guarded backward that failed, cleared by reading it (tests).</summary>
    internal static Exception? Take() => Interlocked.Exchange(ref failure, null);

    /// <summary>A gradient no input can take: more dimensions than any input of these functions has.</summary>
    private static Tensor Refused() => zeros([1, 1, 1, 1, 1, 1, 1, 1, 2]);
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
