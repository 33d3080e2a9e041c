using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The fused scoring encoder window by window (<see cref="FusedEncoderBlock.ForwardWindows"/>,
/// <see cref="WindowAttention.Window"/>), its working memory kept across calls (<see cref="FusedEncoderMemory"/>) and the
/// shared first-block projections' fallback for groups of mostly new ids: each against the whole-group passes, bit for bit.</summary>
public class FusedEncoderWindowMajorTests
{
    private static TextClassifierModel NewModel(int windowTokens = 128, int seed = 7) => ScoringTestModels.Small(3, seed, windowTokens);

    /// <summary>Windows of odd lengths (1 token, short, one past a key tile, full), ids spread over the vocabulary.</summary>
    private static int[][] Windows(int seed, int[] lengths, int vocabulary = 258)
    {
        var random = new Random(seed);
        return lengths.Select(l => Enumerable.Range(0, l).Select(_ => random.Next(vocabulary)).ToArray()).ToArray();
    }

    private static float[] Pooled(FusedEncoder encoder, int[][] windows, PoolingKind pooling, ScoringProfile? profile = null)
    {
        using var noGrad = no_grad();
        return encoder.Pooled(windows, pooling, profile).data<float>().ToArray();
    }

    public static TheoryData<PoolingKind, bool> PoolingsAndSharing() => new()
    {
        { PoolingKind.Mean, false }, { PoolingKind.Mean, true }, { PoolingKind.First, true }, { PoolingKind.Last, false },
    };

    [Theory]
    [MemberData(nameof(PoolingsAndSharing))]
    public void Window_by_window_gives_the_whole_group_passes_bit_for_bit(PoolingKind pooling, bool share)
    {
        using var model = NewModel();
        var backbone = model.Network.Backbone;
        var windows = Windows(1, [1, 5, 33, 128, 100, 7, 64, 2, 127, 31, 128]);
        var expected = Pooled(new FusedEncoder(backbone, shareFirstProjections: share, windowMajor: false), windows, pooling);
        Assert.Equal(expected, Pooled(new FusedEncoder(backbone, shareFirstProjections: share, windowMajor: true), windows, pooling));
        Assert.Equal(expected, Pooled(new FusedEncoder(backbone, shareFirstProjections: !share, windowMajor: true), windows, pooling));
        Assert.Equal(expected, Pooled(new FusedEncoder(backbone, shareFirstProjections: share, windowMajor: true, pieceTokens: 1), windows, pooling));
        Assert.Equal(expected[..128], Pooled(new FusedEncoder(backbone, shareFirstProjections: share, windowMajor: true), windows[..1], pooling)); // one token alone
    }

    [Theory]
    [InlineData(1, 8, true)]
    [InlineData(3, 40, true)]
    [InlineData(2, 32, true)]
    [InlineData(2, 32, false)]
    [InlineData(2, 64, true)]
    public unsafe void One_window_on_the_calling_thread_equals_the_parallel_run(int heads, int headWidth, bool avx512)
    {
        int[] lengths = [1, 5, 33, 7, 64, 128, 100];
        int n = lengths.Sum(), width = heads * headWidth;
        var random = new Random(3);
        var inputs = Enumerable.Range(0, 3 * n * width).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
        var starts = new int[lengths.Length + 1];
        for (int w = 0; w < lengths.Length; w++) starts[w + 1] = starts[w] + lengths[w];
        var (expected, actual) = (new float[n * width], new float[n * width]);
        var scratch = new float[WindowAttention.ScratchFloats(headWidth, lengths.Max())];
        fixed (float* x = inputs, e = expected, a = actual, s = scratch)
        {
            float* q = x, k = x + (n * width), v = x + (2 * n * width);
            WindowAttention.Run(q, k, v, e, heads, headWidth, starts, avx512);
            for (int w = lengths.Length - 1; w >= 0; w--)                      // any order: windows are independent
                WindowAttention.Window(q, k, v, a, heads, headWidth, starts[w], lengths[w], s, avx512);
        }
        Assert.Equal(expected, actual);
        KernelSettings.Current.With(s => s.TiledKeyTranspose = false, () =>   // keys transposed element by element: the same values
        {
            fixed (float* x = inputs, a = actual)
                WindowAttention.Run(x, x + (n * width), x + (2 * n * width), a, heads, headWidth, starts, avx512);
        });
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void Kept_memory_gives_fresh_results_across_sizes_and_changed_weights()
    {
        using var model = NewModel();
        var backbone = model.Network.Backbone;
        var memory = new FusedEncoderMemory();
        var large = Windows(2, [128, 128, 90, 128]);
        var small = Windows(3, [40, 128, 128, 20]);
        foreach (var windows in new[] { large, small, large })                   // a smaller call reads a larger call's buffers
            Assert.Equal(Pooled(new FusedEncoder(backbone, shareFirstProjections: true), windows, PoolingKind.Mean),
                Pooled(new FusedEncoder(backbone, shareFirstProjections: true, memory: memory, windowMajor: windows == small), windows, PoolingKind.Mean));
        using (no_grad())                                                       // new weights: the kept per-id rows are stale
            ((MemoryQkv)backbone.Blocks[0].Attention.Qkv).Query.Table.add_(0.5f);
        var fresh = Pooled(new FusedEncoder(backbone, shareFirstProjections: true), large, PoolingKind.Mean);
        Assert.Equal(fresh, Pooled(new FusedEncoder(backbone, shareFirstProjections: true, memory: memory), large, PoolingKind.Mean));
        Assert.Equal(fresh, Pooled(new FusedEncoder(backbone, shareFirstProjections: false, windowMajor: false), large, PoolingKind.Mean));
    }

    [Fact]
    public void A_group_of_mostly_new_ids_computes_per_token_and_a_repetitive_one_shares()
    {
        using var model = NewModel();
        var backbone = model.Network.Backbone;
        var distinct = Enumerable.Range(0, 258).ToArray();                     // 258 tokens, every id new: above 75 %
        int[][] windows = [distinct[..128], distinct[128..256], distinct[256..]];
        var encoder = new FusedEncoder(backbone, shareFirstProjections: true, memory: new FusedEncoderMemory());
        var expected = Pooled(new FusedEncoder(backbone, shareFirstProjections: false), windows, PoolingKind.Mean);
        var profile = new ScoringProfile();
        Assert.Equal(expected, Pooled(encoder, windows, PoolingKind.Mean, profile));
        Assert.Equal(258, profile.FusedFirstBlockRows);                         // per token: every token counted
        int[][] repeated = [.. windows, distinct[..128], distinct[100..228], distinct[..128]]; // 642 tokens, 258 ids: 40 % new
        profile = new ScoringProfile();
        Assert.Equal(Pooled(new FusedEncoder(backbone, shareFirstProjections: false), repeated, PoolingKind.Mean), Pooled(encoder, repeated, PoolingKind.Mean, profile));
        Assert.Equal(258, profile.FusedFirstBlockRows);                         // shared: one row per distinct id
    }

    [Fact]
    public void The_model_keeps_its_memory_and_scores_as_before()
    {
        using var model = NewModel();
        (string, string?)[] rows = [(string.Concat(Enumerable.Range(0, 50).Select(i => $"row text {i}; ")), null), ("tiny", null), ("a pair", "of texts")];
        (model.KeepFusedMemory, model.ShareFirstProjections, model.UseWindowMajorPasses) = (false, false, false);
        var before = model.LogProbabilities(rows);
        (model.KeepFusedMemory, model.ShareFirstProjections, model.UseWindowMajorPasses) = (true, true, true);
        Assert.Equal(before, model.LogProbabilities(rows));
        Assert.Equal(before, model.LogProbabilities(rows));                       // the second call reuses the kept memory
    }

    [Theory]
    [InlineData(1)]
    [InlineData(64)]
    [InlineData(200)]
    [InlineData(100000)]
    public void Pieces_in_their_workers_buffers_give_the_fixed_ranges_bit_for_bit(int pieceTokens)
    {
        using var model = NewModel();
        var backbone = model.Network.Backbone;
        var windows = Windows(4, [1, 5, 33, 128, 100, 7, 64, 2, 127, 31, 128, 128, 90, 3, 128, 17, 128, 60]);
        foreach (var pooling in new[] { PoolingKind.Mean, PoolingKind.Last })
        {
            var expected = Pooled(new FusedEncoder(backbone, shareFirstProjections: true, windowMajor: true, pieceTokens: pieceTokens, pieceBuffers: false), windows, pooling);
            var memory = new FusedEncoderMemory();
            for (int call = 0; call < 2; call++)                                // the second call reuses the buffers
                Assert.Equal(expected, Pooled(new FusedEncoder(backbone, shareFirstProjections: true, memory: memory, windowMajor: true, pieceTokens: pieceTokens), windows, pooling));
            Assert.Equal(expected, Pooled(new FusedEncoder(backbone, windowMajor: false), windows, pooling));
        }
    }

    [Fact]
    public void A_call_scores_as_one_group_with_piece_buffers_and_in_groups_without()
    {
        using var model = NewModel();
        var backbone = model.Network.Backbone;
        Assert.Equal(FusedEncoder.MaxGroupTokens, new FusedEncoder(backbone, windowMajor: true).GroupTokens(4096));
        Assert.Equal(4096, new FusedEncoder(backbone, windowMajor: true, pieceBuffers: false).GroupTokens(4096));
        Assert.Equal(4096, new FusedEncoder(backbone, windowMajor: false).GroupTokens(4096));
        var rows = Enumerable.Range(0, 40).Select(i => (string.Concat(Enumerable.Range(0, 20 + i).Select(j => $"word{(i * j) % 97} ")), (string?)null)).ToArray();
        model.ScoringTokensPerBatch = 300;                                      // several groups without piece buffers
        (model.UseWindowMajorPasses, model.UsePieceBuffers) = (true, false);
        var grouped = model.LogProbabilities(rows);
        model.UseWindowMajorPasses = false;
        Assert.Equal(grouped, model.LogProbabilities(rows));                     // the same groups: the same bits
        (model.UseWindowMajorPasses, model.UsePieceBuffers) = (true, true);
        var whole = model.LogProbabilities(rows);
        // One group: the pooled vectors are the same bits (above), and the head computes each window's logits on their own,
        // so the group's size cannot move them either.
        Assert.Equal(grouped, whole);
    }

    [Fact]
    public void A_group_larger_than_the_row_bound_keeps_its_rows_for_the_next_call()
    {
        using var model = NewModel();
        var backbone = model.Network.Backbone;
        var random = new Random(5);
        var windows = Enumerable.Range(0, 360).Select(_ => Enumerable.Range(0, 128).Select(_ => random.Next(258)).ToArray()).ToArray(); // 46,080 tokens
        var memory = new FusedEncoderMemory();
        var expected = Pooled(new FusedEncoder(backbone, shareFirstProjections: false, windowMajor: true), windows, PoolingKind.Mean);
        for (int call = 0; call < 2; call++)
        {
            var profile = new ScoringProfile();
            Assert.Equal(expected, Pooled(new FusedEncoder(backbone, shareFirstProjections: true, memory: memory, windowMajor: true), windows, PoolingKind.Mean, profile));
            Assert.Equal(call == 0 ? 258 : 0, profile.FusedFirstBlockRows);     // more tokens than the 43,690-row bound, 258 ids: no start-over
        }
    }

    [Fact]
    public void Pieces_follow_the_L2_128_tokens_on_the_Zen_4_and_512_on_a_2_MB_L2()
    {
        Assert.Equal(128, FusedEncoder.PieceTokensFor(1L << 20));
        Assert.Equal(128, FusedEncoder.PieceTokensFor(512L << 10));
        Assert.Equal(512, FusedEncoder.PieceTokensFor(2L << 20));
        Assert.Equal(FusedEncoder.PieceTokensFor(MemoryFormer.Runtime.CacheSizes.L2Bytes), FusedEncoder.PieceTokens);
    }
}
