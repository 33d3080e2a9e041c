using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Data;
using Microsoft.ML.MemoryFormer.Models;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Models;

public class FeatureTokenizerTests
{
    [Fact]
    public void Tokens_are_cls_then_x_times_w_plus_b_and_nan_takes_the_missing_embedding()
    {
        random.manual_seed(1);
        using var tokenizer = new FeatureTokenizer(featureCount: 3, width: 4);
        var p = tokenizer.named_parameters().ToDictionary(kv => kv.name, kv => kv.parameter);
        var x = tensor(new[] { 2f, float.NaN, -1f, 0f, 1f, float.NaN }, [2, 3]);
        var tokens = tokenizer.call(x);                                          // [2, 4, 4]
        Assert.Equal([2L, 4, 4], tokens.shape);
        Assert.True(tokens[0, 0].allclose(p["cls"]) && tokens[1, 0].allclose(p["cls"]));
        Assert.True(tokens[0, 1].allclose(2 * p["weight"][0] + p["bias"][0]));
        Assert.True(tokens[0, 2].allclose(p["missing"][1]));
        Assert.True(tokens[0, 3].allclose(-1 * p["weight"][2] + p["bias"][2]));
        Assert.True(tokens[1, 3].allclose(p["missing"][2]));
        tokens.sum().backward();
        var missingGrad = p["missing"].grad!.sum(1);                             // [3]: how often each slot was missing, × d
        Assert.Equal([0f, 4f, 4f], missingGrad.data<float>().ToArray());
        Assert.True(p["weight"].grad!.isfinite().all().item<bool>());            // NaN inputs leak no NaN gradient
        Assert.Equal([2f + 0f, 1f, -1f], p["weight"].grad!.sum(1).div(4).data<float>().ToArray());
    }

    [Fact]
    public void A_batch_without_missing_values_gives_the_tokens_and_gradients_of_the_missing_value_path()
    {
        random.manual_seed(3);
        using var tokenizer = new FeatureTokenizer(featureCount: 3, width: 8);
        var p = tokenizer.named_parameters().ToDictionary(kv => kv.name, kv => kv.parameter);
        var x = randn(16, 3, generator: new Generator(4));                       // no NaN: the tokenizer skips the where
        var weights = randn(16, 3, 8, generator: new Generator(5));
        tokenizer.call(x).narrow(1, 1, 3).mul(weights).sum().backward();
        var grads = p.ToDictionary(kv => kv.Key, kv => kv.Value.grad!.clone());

        // the path of a batch with a missing value, written out: where(isnan, M, x · W + b)
        foreach (var parameter in p.Values) parameter.grad = null;
        var reference = where(x.isnan().unsqueeze(-1), p["missing"].expand(16, 3, 8), x.unsqueeze(-1).mul(p["weight"]).add(p["bias"]));
        reference.mul(weights).sum().backward();
        using (no_grad())
            Assert.Equal(reference.data<float>().ToArray(), tokenizer.call(x).narrow(1, 1, 3).contiguous().data<float>().ToArray());
        foreach (var name in new[] { "weight", "bias", "missing" })
            Assert.Equal(p[name].grad!.data<float>().ToArray(), grads[name].data<float>().ToArray());
        Assert.Equal(0f, grads["missing"].abs().max().item<float>());             // a zero gradient, not none: AdamW still moves M
    }

