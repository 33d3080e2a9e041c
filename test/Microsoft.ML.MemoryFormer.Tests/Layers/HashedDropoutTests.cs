using Microsoft.ML.MemoryFormer.Layers;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers;

public class HashedDropoutTests
{
    [Fact]
    public void Training_zeroes_about_p_of_the_elements_and_scales_the_rest_by_one_over_one_minus_p()
    {
        using var dropout = new HashedDropout(0.1);
        dropout.train();
        var x = randn(64, 33, 17, generator: new Generator(1));                  // an odd count: the last pair is half used
        Tensor y;
        using (MemoryFormer.Runtime.GeneratorLease.Seeded(5)) y = dropout.call(x);
        var kept = y.ne(0);
        double keptShare = kept.to_type(ScalarType.Float64).mean().item<double>();
        Assert.InRange(keptShare, 0.89, 0.91);                                   // 35,904 elements: 0.9 ± 0.005 is 3 sd
        var expected = x.mul((float)(1 / 0.9));
        Assert.Equal(expected.masked_select(kept).data<float>().ToArray(), y.masked_select(kept).data<float>().ToArray());
    }

    [Fact]
    public void The_mask_repeats_for_the_same_seed_and_changes_with_it_and_eval_is_the_identity()
    {
        using var dropout = new HashedDropout(0.25);
        dropout.train();
        var x = ones(1000);
        Tensor Draw(long seed)
        {
            using (MemoryFormer.Runtime.GeneratorLease.Seeded(seed)) return dropout.call(x);
        }
        var (a, b, c) = (Draw(3), Draw(3), Draw(4));
        Assert.Equal(a.data<float>().ToArray(), b.data<float>().ToArray());
        Assert.NotEqual(a.data<float>().ToArray(), c.data<float>().ToArray());
        dropout.eval();
        Assert.Same(x, dropout.call(x));
        using var none = new HashedDropout(0);
        none.train();
        Assert.Same(x, none.call(x));
        Assert.Throws<ArgumentOutOfRangeException>(() => new HashedDropout(1));
    }

    [Fact]
    public void The_gradient_flows_through_the_kept_elements_only()
    {
        using var dropout = new HashedDropout(0.5);
        dropout.train();
        var x = randn(200, generator: new Generator(2)).requires_grad_();
        Tensor y;
        using (MemoryFormer.Runtime.GeneratorLease.Seeded(7)) y = dropout.call(x);
        y.sum().backward();
        var mask = y.detach().ne(0).to_type(ScalarType.Float32).mul(2f);           // 1 / (1 − 0.5) where kept
        Assert.Equal(mask.data<float>().ToArray(), x.grad!.data<float>().ToArray());
    }

    [Fact]
    public void The_mask_does_not_depend_on_the_number_of_threads()
    {
        using var dropout = new HashedDropout(0.3);
        dropout.train();
        var x = ones(1 << 17);                                                   // several work items
        float[] Run(int threads)
        {
            int before = get_num_threads();
            set_num_threads(threads);
            try
            {
                using (MemoryFormer.Runtime.GeneratorLease.Seeded(11)) return dropout.call(x).data<float>().ToArray();
            }
            finally { set_num_threads(before); }
        }
        Assert.Equal(Run(1), Run(2));
    }

    [Theory]
    [InlineData(1L, 0)]
    [InlineData(37L, 3)]                                                         // odd: the last pair is half used
    [InlineData(4096L, 5)]
    [InlineData(4099L, 11)]
    public unsafe void Every_element_follows_the_SplitMix64_rule_whatever_the_range_split(long count, int first)
    {
        const ulong Key = 0x0123456789ABCDEF;
        const uint Cut = 1_288_490_189;                                          // p = 0.3
        long pairs = (count + 1) / 2;
        var mask = new float[count];
        fixed (float* o = mask)
        {
            HashedDropout.FillPairs(o, 0, Math.Min(first, pairs), count, Key, Cut, 2f);   // two ranges, the second unaligned
            HashedDropout.FillPairs(o, Math.Min(first, pairs), pairs, count, Key, Cut, 2f);
        }
        for (long i = 0; i < count; i++)
        {
            ulong bits = HashedDropout.SplitMix64(Key + (ulong)(i / 2));
            uint half = i % 2 == 0 ? (uint)(bits >> 32) : (uint)bits;
            Assert.True(mask[i] == (half >= Cut ? 2f : 0f), $"element {i} of {count}");
        }
    }
}
