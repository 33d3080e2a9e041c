using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// The row pass over a bf16 copy of ∂L/∂y (<see cref="KernelSettings.Bf16GradientRows"/>) against the fp32 row pass:
/// the narrow rounds like <see cref="Bf16Matrix.Round"/>, the table gradient is the fp32 pass's bits when ∂L/∂y holds
/// bf16 values, otherwise within ∂L/∂y's rounding (2⁻⁸ of Σ|w·g| per element), and the result is reproducible.
/// </summary>
public class Bf16GradientRowsTests
{
    [SkippableFact]
    public unsafe void The_narrow_rounds_every_value_as_the_scalar_bf16_rounding_does()
    {
        Skip.IfNot(Bf16GradientRows.Supports(32), "The bf16 row pass needs AVX-512.");
        const int n = 5, h = 64;
        var rng = new Random(3);
        var values = new float[n * h];
        for (int i = 0; i < values.Length; i++)
            values[i] = (float)((rng.NextDouble() - 0.5) * Math.Pow(2, rng.Next(-130, 120)));
        // Ties to even (down and up), NaN, ±∞, −0, a subnormal, the largest float (rounds to ∞) and one just below a carry.
        uint[] special = [0x3F80_8000, 0x3F81_8000, 0x7FC0_0001, 0xFF80_0000, 0x7F80_0000, 0x8000_0000, 0x0000_0123, 0x7F7F_FFFF, 0x3FFF_FFFF, 0xFF81_2345];
        for (int i = 0; i < special.Length; i++)
            values[(i * 7) + 3] = BitConverter.UInt32BitsToSingle(special[i]);
        var lanes = new uint[n * h / 2];
        fixed (float* src = values)
        fixed (uint* dst = lanes)
        {
            Bf16GradientRows.Narrow(src, dst, n, h);
            for (int r = 0; r < n; r++)
                for (int c = 0; c < h; c++)
                {
                    float x = values[(r * h) + c], got = Bf16GradientRows.Get(dst, h, r, c);
                    Assert.Equal(Bf16Matrix.Round(x), (ushort)(BitConverter.SingleToUInt32Bits(got) >> 16));
                }
        }
    }

    [SkippableTheory]
    [InlineData(300, 8, 6, 512)]    // two 256-column tiles
    [InlineData(600, 4, 7, 256)]    // one
    [InlineData(500, 8, 5, 320)]    // one, then two 32-column tiles
    [InlineData(90, 5, 4, 160)]     // a 128-column tile and a 32-column one
    public void On_bf16_values_the_table_gradient_is_the_fp32_bits_and_the_weight_gradient_differs_by_rounding(int n, int k, int bits, int h)
    {
        Skip.IfNot(Bf16GradientRows.Supports(h), "The bf16 row pass needs AVX-512.");
        using var scope = NewDisposeScope();
        var (rows, weights, table, upstream) = Inputs(n, k, bits, h, seed: n + h);
        upstream = upstream.to(ScalarType.BFloat16).to(ScalarType.Float32);        // bf16 values: the narrow keeps them

        var fp32 = Gradients(rows, weights, table, upstream, bf16: false);
        var bf16 = Gradients(rows, weights, table, upstream, bf16: true);

        // Each column's multiply-adds over the row's hits, in token order, are the same in both kernels.
        Assert.True(fp32.Table.abs().sum().item<float>() > 0);
        Assert.True(bf16.Table.eq(fp32.Table).all().item<bool>(), "the table gradient differs");
        // The inner products sum the columns in another order (256-column tiles): rounding only.
        Assert.True(allclose(bf16.Weights, fp32.Weights, 1e-5, 1e-6), $"max |diff| = {(bf16.Weights - fp32.Weights).abs().max().item<float>()}");
    }

