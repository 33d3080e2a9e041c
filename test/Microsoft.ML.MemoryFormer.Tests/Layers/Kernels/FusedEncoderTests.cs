using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Diagnostics;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>The fused inference encoder of classification scoring (<see cref="FusedEncoder"/>, <see cref="FusedEncoderBlock"/>,
/// <see cref="WindowAttention"/>) against libtorch's attention and the torch-module scoring paths.</summary>
public class FusedEncoderTests
{
    private const float Tolerance = 1e-5f;

    public static TheoryData<int, int, bool> HeadShapes() => new()
    {
        { 1, 8, true }, { 2, 32, true }, { 3, 40, true }, { 2, 16, true }, { 2, 64, true }, { 2, 32, false }, { 2, 64, false },
    };

    [Theory]
    [MemberData(nameof(HeadShapes))]
    public unsafe void Window_attention_equals_scaled_dot_product_attention_per_window(int heads, int headWidth, bool avx512)
    {
        int[] lengths = [1, 5, 33, 7, 64, 4, 128, 100];
        int n = lengths.Sum(), width = heads * headWidth;
        TorchRuntime.Seed(11);
        var q = randn(n, width);
        var k = randn(n, width);
        var v = randn(n, width);
        var y = new float[n * width];
        var starts = new int[lengths.Length + 1];
        for (int w = 0; w < lengths.Length; w++) starts[w + 1] = starts[w] + lengths[w];
        fixed (float* output = y)
            WindowAttention.Run(TensorMemory.Floats(q), TensorMemory.Floats(k), TensorMemory.Floats(v), output, heads, headWidth, starts, avx512);
        for (int w = 0; w < lengths.Length; w++)
        {
            Tensor Split(Tensor x) => x.narrow(0, starts[w], lengths[w]).view(1, lengths[w], heads, headWidth).transpose(1, 2); // [1, H, L, hd]
            var expected = F.scaled_dot_product_attention(Split(q), Split(k), Split(v)).transpose(1, 2).reshape(-1).data<float>().ToArray();
            for (int i = 0; i < expected.Length; i++)
                Assert.True(Math.Abs(expected[i] - y[(starts[w] * width) + i]) <= 1e-5f,
                    $"window {w} (length {lengths[w]}), element {i}: {expected[i]} vs {y[(starts[w] * width) + i]}");
        }
    }

    private static TextClassifierModel NewModel(PoolingKind pooling, int ngramBuckets = 0, int windowTokens = 16, int seed = 4)
    {
        TorchRuntime.Seed(seed);
        var tokenizer = new ByteLevelTokenizer();
        // The default classifier's shape (d = 128, 4 heads of 32, τ = 8) at a short window.
        var config = MemoryFormerConfig.Nano with
        {
            VocabularySize = tokenizer.ModelVocabularySize, ContextLength = windowTokens, Width = 128, Heads = 4, BitsPerChunk = 8, Layers = 2,
        };
        return new TextClassifierModel(new SequenceClassifier(config, 5, pooling, 0, ngramBuckets), tokenizer, windowTokens, CPU, maxWindowsPerRow: 4);
    }

    private static readonly (string, string?)[] Rows =
    [
        ("hi", null), ("a row of exactly fifteen", null), ("0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", null),
        ("", null), ("a pair", "of texts, the second one longer"), ("abcdefghijklmnopqrstuvwxyz", null),
    ];

    private static float[][] Score(TextClassifierModel model, IReadOnlyList<(string, string?)> rows, bool fused, bool reference = false, int tokensPerBatch = 4096)
    {
        (model.UseFusedScoring, model.UseReferenceScoring, model.ScoringTokensPerBatch) = (fused, reference, tokensPerBatch);
        return model.LogProbabilities(rows);
    }

    private static void AssertClose(float[][] expected, float[][] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int r = 0; r < expected.Length; r++)
            for (int c = 0; c < expected[r].Length; c++)
                Assert.True(Math.Abs(expected[r][c] - actual[r][c]) <= Tolerance, $"row {r}, class {c}: {expected[r][c]} vs {actual[r][c]}");
    }

    public static TheoryData<PoolingKind, int> PoolingsAndNgrams() => new()
    {
        { PoolingKind.Mean, 0 }, { PoolingKind.First, 0 }, { PoolingKind.Last, 0 }, { PoolingKind.Mean, 64 }, { PoolingKind.Last, 64 },
    };

    [Theory]
    [MemberData(nameof(PoolingsAndNgrams))]
    public void Fused_scoring_equals_the_torch_paths_for_short_long_paired_and_single_rows(PoolingKind pooling, int ngramBuckets)
    {
        using var model = NewModel(pooling, ngramBuckets);
        Assert.True(FusedEncoder.Supports(model.Network.Backbone));
        foreach (var rows in new[] { Rows, [Rows[0]], [Rows[2]], [.. Rows, .. Rows] })
        {
            var fused = Score(model, rows, fused: true);
            AssertClose(Score(model, rows, fused: false), fused);
            AssertClose(Score(model, rows, fused: false, reference: true), fused);
            AssertClose(fused, Score(model, rows, fused: true, tokensPerBatch: 20));  // small groups: one window per group
        }
    }

    [Fact]
    public void A_row_with_four_windows_reads_all_of_them()
    {
        using var model = NewModel(PoolingKind.Mean);
        var rows = new (string, string?)[] { (Rows[2].Item1, null) };
        Assert.Equal(4, model.Encode(Rows[2].Item1, null).Length);
        AssertClose(Score(model, rows, fused: false), Score(model, rows, fused: true));
    }

    [Fact]
    public void The_torch_path_runs_where_the_fused_encoder_does_not_apply()
    {
        using var model = NewModel(PoolingKind.Mean);
        var rows = Rows;
        var fused = Score(model, rows, fused: true);
        var backbone = model.Network.Backbone;
        Assert.True(FusedEncoder.Supports(backbone));                           // worked out once, then read on every call:
        model.Network.train();
        Assert.False(FusedEncoder.Supports(backbone));                          // training mode: dropout and autograd are the modules' job
        model.Network.eval();
        Assert.True(FusedEncoder.Supports(backbone));
        var layer = backbone.modules().OfType<MemoryLayer>().First();
        using (var counter = new BucketCounter(layer.Table.shape[0], CPU, trainingOnly: false))
        {
            layer.UsageCounter = counter;                                       // the fused forward records no hits
            Assert.False(FusedEncoder.Supports(backbone));
            layer.UsageCounter = null;
        }
        Assert.True(FusedEncoder.Supports(backbone));
        KernelSettings.Current.With(s => s.UseFusedKernels = false, () =>
        {
            Assert.False(FusedEncoder.Supports(backbone));
            AssertClose(fused, Score(model, rows, fused: true));
        });
    }

    [Fact]
    public void Fused_scoring_is_deterministic()
    {
        using var first = NewModel(PoolingKind.Mean, seed: 9);
        using var second = NewModel(PoolingKind.Mean, seed: 9);
        var once = Score(first, Rows, fused: true);
        Assert.Equal(once, Score(first, Rows, fused: true));
        Assert.Equal(once, Score(second, Rows, fused: true));
    }

    [Fact]
    public void Table_major_gathers_give_the_token_major_scores_bit_for_bit()
    {
        // 128-token windows as the default classifier: groups of hundreds of tokens, the Memory Block's second table
        // (τ+2 = 10 bits) walked in chunk groups.
        using var model = NewModel(PoolingKind.Mean, windowTokens: 128);
        var text = string.Concat(Enumerable.Range(0, 60).Select(i => $"word{i} and some more text {i * 7}; "));
        var rows = new (string, string?)[] { (text, null), ("short", null), (text[..333], "a pair"), (text[100..], null) };
        Assert.False(model.UseTableMajorGathers);
        var tokenMajor = Score(model, rows, fused: true);
        model.UseTableMajorGathers = true;
        var tableMajor = Score(model, rows, fused: true);
        model.UseTableMajorGathers = false;
        Assert.Equal(tokenMajor, tableMajor);
        AssertClose(Score(model, rows, fused: false), tableMajor);
    }

    [Fact]
    public void The_simd_per_token_kernels_score_as_the_scalar_ones()
    {
        using var model = NewModel(PoolingKind.Mean, windowTokens: 64);
        Assert.True(model.UseEncoderSimdKernels);
        var simd = Score(model, Rows, fused: true);
        model.UseEncoderSimdKernels = false;
        var scalar = Score(model, Rows, fused: true);
        model.UseEncoderSimdKernels = true;
        AssertClose(scalar, simd);
    }

    [Fact]
    public void Staged_passes_give_the_per_token_pooled_vectors_bit_for_bit()
    {
        using var model = NewModel(PoolingKind.Mean, windowTokens: 128);
        var text = string.Concat(Enumerable.Range(0, 40).Select(i => $"token {i} of a longer paragraph, {i * 3}. "));
        var windows = new[] { text, "short", text[50..] }.SelectMany(t => model.Encode(t, null)).ToArray();
        using var noGrad = no_grad();
        float[] Pooled(FusedEncoder encoder) => encoder.Pooled(windows, PoolingKind.Mean).data<float>().ToArray();
        var expected = Pooled(new FusedEncoder(model.Network.Backbone));
        Assert.Equal(expected, Pooled(new FusedEncoder(model.Network.Backbone, staged: true)));
        Assert.Equal(expected, Pooled(new FusedEncoder(model.Network.Backbone, tableMajor: true)));
    }
}