    [Theory]
    [InlineData(TabularNumericEmbedding.Linear)]
    [InlineData(TabularNumericEmbedding.PiecewiseLinear)]
    public void One_hot_group_tokens_gathered_per_group_match_the_per_slot_sum_forward_and_backward(TabularNumericEmbedding embedding)
    {
        // slots 0, 3, 6 numeric; 1–2 a group, 4–5 a group, 7–9 a group; rows set one slot of a group, or none
        int[] slotTokens = [0, 1, 1, 2, 3, 3, 4, 5, 5, 5];
        float[][]? edges = embedding == TabularNumericEmbedding.PiecewiseLinear
            ? [.. slotTokens.Select((t, s) => s is 0 or 3 or 6 ? new[] { -2f, -0.5f, 0.3f, 2f } : new[] { 0f, 1f })] : null;
        random.manual_seed(6);
        using var tokenizer = new FeatureTokenizer(10, 8, embedding, binEdges: edges, slotTokens: slotTokens);
        var random1 = new Random(7);
        var x = zeros(24, 10);
        for (int r = 0; r < 24; r++)
        {
            foreach (int s in new[] { 0, 3, 6 }) x[r, s] = tensor((float)(random1.NextDouble() * 5 - 2.5));   // beyond the edges too
            foreach (var group in new[] { new[] { 1, 2 }, [4, 5], [7, 8, 9] })
                if (random1.Next(4) > 0) x[r, group[random1.Next(group.Length)]] = tensor(1f);
        }
        x[0, 0] = tensor(float.NaN);                                            // a missing singleton keeps its row on the group path
        Assert.True(tokenizer.GroupPath!.RowsThatApply(x)!.all().item<bool>());   // x takes the per-group gather
        Assert.Equal([0, 3, 6], tokenizer.GroupPath.SingletonSlots);
        var weights = randn(24, 7, 8, generator: new Generator(8));
        var p = tokenizer.named_parameters().ToDictionary(kv => kv.name, kv => kv.parameter);
        (float[] Tokens, Dictionary<string, float[]> Grads) Run(bool groupPath)
        {
            foreach (var parameter in p.Values) parameter.grad = null;
            tokenizer.GroupPathEnabled = groupPath;
            var rows = tokenizer.call(x);
            rows.mul(weights).sum().backward();
            return (rows.detach().contiguous().data<float>().ToArray(),
                p.Where(kv => kv.Value.grad is not null).ToDictionary(kv => kv.Key, kv => kv.Value.grad!.data<float>().ToArray()));
        }
        var (fast, fastGrads) = Run(groupPath: true);
        var (slow, slowGrads) = Run(groupPath: false);
        tokenizer.GroupPathEnabled = true;
        for (int i = 0; i < fast.Length; i++) Assert.Equal(slow[i], fast[i], 5);
        foreach (var name in new[] { "bias", "cls", embedding == TabularNumericEmbedding.Linear ? "weight" : "projection" })
            for (int i = 0; i < slowGrads[name].Length; i++) Assert.Equal(slowGrads[name][i], fastGrads[name][i], 4);
        for (int i = 0; i < slowGrads["missing"].Length; i++) Assert.Equal(slowGrads["missing"][i], fastGrads["missing"][i], 4);   // M of slot 0, row 0
    }

    [Fact]
    public void A_row_outside_one_hot_form_takes_the_per_slot_sum()
    {
        using var tokenizer = new FeatureTokenizer(3, 4, slotTokens: [0, 0, 1]);
        var p = tokenizer.named_parameters().ToDictionary(kv => kv.name, kv => kv.parameter);
        using var noGrad = no_grad();
        foreach (var row in new[] { new[] { 1f, 1f, 0.5f }, [0.5f, 0f, 2f] })   // two slots of a group set; a value of 0.5
        {
            var batch = tensor(row, [1, 3]);
            Assert.False(tokenizer.GroupPath!.RowsThatApply(batch)![0].item<bool>());
            var tokens = tokenizer.call(batch);
            var expected = p["weight"][0].mul(row[0]).add(p["bias"][0]).add(p["weight"][1].mul(row[1]).add(p["bias"][1]));
            Assert.True(tokens[0, 1].allclose(expected, rtol: 1e-6, atol: 1e-6));
        }
    }

