using System.Runtime.Intrinsics.X86;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The 16-lane sign hash (<see cref="WideSignHash"/>) gives the 8-lane kernel's bits: rows, weights and the Jacobian.</summary>
public class WideSignHashTests
{
    /// <summary>x [n, k·τ] with ±0, NaN, values whose e underflows, and tiny and large magnitudes around the random ones.</summary>
    private static Tensor Inputs(int n, int k, int bits, long seed)
    {
        var x = randn([n, k * bits], generator: new Generator((ulong)seed)) * 3;
        x[0, 0] = tensor(0f);
        x[1, 1] = tensor(-0f);
        x[2, 3] = tensor(60f);
        x[3, (k * bits) - 2] = tensor(-45f);
        x[4, 5] = tensor(float.NaN);
        x[5, 17] = tensor(1e-30f);
        x[6] = zeros(k * bits);
        return x;
    }

    // K = 16, 32 (whole 16-chunk blocks), 24 (one 16-block, then one 8-block), 21 and 37 (the scalar tail too); τ a multiple of 8
    // (8, 16: straight transposes), other τ (5, 10, 12: padded rows); both weight functions.
    [Theory]
    [InlineData(8, 32, true, 1f)]
    [InlineData(10, 32, true, 1f)]
    [InlineData(8, 16, false, 0.7f)]
    [InlineData(10, 24, false, 1.5f)]
    [InlineData(16, 21, true, 1f)]
    [InlineData(12, 37, true, 1f)]
    [InlineData(5, 40, false, 2f)]
    [InlineData(4, 17, true, 1f)]
    public void Rows_weights_and_Jacobian_are_the_same_bits_as_the_8_lane_path(int bits, int k, bool l1Scaled, float t)
    {
        Assert.True(Avx512F.IsSupported || !KernelSettings.Current.WideSignHash || !WideSignHash.Supports(bits));
        var x = Inputs(67, k, bits, seed: (bits * 100) + k);
        SignHashKernel.Result narrow = null!, wide = null!;
        KernelSettings.Current.With(s => s.WideSignHash = false, () => narrow = SignHashKernel.Run(x, bits, l1Scaled, t, withJacobian: true));
        KernelSettings.Current.With(s => s.WideSignHash = true, () => wide = SignHashKernel.Run(x, bits, l1Scaled, t, withJacobian: true));
        Assert.Equal(narrow.Rows.data<long>().ToArray(), wide.Rows.data<long>().ToArray());
        Assert.Equal(Bits(narrow.Weights), Bits(wide.Weights));
        Assert.Equal(Bits(narrow.Jacobian!), Bits(wide.Jacobian!));
        Assert.True(float.IsNaN(wide.Weights[4, 5 / bits].item<float>()));   // the NaN's chunk, as on the 8-lane path
    }

    [Fact]
    public void Without_a_Jacobian_the_rows_and_weights_are_the_same_bits()
    {
        var x = Inputs(9, 32, 10, seed: 3);
        SignHashKernel.Result narrow = null!, wide = null!;
        KernelSettings.Current.With(s => s.WideSignHash = false, () => narrow = SignHashKernel.Run(x, 10, true, 1f, withJacobian: false));
        KernelSettings.Current.With(s => s.WideSignHash = true, () => wide = SignHashKernel.Run(x, 10, true, 1f, withJacobian: false));
        Assert.Null(wide.Jacobian);
        Assert.Equal(narrow.Rows.data<long>().ToArray(), wide.Rows.data<long>().ToArray());
        Assert.Equal(Bits(narrow.Weights), Bits(wide.Weights));
    }

