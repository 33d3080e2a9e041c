using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.MLNet;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Classification;

/// <summary>
/// <c>classification --out-of-scope</c>, MemoryFormer rows: other confidence scores than the largest probability, each from the
/// head's input features (<c>TextClassifierModel.Features</c>), compared by their area under the ROC curve (in-scope against
/// out-of-scope test rows): the largest logit, the energy (log-sum-exp of the logits), and the Mahalanobis distance to the
/// nearest class mean under the classes' shared covariance, fitted on the training rows' features.
/// </summary>
internal static class OutOfScopeScores
{
    public static IReadOnlyList<(string Score, double Auc)> Compare(MemoryFormerTextClassificationTransformer model, IDataView train,
        IDataView inScope, IDataView outOfScope)
    {
        var classifier = model.Model;
        float[][] Features(IDataView data) => classifier.Features(data.GetColumn<string>("Text").Select(t => classifier.Encode(t, null)).ToArray());
        var trainFeatures = Features(train);
        var labels = train.GetColumn<uint>("Label").Select(l => (int)l - 1).ToArray();
        var (inside, outside) = (Features(inScope), Features(outOfScope));
        using var scope = NewDisposeScope();
        var weight = classifier.Network.Head.Output.weight!.detach();             // [C, d]
        var bias = classifier.Network.Head.Output.bias!.detach();                 // [C]
        Tensor Logits(float[][] f) => Matrix(f).matmul(weight.t()) + bias;        // [B, C]
        var mahalanobis = Mahalanobis(Matrix(trainFeatures), labels, classifier.Classes);
        var scores = new (string, Func<float[][], float[]>)[]
        {
            ("largest logit", f => Logits(f).max(1).values.data<float>().ToArray()),
            ("energy (log-sum-exp of the logits)", f => Logits(f).logsumexp(1).data<float>().ToArray()),
            ("largest probability (at T = 1)", f => softmax(Logits(f), 1).max(1).values.data<float>().ToArray()),
            ("− Mahalanobis distance to the nearest class mean (shared covariance of the training rows)", mahalanobis),
            ("− Mahalanobis distance, features scaled to unit length", Mahalanobis(Normalized(Matrix(trainFeatures)), labels, classifier.Classes, normalize: true)),
            ("cosine similarity to the nearest training row", Nearest(trainFeatures, 1)),
            ("cosine similarity to the 10th nearest training row", Nearest(trainFeatures, 10)),
            ("cosine similarity to the nearest class mean", NearestMean(trainFeatures, labels, classifier.Classes)),
        };
        return scores.Select(s => (s.Item1, Auc(s.Item2(inside), s.Item2(outside)))).ToList();
    }

    private static double Auc(float[] inside, float[] outside) =>
        OutOfScopeMetrics.From(inside, new bool[inside.Length], outside, 0).AreaUnderRocCurve;

    private static Tensor Matrix(float[][] rows) => tensor(rows.SelectMany(r => r).ToArray(), [rows.Length, rows[0].Length]);

    private static Tensor Normalized(Tensor f) => f / f.norm(1, keepdim: true).clamp_min(1e-12);

    /// <summary>The cosine similarity to the <paramref name="k"/>-th most similar training row.</summary>
    private static Func<float[][], float[]> Nearest(float[][] train, int k)
    {
        var bank = Normalized(Matrix(train)).DetachFromDisposeScope();            // [N, d]
        return rows =>
        {
            using var scope = NewDisposeScope();
            var similarity = Normalized(Matrix(rows)).matmul(bank.t());            // [B, N]
            return similarity.topk(k, 1).values.select(1, k - 1).data<float>().ToArray();
        };
    }

    /// <summary>The cosine similarity to the most similar class mean of the training rows' features.</summary>
    private static Func<float[][], float[]> NearestMean(float[][] train, int[] labels, int classes)
    {
        var y = tensor(labels.Select(l => (long)l).ToArray());
        var means = zeros(classes, train[0].Length);
        means.index_add_(0, y, Matrix(train), 1.0);
        var bank = Normalized(means).DetachFromDisposeScope();
        return rows =>
        {
            using var scope = NewDisposeScope();
            return Normalized(Matrix(rows)).matmul(bank.t()).max(1).values.data<float>().ToArray();
        };
    }

    /// <summary>−min_c (f − μ_c)ᵀ Σ⁻¹ (f − μ_c), Σ the within-class covariance of the training features (plus 1e-6·trace/d on the diagonal).</summary>
    private static Func<float[][], float[]> Mahalanobis(Tensor features, int[] labels, int classes, bool normalize = false)
    {
        int d = (int)features.shape[1];
        var y = tensor(labels.Select(l => (long)l).ToArray());
        var means = zeros(classes, d, dtype: float64);
        var f64 = features.to_type(float64);
        means.index_add_(0, y, f64, 1.0);
        var counts = bincount(y, minlength: classes).to_type(float64).clamp_min(1).unsqueeze(1);
        means = (means / counts).DetachFromDisposeScope();
        var centred = f64 - means.index_select(0, y);
        var covariance = centred.t().matmul(centred) / labels.Length;
        covariance += eye(d, dtype: float64) * (1e-6 * covariance.trace().item<double>() / d);
        var precision = linalg.inv(covariance).DetachFromDisposeScope();
        var meanTerm = (means.matmul(precision) * means).sum(1).DetachFromDisposeScope();          // [C]
        return rows =>
        {
            using var scope = NewDisposeScope();
            var f = (normalize ? Normalized(Matrix(rows)) : Matrix(rows)).to_type(float64);
            var a = f.matmul(precision);                                             // [B, d]
            var distance = (a * f).sum(1, keepdim: true) - (2 * a.matmul(means.t())) + meanTerm.unsqueeze(0); // [B, C]
            return (-distance.min(1).values).to_type(float32).data<float>().ToArray();
        };
    }
}