    [Fact]
    public void The_managed_linear_tokens_are_the_forwards_bits_and_only_where_they_apply()
    {
        using var tokenizer = new FeatureTokenizer(featureCount: 5, width: 36);
        var x = randn(64, 5, generator: new Generator(2)).mul_(3);
        x[3, 1] = tensor(float.NaN);
        x[10, 4] = tensor(float.NaN);
        using (no_grad())
        {
            var managed = tokenizer.LinearTokens(x);
            Assert.NotNull(managed);
            Assert.Equal(tokenizer.call(x).data<float>().ToArray(), managed!.data<float>().ToArray());
        }
        Assert.Null(tokenizer.LinearTokens(x));                                     // gradients on: the torch ops
        using var grouped = new FeatureTokenizer(featureCount: 3, width: 4, slotTokens: [0, 1, 1]);
        using var piecewise = new FeatureTokenizer(featureCount: 2, width: 4, TabularNumericEmbedding.PiecewiseLinear, binEdges: [[0f, 1f], [0f, 2f]]);
        using (no_grad())
        {
            Assert.Null(grouped.LinearTokens(randn(2, 3)));
            Assert.Null(piecewise.LinearTokens(randn(2, 2)));
        }
    }

    [Fact]
    public void Scaler_standardises_slots_ignoring_nan_and_keeps_nan()
    {
        var features = new[] { 1f, 5f, 3f, float.NaN, 5f, 5f };                  // [3, 2]
        var scaler = FeatureScaler.Fit(features, 2);
        Assert.Equal([3f, 5f], scaler.Means);
        Assert.Equal([(float)Math.Sqrt(8.0 / 3), 1f], scaler.Stds);
        scaler.Apply(features);
        Assert.True(float.IsNaN(features[3]));
        Assert.Equal(0f, features[2]);
        Assert.Equal(0f, features[5]);
    }

    [Fact]
    public void Piecewise_linear_encoding_matches_a_hand_computation()
    {
        // slot 0: bins [0, 1] and [1, 3]; slot 1: the single bin [0, 1] (padded to T = 2)
        using var tokenizer = new FeatureTokenizer(featureCount: 2, width: 4, TabularNumericEmbedding.PiecewiseLinear,
            binEdges: [[0f, 1f, 3f], [0f, 1f]]);
        Assert.Equal(2, tokenizer.Bins);
        var x = tensor(new[] { 2f, 5f, -1f, 0.5f, 4f, -2f, 0.5f, 1f }, [4, 2]);
        var encoded = tokenizer.Encode(x).data<float>().ToArray();              // [4, 2, 2]
        float[] expected =
        [
            1f, 0.5f,     5f, 0f,      // x = 2: first bin full, half of the second; x = 5 in a one-bin slot: linear, unclipped
            -1f, 0f,      0.5f, 0f,    // x = −1: the first bin extrapolates below, the second is empty
            1f, 1.5f,     -2f, 0f,     // x = 4: the last bin extrapolates above
            0.5f, 0f,     1f, 0f,
        ];
        Assert.Equal(expected, encoded);

        var p = tokenizer.named_parameters().ToDictionary(kv => kv.name, kv => kv.parameter);
        var tokens = tokenizer.call(tensor(new[] { 2f, float.NaN }, [1, 2]));   // [1, 3, 4]
        var byHand = p["projection"][0][0] + 0.5f * p["projection"][0][1] + p["bias"][0];
        Assert.True(tokens[0, 1].allclose(byHand));
        Assert.True(tokens[0, 2].allclose(p["missing"][1]));
    }

    [Fact]
    public void Piecewise_linear_tokenizer_refuses_edges_that_do_not_increase()
    {
        var e = Assert.Throws<ArgumentException>(() => new FeatureTokenizer(2, 4, TabularNumericEmbedding.PiecewiseLinear,
            binEdges: [[0f, 1f], [1f, 1f]]));
        Assert.Contains("slot 1", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new FeatureTokenizer(2, 4, TabularNumericEmbedding.PiecewiseLinear,
            binEdges: [[0f, 1f]]));
    }
}
