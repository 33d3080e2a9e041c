using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Tests.MLNet;
using Microsoft.ML.MemoryFormer.Tests.LanguageModeling;
using Microsoft.ML.MemoryFormer.Tests.Reliability;

namespace Microsoft.ML.MemoryFormer.Tests.Training;

/// <summary>
/// A Fit that fails or is cancelled disposes everything it built (model, row tensors, class weights). Measured as this
/// thread's live tensors: a cancelled Fit must leave exactly as many as a Fit whose transformer is then disposed. (Not
/// zero: TorchSharp counts every <c>new Parameter(tensor)</c> once more than it counts down, see <see cref="MemoryProbe"/>.)
/// A leaked model keeps all its parameters counted, since only a finalizer, on another thread, would ever free them.
/// </summary>
public class FitDisposalTests
{
    private static long LiveTensorsLeftBy(Action run)
    {
        run();                                             // first run: lazily built caches are not a leak
        long before = MemoryProbe.Measure().Tensors;
        run();
        return MemoryProbe.Measure().Tensors - before;
    }

    /// <summary>Asserts that a Fit cancelled at its first progress report leaves what a completed and disposed Fit leaves.</summary>
    private static void AssertCancelledFitDisposes<TOptions>(Func<TOptions> options, Func<TOptions, IDisposable> fit)
        where TOptions : MemoryFormerTrainerOptions
    {
        long completed = LiveTensorsLeftBy(() => fit(options()).Dispose());
        long cancelled = LiveTensorsLeftBy(() =>
        {
            using var cancel = new CancellationTokenSource();
            var o = options();
            o.CancellationToken = cancel.Token;
            o.Progress = new SynchronousProgress(_ => cancel.Cancel());
            Assert.ThrowsAny<OperationCanceledException>(() => fit(o));
        });
        Assert.Equal(completed, cancelled);
    }

    [Fact]
    public void A_cancelled_tabular_Fit_disposes_its_model()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(TabularRows.RegressionRows(96, 1));
        AssertCancelledFitDisposes(() => TabularRows.TinyOptions(epochs: 4), o => ml.Regression.Trainers.MemoryFormerTabular(o).Fit(data));
    }

    [Fact]
    public void A_cancelled_text_classification_Fit_disposes_its_model()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(ClassificationRows.Binary());
        AssertCancelledFitDisposes(() =>
            {
                var o = ClassificationRows.Options(epochs: 4);
                o.ClassWeighting = ClassWeighting.Balanced;
                return o;
            },
            o => ml.BinaryClassification.Trainers.MemoryFormerTextClassification(o).Fit(data));
    }

    [Fact]
    public void A_cancelled_language_model_Fit_disposes_its_model()
    {
        var ml = new MLContext(1);
        var data = ml.Data.LoadFromEnumerable(LanguageModelData.Corpus);
        AssertCancelledFitDisposes(() => LanguageModelData.NanoOptions(steps: 20), o => ml.Text.MemoryFormer(o).Fit(data));
    }
}
