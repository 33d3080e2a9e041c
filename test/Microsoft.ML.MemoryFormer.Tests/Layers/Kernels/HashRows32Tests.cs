using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// The fused hash's int32 rows (<see cref="KernelSettings.HashWritesRows32"/>): the array equals the int64 rows narrowed, a gather takes
/// it once and only over tables of exactly K·2^τ rows, and a Memory Layer's training call gives the same bytes with it as with the
/// gather's own copy.
/// </summary>
public class HashRows32Tests
{
    [Theory]
    [InlineData(37, 5, 4)]                                                // scalar tail only
    [InlineData(301, 20, 8)]                                              // one 16-wide block and a tail, several ranges
    [InlineData(64, 6, 10)]                                               // the Memory Block's τ + 2 = 10
    public void The_hash_writes_its_rows_as_int32_too(int n, int k, int bits)
    {
        using var scope = NewDisposeScope();
        var x = randn([n, k * bits], generator: new Generator(3));
        var result = SignHashKernel.Run(x, bits, l1Scaled: true, 1f, withJacobian: false, rows32: true);
        var rows32 = result.Rows32!;
        Assert.True(rows32.Chunked);
        Assert.Equal(n * k, rows32.Count);
        var expected = result.Rows.data<long>().ToArray();
        Assert.Equal(expected.Select(v => (int)v), rows32.Array!.Take(n * k));
        Assert.Null(rows32.Take((k << bits) + 1, k));                         // another table size: refused, array given back
        Assert.Null(rows32.Array);
        Assert.Null(rows32.Take(k << bits, k));                               // once only
        var fresh = SignHashKernel.Run(x, bits, l1Scaled: true, 1f, withJacobian: false, rows32: true).Rows32!;
        Assert.Same(fresh, fresh.Take(k << bits, k));
        Assert.Null(fresh.Take(k << bits, k));
        fresh.Release();                                                  // taken: the taker returns it, not Release
        Assert.NotNull(fresh.Array);
        fresh.Return();
        var unused = SignHashKernel.Run(x, bits, l1Scaled: true, 1f, withJacobian: false, rows32: true).Rows32!;
        unused.Release();                                                 // no gather took it: back to the pool, and no gather can
        Assert.Null(unused.Array);
        Assert.Null(unused.Take(k << bits, k));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_layer_call_gives_the_same_bytes_with_the_hashs_rows_as_with_the_gathers_copy(bool tiled)
    {
        using var scope = NewDisposeScope();
        (byte[] Y, byte[] Table, byte[] Bias, byte[] X) Run(bool hashRows)
        {
            random.manual_seed(11);
            using var layer = new MemoryLayer(16, 6, 48, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.1, 0.01);
            var x = randn([300, 96], generator: new Generator(5)).requires_grad_(true);
            Tensor y = null!;
            KernelSettings.Current.With(s =>
            {
                s.HashWritesRows32 = hashRows;
                s.TiledForward = tiled;
                s.TiledForwardMinTableBytes = 0;
            }, () =>
            {
                y = layer.call(x);
                (y * y).sum().backward();
            });
            return (y.detach().bytes.ToArray(), layer.Table.grad!.bytes.ToArray(), layer.Bias.grad!.bytes.ToArray(), x.grad!.bytes.ToArray());
        }
        var copied = Run(hashRows: false);
        var taken = Run(hashRows: true);
        Assert.True(taken.Y.AsSpan().SequenceEqual(copied.Y));
        Assert.True(taken.Table.AsSpan().SequenceEqual(copied.Table));
        Assert.True(taken.Bias.AsSpan().SequenceEqual(copied.Bias));
        Assert.True(taken.X.AsSpan().SequenceEqual(copied.X));
        Assert.Contains(taken.Table, b => b != 0);                          // the gradient is not trivially empty
    }
}