    [SkippableTheory]
    [InlineData(600, 8, 6, 512)]
    [InlineData(400, 4, 7, 256)]
    [InlineData(200, 8, 5, 320)]
    public void On_any_values_both_gradients_are_within_the_rounding_of_the_upstream_gradient(int n, int k, int bits, int h)
    {
        Skip.IfNot(Bf16GradientRows.Supports(h), "The bf16 row pass needs AVX-512.");
        using var scope = NewDisposeScope();
        var (rows, weights, table, upstream) = Inputs(n, k, bits, h, seed: (3 * n) + h);
        upstream *= pow(2.0, randint(-20, 20, [n, 1]).to(ScalarType.Float32));   // rows of very different scales

        var fp32 = Gradients(rows, weights, table, upstream, bf16: false);
        var bf16 = Gradients(rows, weights, table, upstream, bf16: true);
        // The bound: bf16 rounding moves each ∂L/∂y element by at most 2⁻⁹ of itself, so a sum over hits moves by at
        // most 2⁻⁹ of the sum of its terms' magnitudes (plus fp32 rounding, far below); asserted with a factor 2 of slack.
        var magnitudes = Gradients(rows, weights.abs(), table.abs(), upstream.abs(), bf16: false);
        double bound = Math.Pow(2, -8);
        Assert.True(((bf16.Table - fp32.Table).abs() <= (magnitudes.Table * bound) + 1e-30).all().item<bool>(), "a table gradient element moved past its bound");
        Assert.True(((bf16.Weights - fp32.Weights).abs() <= (magnitudes.Weights * bound) + 1e-30).all().item<bool>(), "a weight gradient element moved past its bound");
        Assert.False(bf16.Table.eq(fp32.Table).all().item<bool>(), "the rounding must show for the bound to mean anything");
        double relative = ((bf16.Table - fp32.Table).norm().item<float>() / fp32.Table.norm().item<float>());
        Assert.True(relative < 2e-3, $"relative Frobenius error {relative}");
    }

    [SkippableTheory]
    [InlineData(512, 600)]    // every row written
    [InlineData(256, 20)]     // few rows touched: the sparse write into the reused buffer
    public void The_bf16_pass_gives_the_same_bits_twice_and_on_one_and_two_threads(int width, int tokens)
    {
        Skip.IfNot(Bf16GradientRows.Supports(width), "The bf16 row pass needs AVX-512.");
        random.manual_seed(12);
        using var layer = new MemoryLayer(8, 8, width, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.1, 0.01);
        layer.Gradient.Attached = true;                               // as ModelOptimizer does for a training run
        var x = randn(tokens, 64).requires_grad_(true);
        var upstream = randn(tokens, width);
        (Tensor Table, Tensor X, double Norm) Backward(int threads)
        {
            int previous = get_num_threads();
            set_num_threads(threads);
            try
            {
                (Tensor, Tensor, double) result = default;
                KernelSettings.Current.With(k => k.Bf16GradientRows = true, () =>
                {
                    layer.Table.grad = null;
                    x.grad = null;
                    (layer.call(x) * upstream).sum().backward();
                    Assert.True(layer.Gradient.TryTakeSquaredNorm(layer.Table, out double norm));
                    result = (layer.Table.grad!.clone(), x.grad!.clone(), norm);
                });
                return result;
            }
            finally { set_num_threads(previous); }
        }
        var first = Backward(2);
        var again = Backward(2);
        var one = Backward(1);
        Assert.True(first.Table.abs().sum().item<float>() > 0);
        foreach (var other in new[] { again, one })
        {
            Assert.True(first.Table.eq(other.Table).all().item<bool>(), "the table gradient differs");
            Assert.True(first.X.eq(other.X).all().item<bool>(), "the weight gradient (through the hash into x) differs");
            Assert.Equal(BitConverter.DoubleToInt64Bits(first.Norm), BitConverter.DoubleToInt64Bits(other.Norm));
        }
    }

    /// <summary>Random chunked rows, weights, a table and an upstream gradient.</summary>
    private static (Tensor Rows, Tensor Weights, Tensor Table, Tensor Upstream) Inputs(int n, int k, int bits, int h, long seed)
    {
        var gen = new Generator((ulong)seed);
        int buckets = 1 << bits;
        var rows = randint(0, buckets, [n, k], dtype: ScalarType.Int64, generator: gen) + (arange(k, dtype: ScalarType.Int64) * buckets).unsqueeze(0);
        var weights = rand([n, k], generator: gen);
        var table = randn([k * buckets, h], generator: gen) * 0.02f;
        return (rows, weights, table, randn([n, h], generator: gen));
    }

    /// <summary>The table and weight gradients of Σ upstream · gather(rows, weights, table), bf16 row pass on or off.</summary>
    private static (Tensor Table, Tensor Weights) Gradients(Tensor rows, Tensor weights, Tensor table, Tensor upstream, bool bf16)
    {
        var w = weights.detach().clone().requires_grad_(true);
        var t = table.detach().clone().requires_grad_(true);
        KernelSettings.Current.With(k => k.Bf16GradientRows = bf16, () => (FusedMemoryGather.Apply(rows, w, t) * upstream).sum().backward());
        return (t.grad!, w.grad!);
    }
}
