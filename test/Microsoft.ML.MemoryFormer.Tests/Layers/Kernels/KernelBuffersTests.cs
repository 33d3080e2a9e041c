using Microsoft.ML.MemoryFormer.Layers.Kernels;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// <see cref="KernelBuffers"/>: a kernel output lives on a library block that returns for reuse only when libtorch frees the
/// tensor's storage, so reuse never aliases a live tensor. Sizes here are odd on purpose: no other test asks for them.
/// </summary>
public unsafe class KernelBuffersTests
{
    [Fact]
    public void A_block_is_shared_with_its_tensor_and_reused_once_the_storage_is_freed()
    {
        using var training = KernelBuffers.Training();                        // blocks are used only while a training runs
        const long rows = 131, width = 257;                                    // 134,668 bytes: above MinBytes
        for (int attempt = 0; ; attempt++)
        {
            long releases = KernelBuffers.Releases;                            // a training ending in parallel frees idle blocks
            nint first;
            using (var t = KernelBuffers.Empty(rows, width))
            {
                first = (nint)TensorMemory.Floats(t);
                t.fill_(3f);
                Assert.Equal(3f, ((float*)first)[rows * width - 1]);           // the tensor writes the block itself
            }
            using var again = KernelBuffers.Empty(rows, width);
            if (KernelBuffers.Releases != releases && attempt < 10)
                continue;
            Assert.Equal(first, (nint)TensorMemory.Floats(again));
            return;
        }
    }

    [Fact]
    public void A_view_keeps_the_block_from_being_handed_out_again()
    {
        using var training = KernelBuffers.Training();                        // blocks are used only while a training runs
        const long rows = 137, width = 263;
        var t = KernelBuffers.Empty(rows, width);
        nint first = (nint)TensorMemory.Floats(t);
        using var view = t.view(-1);
        t.Dispose();                                                           // the view still holds the storage
        using var other = KernelBuffers.Empty(rows, width);
        Assert.NotEqual(first, (nint)TensorMemory.Floats(other));
    }

    [Fact]
    public void Zeros_clears_a_reused_block()
    {
        using var training = KernelBuffers.Training();                        // blocks are used only while a training runs
        const long rows = 139, width = 269;
        using (var t = KernelBuffers.Empty(rows, width))
            t.fill_(5f);
        using var z = KernelBuffers.Zeros(rows, width);                        // most likely the block just filled
        Assert.Equal(0f, z.abs().max().item<float>());
    }

    [Fact]
    public void Small_tensors_come_from_torch()
    {
        using var training = KernelBuffers.Training();                        // blocks are used only while a training runs
        using var t = KernelBuffers.Empty(3, 5);
        Assert.Equal(new long[] { 3, 5 }, t.shape);
        Assert.Equal(ScalarType.Float32, t.dtype);
        using var r = KernelBuffers.EmptyInt64(150, 149);
        Assert.Equal(ScalarType.Int64, r.dtype);
    }

    [Fact]
    public void Without_a_running_training_kernel_outputs_come_from_torch()
    {
        const long rows = 149, width = 271;
        for (int attempt = 0; ; attempt++)
        {
            long made = KernelBuffers.TensorsMade;                             // another test's training may be running meanwhile
            using (var t = KernelBuffers.Empty(rows, width))
                Assert.Equal(new long[] { rows, width }, t.shape);
            if (KernelBuffers.TensorsMade == made)
                return;
            Assert.True(attempt < 600, "kernel outputs kept coming from blocks with no training running");
            Thread.Sleep(50);
        }
    }
}
