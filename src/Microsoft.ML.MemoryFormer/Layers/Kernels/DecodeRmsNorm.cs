namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>An <see cref="RmsNorm"/> over one row [d] as raw memory, for the fused decode blocks.</summary>
internal sealed unsafe class DecodeRmsNorm(RmsNorm norm, int width)
{
    private readonly float* gain = TensorMemory.Floats(norm.Weight);
    private readonly float epsilon = (float)norm.Epsilon;

    /// <summary>y [d] = RMSNorm(x [d]); keeps the norm's gain alive while it runs.</summary>
    public void Apply(float* x, float* y)
    {
        VectorKernels.RmsNorm(x, gain, width, epsilon, y);
        GC.KeepAlive(norm);
    }
}
