using Microsoft.ML.MemoryFormer.MLNet;

namespace Microsoft.ML.MemoryFormer.Tests.MLNet;

/// <summary>ML.NET's <c>PermutationFeatureImportance</c> on a tabular MemoryFormer: given a fitted chain (found through the
/// chain's last single-feature prediction transformer) or the transformer itself, it ranks the slots the label depends on
/// above those it does not.</summary>
public class MemoryFormerTabularFeatureImportanceTests
{
    private static IEnumerable<TabularRows.Named> Rows(int count, int seed) => TabularRows.NamedRows(count, seed);

    private static string[] FeatureNames => TabularRows.Named.FeatureNames;

    [Fact]
    public void Regression_importance_ranks_the_slots_by_how_much_the_label_depends_on_them()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(Rows(400, 1));
        var options = TabularRows.TinyOptions(40);
        using var chain = ml.Transforms.Concatenate("Features", FeatureNames)
            .Append(ml.Regression.Trainers.MemoryFormerTabular(options)).Fit(data);
        var scored = chain.Transform(data);

        var fromChain = ml.Regression.PermutationFeatureImportance(chain, scored, permutationCount: 2);
        Assert.Equal(FeatureNames.Order(), fromChain.Keys.Order());
        double Rise(string name) => fromChain[name].RootMeanSquaredError.Mean;
        Assert.True(Rise("Strong") > Rise("Weak") && Rise("Weak") > 0.5, $"RMSE rises: Strong {Rise("Strong"):F3}, Weak {Rise("Weak"):F3}");
        Assert.True(Math.Abs(Rise("Noise")) < Rise("Weak") / 2 && Math.Abs(Rise("Unused")) < Rise("Weak") / 2,
            $"RMSE rises: Noise {Rise("Noise"):F3}, Unused {Rise("Unused"):F3}, Weak {Rise("Weak"):F3}");

        var fromTransformer = ml.Regression.PermutationFeatureImportance(chain.LastTransformer, scored, permutationCount: 1);
        Assert.Equal(4, fromTransformer.Length);
        Assert.True(fromTransformer[0].RootMeanSquaredError.Mean > fromTransformer[2].RootMeanSquaredError.Mean + 0.5,
            $"slot 0 {fromTransformer[0].RootMeanSquaredError.Mean:F3}, slot 2 {fromTransformer[2].RootMeanSquaredError.Mean:F3}");
    }

    [Fact]
    public void Binary_importance_works_through_a_chain_and_names_the_slots()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(Rows(400, 2));
        var options = TabularRows.TinyOptions(30);
        options.LabelColumnName = "IsHigh";
        using var chain = ml.Transforms.Concatenate("Features", FeatureNames)
            .Append(ml.BinaryClassification.Trainers.MemoryFormerTabular(options)).Fit(data);

        var importance = ml.BinaryClassification.PermutationFeatureImportanceNonCalibrated(chain, chain.Transform(data), labelColumnName: "IsHigh");
        double Drop(string name) => -importance[name].AreaUnderRocCurve.Mean;
        Assert.True(Drop("Strong") > 0.2 && Drop("Strong") > 4 * Math.Abs(Drop("Noise")) && Drop("Strong") > 4 * Math.Abs(Drop("Unused")),
            $"AUC drops: Strong {Drop("Strong"):F3}, Noise {Drop("Noise"):F3}, Unused {Drop("Unused"):F3}");
    }

    [Fact]
    public void The_transformer_names_its_feature_column_and_type()
    {
        var ml = new MLContext(1);
        using var model = ml.Regression.Trainers.MemoryFormerTabular(TabularRows.TinyOptions(1))
            .Fit(ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(64, 1)));
        ISingleFeaturePredictionTransformer<MemoryFormerTabularTransformer> prediction = model;
        Assert.Equal("Features", prediction.FeatureColumnName);
        Assert.Equal(new Microsoft.ML.Data.VectorDataViewType(Microsoft.ML.Data.NumberDataViewType.Single, 4), prediction.FeatureColumnType);
        Assert.Same(model, prediction.Model);
    }
}
