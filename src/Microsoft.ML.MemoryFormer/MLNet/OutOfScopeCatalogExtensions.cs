using Microsoft.ML.Data;

namespace Microsoft.ML.MemoryFormer.MLNet;

/// <summary>
/// Out-of-scope detection for any multiclass model on ML.NET's catalog (<c>mlContext.MulticlassClassification</c>): a
/// confidence threshold fitted on in-scope rows, and <see cref="OutOfScopeMetrics"/> for scored in-scope and out-of-scope
/// rows. The confidence is the largest probability of the <c>Score</c> vector, so a MemoryFormer classifier and ML.NET's
/// own trainers (SdcaMaximumEntropy, LbfgsMaximumEntropy) are measured alike.
/// </summary>
public static class OutOfScopeCatalogExtensions
{
    /// <summary>
    /// The largest confidence threshold that accepts at least <paramref name="inScopeRecall"/> of the given in-scope rows:
    /// fit it on validation rows, then reject a prediction whose largest <c>Score</c> value is below it.
    /// </summary>
    /// <param name="catalog">The multiclass catalog.</param>
    /// <param name="inScope">In-scope rows as the model scored them (<c>model.Transform(validation)</c>).</param>
    /// <param name="inScopeRecall">The fraction of in-scope rows to accept, in (0, 1]; 0.95 by default.</param>
    /// <param name="scoreColumnName">The vector of class probabilities.</param>
    /// <returns>The threshold: accept a row when its confidence is at least this.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="inScopeRecall"/> is outside (0, 1].</exception>
    /// <exception cref="ArgumentException">The score column is missing or not a vector of Single, or there are no rows.</exception>
    public static float FitOutOfScopeThreshold(this MulticlassClassificationCatalog catalog, IDataView inScope,
        double inScopeRecall = 0.95, string scoreColumnName = "Score")
    {
        ArgumentNullException.ThrowIfNull(catalog);
        CheckRecall(inScopeRecall);
        return OutOfScopeMetrics.ThresholdFor(Confidences(inScope, nameof(inScope), scoreColumnName, out _), inScopeRecall);
    }

    /// <summary>
    /// Evaluates out-of-scope detection by confidence: the area under the ROC curve of in-scope against out-of-scope rows,
    /// and at the threshold, the in-scope recall and accuracy and the out-of-scope recall.
    /// </summary>
    /// <param name="catalog">The multiclass catalog.</param>
    /// <param name="inScope">Scored in-scope rows with their key-typed label (as for <c>Evaluate</c>). A row whose label the
    /// model never saw (key 0) counts as an in-scope error.</param>
    /// <param name="outOfScope">Scored out-of-scope rows (their label column, if any, is not read).</param>
    /// <param name="threshold">The confidence from which a row is accepted, e.g. from <see cref="FitOutOfScopeThreshold"/> on
    /// validation rows; null fits it on <paramref name="inScope"/> itself at <paramref name="inScopeRecall"/> (then the in-scope
    /// recall is that target by construction).</param>
    /// <param name="inScopeRecall">The recall a null <paramref name="threshold"/> is fitted to, in (0, 1].</param>
    /// <param name="labelColumnName">The key-typed label column of <paramref name="inScope"/>.</param>
    /// <param name="scoreColumnName">The vector of class probabilities, in both views.</param>
    /// <returns>The metrics.</returns>
    /// <example>
    /// <code>
    /// float threshold = mlContext.MulticlassClassification.FitOutOfScopeThreshold(classifier.Transform(validationData), inScopeRecall: 0.95);
    /// var oos = mlContext.MulticlassClassification.EvaluateOutOfScope(classifier.Transform(test), classifier.Transform(outOfScopeQueries), threshold);
    /// Console.WriteLine($"AUC {oos.AreaUnderRocCurve:F3}, in-scope accuracy {oos.InScopeAccuracy:P1}, out-of-scope recall {oos.OutOfScopeRecall:P1}");
    /// </code>
    /// </example>
    /// <exception cref="ArgumentException">A column is missing or of the wrong type, or a view has no rows.</exception>
    public static OutOfScopeMetrics EvaluateOutOfScope(this MulticlassClassificationCatalog catalog, IDataView inScope, IDataView outOfScope,
        float? threshold = null, double inScopeRecall = 0.95, string labelColumnName = "Label", string scoreColumnName = "Score")
    {
        ArgumentNullException.ThrowIfNull(catalog);
        CheckRecall(inScopeRecall);
        if (threshold is { } t && float.IsNaN(t))
            throw new ArgumentException("The threshold is NaN: pass a confidence, or null to fit one at inScopeRecall.", nameof(threshold));
        var confidences = Confidences(inScope, nameof(inScope), scoreColumnName, out var predicted);
        var labels = Labels(inScope, labelColumnName);
        var correct = labels.Select((label, i) => label != 0 && label - 1 == predicted[i]).ToArray();
        var outside = Confidences(outOfScope, nameof(outOfScope), scoreColumnName, out _);
        return OutOfScopeMetrics.From(confidences, correct, outside, threshold ?? OutOfScopeMetrics.ThresholdFor(confidences, inScopeRecall));
    }