    [Theory]
    [InlineData(8, 16, true)]
    [InlineData(8, 32, false)]
    [InlineData(16, 24, true)]
    public void The_inference_hash_of_whole_bytes_on_16_lanes_gives_the_8_lane_bits(int bits, int k, bool l1Scaled)
    {
        var x = Inputs(23, k, bits, seed: 40 + bits);
        SignHashKernel.Result narrow = null!, wide = null!;
        KernelSettings.Current.With(s => s.WideInferenceHash = false, () => narrow = SignHashKernel.Run(x, bits, l1Scaled, 1f, withJacobian: false));
        KernelSettings.Current.With(s => s.WideInferenceHash = true, () => wide = SignHashKernel.Run(x, bits, l1Scaled, 1f, withJacobian: false));
        Assert.Equal(narrow.Rows.data<long>().ToArray(), wide.Rows.data<long>().ToArray());
        Assert.Equal(Bits(narrow.Weights), Bits(wide.Weights));
        KernelSettings.Current.With(s => s.WideInferenceHash = true, () => Assert.Equal(Avx512F.IsSupported, WideSignHash.Pays(bits, jacobian: false)));
        KernelSettings.Current.With(s => s.WideInferenceHash = false, () => Assert.False(WideSignHash.Pays(bits, jacobian: false)));
    }

    // τ = 10 and 12 (straight transposes and gathers), 8 and 16 (the lean exp only), with and without the Jacobian.
    [Theory]
    [InlineData(10, 16, true, true)]
    [InlineData(10, 32, false, false)]
    [InlineData(12, 16, true, false)]
    [InlineData(8, 16, true, true)]
    [InlineData(16, 32, false, true)]
    public void The_lean_16_lane_hash_gives_the_bits_before_it(int bits, int k, bool l1Scaled, bool jacobian)
    {
        var x = Inputs(31, k, bits, seed: 70 + bits);
        SignHashKernel.Result before = null!, lean = null!;
        KernelSettings.Current.With(s => (s.LeanWideHash, s.WideInferenceHash) = (false, true), () => before = SignHashKernel.Run(x, bits, l1Scaled, 0.8f, withJacobian: jacobian));
        KernelSettings.Current.With(s => (s.LeanWideHash, s.WideInferenceHash) = (true, true), () => lean = SignHashKernel.Run(x, bits, l1Scaled, 0.8f, withJacobian: jacobian));
        Assert.Equal(before.Rows.data<long>().ToArray(), lean.Rows.data<long>().ToArray());
        Assert.Equal(Bits(before.Weights), Bits(lean.Weights));
        if (jacobian)
            Assert.Equal(Bits(before.Jacobian!), Bits(lean.Jacobian!));
    }

    // The lean hash with its exp's 2ⁿ by vscalefps (ScaledExp) against the exponent-bits multiply: inference and training's Jacobian.
    [Theory]
    [InlineData(10, 16, true, true)]
    [InlineData(8, 16, false, false)]
    [InlineData(8, 32, true, true)]
    [InlineData(12, 16, false, true)]
    public void The_scaled_exp_gives_the_hash_the_same_bits(int bits, int k, bool l1Scaled, bool jacobian)
    {
        var x = Inputs(31, k, bits, seed: 90 + bits);
        SignHashKernel.Result before = null!, scaled = null!;
        KernelSettings.Current.With(s => (s.ScaledExp, s.WideInferenceHash) = (false, true), () => before = SignHashKernel.Run(x, bits, l1Scaled, 0.8f, withJacobian: jacobian));
        KernelSettings.Current.With(s => (s.ScaledExp, s.WideInferenceHash) = (true, true), () => scaled = SignHashKernel.Run(x, bits, l1Scaled, 0.8f, withJacobian: jacobian));
        Assert.Equal(before.Rows.data<long>().ToArray(), scaled.Rows.data<long>().ToArray());
        Assert.Equal(Bits(before.Weights), Bits(scaled.Weights));
        if (jacobian)
            Assert.Equal(Bits(before.Jacobian!), Bits(scaled.Jacobian!));
    }

    private static int[] Bits(Tensor t) => t.contiguous().data<float>().ToArray().Select(BitConverter.SingleToInt32Bits).ToArray();
}
