using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Runtime;

/// <summary>
/// Long-lived torch scalars for hot paths. TorchSharp 0.107's <see cref="Scalar"/> holds a raw native handle that its
/// finalizer frees, so an implicit scalar — the <c>alpha = 1</c> behind <c>tensor + tensor</c>, or a double in
/// <c>tensor / 2.0</c> — can be collected while the native op still reads it. Deep into long trainings (where the
/// fused kernels make garbage collections frequent) that surfaced as a rare "Expected false to be true" from
/// <c>c10::Scalar::toFloat</c>. Scalars here live as long as the process, or as long as the module that owns them.
/// </summary>
internal static class LiveScalars
{
    /// <summary>The scalar 1, for the alpha of additions.</summary>
    public static readonly Scalar One = 1.0;

    /// <summary>The scalar −1.</summary>
    public static readonly Scalar MinusOne = -1.0;

    /// <summary>The scalar 0.</summary>
    public static readonly Scalar Zero = 0.0;

    /// <summary>The integer scalar 1, the alpha of additions to int64 tensors (which refuse a floating-point alpha).</summary>
    public static readonly Scalar OneInteger = 1L;

    /// <summary>The integer scalar −1, for int64 tensors (a double scalar would promote them to float).</summary>
    public static readonly Scalar MinusOneInteger = -1L;

    /// <summary>The integer scalar 0, for int64 tensors.</summary>
    public static readonly Scalar ZeroInteger = 0L;

    /// <summary>The scalar −∞, for masking logits.</summary>
    public static readonly Scalar NegativeInfinity = double.NegativeInfinity;

    /// <summary>a + b without an implicit, collectable alpha scalar.</summary>
    public static Tensor Add(Tensor a, Tensor b) => a.add(b, One);

    /// <summary>a + b for a scalar b, without an implicit, collectable alpha scalar.</summary>
    public static Tensor Add(Tensor a, Scalar b) => a.add(b, One);

    /// <summary>a − b without an implicit, collectable alpha scalar.</summary>
    public static Tensor Subtract(Tensor a, Tensor b) => a.add(b, MinusOne);
}
