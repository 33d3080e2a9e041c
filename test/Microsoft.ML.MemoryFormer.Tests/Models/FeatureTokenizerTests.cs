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
}
