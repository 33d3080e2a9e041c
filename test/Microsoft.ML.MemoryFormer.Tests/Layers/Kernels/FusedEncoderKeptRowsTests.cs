using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The first block's per-id Q/K/V rows kept in <see cref="FusedEncoderMemory"/> from one encoder to the next: reused while
/// the weights are unchanged, rebuilt after an edit of the embedding, a Q/K/V table or the norm gain, or for bf16 copies; every
/// result the bits of per-token projections.</summary>
public class FusedEncoderKeptRowsTests
{
    /// <summary>Three windows of 128 tokens over ids 0–99: 384 tokens, at most 100 distinct ids.</summary>
    private static readonly int[][] Windows = Enumerable.Range(0, 3).Select(w =>
    {
        var random = new Random(w + 11);
        return Enumerable.Range(0, 128).Select(_ => random.Next(100)).ToArray();
    }).ToArray();

    private static float[] Pooled(FusedEncoder encoder, ScoringProfile? profile = null)
    {
        using var noGrad = no_grad();
        return encoder.Pooled(Windows, PoolingKind.Mean, profile).data<float>().ToArray();
    }

    /// <summary>The pooled vectors of a fresh encoder sharing <paramref name="memory"/>, and how many first-block rows it computed.</summary>
    private static (float[] Pooled, long Rows) Kept(TransformerBackbone backbone, FusedEncoderMemory memory, Func<Tensor, Bf16Matrix?>? bf16 = null)
    {
        var profile = new ScoringProfile();
        return (Pooled(new FusedEncoder(backbone, shareFirstProjections: true, memory: memory, bf16: bf16), profile), profile.FusedFirstBlockRows);
    }

    private static float[] PerToken(TransformerBackbone backbone, Func<Tensor, Bf16Matrix?>? bf16 = null) =>
        Pooled(new FusedEncoder(backbone, shareFirstProjections: false, bf16: bf16));

    [Fact]
    public void Rows_are_reused_while_the_weights_are_unchanged_and_rebuilt_after_an_edit()
    {
        using var model = ScoringTestModels.Small(3, seed: 9);
        var backbone = model.Network.Backbone;
        var memory = new FusedEncoderMemory();
        int distinct = Windows.SelectMany(w => w).Distinct().Count();
        var (first, rows) = Kept(backbone, memory);
        Assert.Equal(PerToken(backbone), first);
        Assert.Equal(distinct, rows);
        var (again, rowsAgain) = Kept(backbone, memory);
        Assert.Equal(first, again);
        Assert.Equal(TableVersion.IsAvailable ? 0 : distinct, rowsAgain);             // kept only where edits can be seen
        var profile = new ScoringProfile();
        Assert.Equal(first, Pooled(new FusedEncoder(backbone, shareFirstProjections: true, memory: memory, keepFirstRows: false), profile));
        Assert.Equal(distinct, profile.FusedFirstBlockRows);                          // switched off: rebuilt

        var block = backbone.Blocks[0];
        Action[] edits =
        [
            () => ((MemoryQkv)block.Attention.Qkv).Key.Table.add_(0.01f),
            () => backbone.Embedding.weight!.mul_(1.01f),
            () => ((RmsNorm)block.AttentionNorm).Weight.add_(0.02f),
        ];
        var before = first;
        foreach (var edit in edits)
        {
            using (no_grad()) edit();
            var expected = PerToken(backbone);
            Assert.NotEqual(before, expected);
            var (edited, rowsEdited) = Kept(backbone, memory);
            Assert.Equal(expected, edited);
            Assert.Equal(distinct, rowsEdited);
            before = expected;
        }
    }

    [Fact]
    public void Bf16_copies_and_fp32_tables_do_not_share_rows()
    {
        using var model = ScoringTestModels.Small(3, seed: 10);
        var backbone = model.Network.Backbone;
        var copies = backbone.modules().OfType<MemoryLayer>().ToDictionary(l => TensorMemory.Key(l.Table), l => Bf16Matrix.From(l.Table));
        Func<Tensor, Bf16Matrix?> bf16 = t => copies.GetValueOrDefault(TensorMemory.Key(t));
        var memory = new FusedEncoderMemory();
        var fp32 = PerToken(backbone);
        var half = PerToken(backbone, bf16);
        Assert.NotEqual(fp32, half);
        Assert.Equal(fp32, Kept(backbone, memory).Pooled);
        Assert.Equal(half, Kept(backbone, memory, bf16).Pooled);
        Assert.Equal(fp32, Kept(backbone, memory).Pooled);
    }
}