    private static void CheckRecall(double recall)
    {
        if (!(recall > 0 && recall <= 1))
            throw new ArgumentOutOfRangeException("inScopeRecall", recall, "The in-scope recall must be in (0, 1], e.g. 0.95 to accept 95 % of in-scope rows.");
    }

    /// <summary>Each row's largest score and its index (the predicted class, as ML.NET's evaluator takes it: the first maximum).</summary>
    private static float[] Confidences(IDataView data, string argument, string column, out int[] argmax)
    {
        ArgumentNullException.ThrowIfNull(data, argument);
        var type = data.Schema.GetColumnOrNull(column)?.Type;
        if (type is null)
            throw new ArgumentException($"The {argument} rows have no score column '{column}' (columns: {string.Join(", ", data.Schema.Where(c => !c.IsHidden).Select(c => c.Name))}); " +
                "pass the model's scored output (model.Transform(data)) or name its score column.", argument);
        if (type is not VectorDataViewType { ItemType: NumberDataViewType n } || n != NumberDataViewType.Single)
            throw new ArgumentException($"Column '{column}' of the {argument} rows is {type}, not the vector of Single class probabilities a multiclass model writes.", argument);
        var confidences = new List<float>();
        var predicted = new List<int>();
        using (var cursor = data.GetRowCursor([data.Schema[column]]))           // one row's scores at a time: any number of rows
        {
            var getter = cursor.GetGetter<VBuffer<float>>(data.Schema[column]);
            var scores = default(VBuffer<float>);
            while (cursor.MoveNext())
            {
                getter(ref scores);
                var values = scores.DenseValues();
                float best = float.NaN;
                int at = 0, c = 0;
                foreach (var value in values)
                {
                    if (float.IsNaN(best) || value > best)
                        (best, at) = (value, c);
                    c++;
                }
                confidences.Add(best);
                predicted.Add(at);
            }
        }
        if (confidences.Count == 0)
            throw new ArgumentException($"The {argument} rows are empty.", argument);
        argmax = [.. predicted];
        return [.. confidences];
    }

    private static uint[] Labels(IDataView data, string column)
    {
        var type = data.Schema.GetColumnOrNull(column)?.Type;
        if (type is null)
            throw new ArgumentException($"The in-scope rows have no label column '{column}': name the key-typed label column the model was trained on.", "labelColumnName");
        if (type is not KeyDataViewType { RawType: var raw } || raw != typeof(uint))
            throw new ArgumentException($"Label column '{column}' is {type}; it must be the key-typed label the model was trained on " +
                "(apply the training pipeline's MapValueToKey to the in-scope rows).", "labelColumnName");
        return data.GetColumn<uint>(column).ToArray();
    }
}
