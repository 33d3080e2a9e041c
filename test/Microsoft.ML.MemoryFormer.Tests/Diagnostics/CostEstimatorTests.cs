using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Diagnostics;

namespace Microsoft.ML.MemoryFormer.Tests.Diagnostics;

public class CostEstimatorTests
{
    [Theory]   // paper Table 1, per-block FLOPs at s = 2048 (G, one decimal; MF-small's 0.91 G is printed as 1.0 G)
    [InlineData(512, 10.7, 4.7, 6.4, 0.4)]
    [InlineData(768, 20.9, 7.4, 14.5, 0.9)]
    [InlineData(1024, 34.4, 10.2, 25.8, 1.6)]
    public void Block_flops_match_the_papers_table_1(int width, double dense, double memory, double denseFc, double memoryFc)
    {
        var mf = MemoryFormerConfig.Tiny with { Width = width, Heads = width / 64 };
        var mfFlops = CostEstimator.Block(mf, 2048);
        var denseFlops = CostEstimator.Block(mf with { Kind = TransformerKind.Dense }, 2048);
        Assert.Equal(dense, Math.Round(denseFlops.Total / 1e9, 1));
        // MF-small: exact 6.44 + 0.91 = 7.35 G; the paper adds its rounded 1.0 G and prints 7.4 G (spec §3)
        Assert.Equal(memory, mfFlops.Total / 1e9, 0.06);
        Assert.Equal(denseFc, Math.Round(denseFlops.Projections / 1e9, 1));
        Assert.Equal(memoryFc, Math.Round(mfFlops.Projections / 1e9, 1));
    }

    [Fact]
    public void Exact_gather_count_is_5_25_s_k_d_at_tau_8()
    {
        var c = MemoryFormerConfig.Tiny;
        Assert.Equal(5.25 * 2048 * 64 * 512, CostEstimator.ExactMemoryGatherFlops(2048, c), 6);
    }

    [Theory]   // paper Table 3: memory of Memory Layer Q at d ≈ 512 in fp16 (MB)
    [InlineData(4, 128, 2.1)]
    [InlineData(8, 64, 16.8)]
    [InlineData(10, 51, 53.5)]
    public void Query_layer_memory_matches_table_3(int tau, int chunks, double megabytes)
    {
        double bytes = CostEstimator.Bytes(CostEstimator.MemoryLayerTableParameters(chunks, tau, 512), 2);
        Assert.Equal(megabytes, Math.Round(bytes / 1e6, 1));
    }

    [Theory]   // paper Table 5: Memory Block memory in fp16 (MB) by extra bits
    [InlineData(0, 33.6)]
    [InlineData(1, 52.4)]
    [InlineData(2, 88.1)]
    [InlineData(3, 157.3)]
    public void Memory_block_memory_matches_table_5(int extraBits, double megabytes)
    {
        var c = MemoryFormerConfig.Tiny with { ExtraBits = extraBits };
        Assert.Equal(megabytes, Math.Round(CostEstimator.Bytes(CostEstimator.MemoryBlockTableParameters(c), 2) / 1e6, 1));
    }

    [Fact]
    public void Block_tables_of_mf_tiny_hold_69_2_million_values()
    {
        Assert.Equal(69.2, Math.Round(CostEstimator.BlockTableParameters(MemoryFormerConfig.Tiny) / 1e6, 1));
    }
}
