using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Training;

/// <summary>
/// The dense AdamW step that visits only rows some gradient has touched (<c>FusedAdamW.ActiveRows</c>, <c>AdamWKernel.StepActive</c>)
/// against the plain dense step, and a training run with the token embedding's sparse lookup against one without it.
/// </summary>
public class QuietRowTests
{
    [Fact]
    public void Stepping_only_touched_rows_and_decaying_the_rest_equals_the_dense_step_bit_for_bit_across_a_restore()
    {
        random.manual_seed(4);
        using var embedding = nn.Embedding(300, 40);
        var weight = embedding.weight!;
        var reference = new Parameter(weight.detach().clone());
        using var gradient = new TableGradient { Attached = true };
        using var sparse = new FusedAdamW([weight], weightDecay: 0.1) { RowSources = [gradient] };
        using var dense = new FusedAdamW([reference], weightDecay: 0.1);
        // Rows touched once keep moving on their moments in later steps; rows never touched only decay.
        long[][] batches = [[.. Enumerable.Range(0, 10)], [.. Enumerable.Range(5, 10)], [.. Enumerable.Range(100, 11)], [0, 1, 2, 3], [250, 7, 7, 7]];
        for (int step = 0; step < batches.Length; step++)
        {
            if (step == 3)
            {
                using var saved = new MemoryStream();                            // a restore forgets the touched rows
                using (var writer = new BinaryWriter(saved, System.Text.Encoding.UTF8, leaveOpen: true)) sparse.SaveState(writer);
                saved.Position = 0;
                using var reader = new BinaryReader(saved);
                sparse.LoadState(reader);
            }
            var tokens = tensor(batches[step]).view(1, -1);
            weight.grad = null;
            (SparseEmbedding.Lookup(tokens, weight, gradient) * randn(1, tokens.shape[1], 40)).sum().backward();
            Assert.NotNull(gradient.NonZeroRowsOf(weight));                    // the step takes the touched-rows path
            reference.grad = weight.grad!.clone();
            double lr = 0.01 * (step + 1);
            sparse.Step(lr, gradScale: 0.5);
            dense.Step(lr, gradScale: 0.5);
            Assert.True(weight.bytes.SequenceEqual(reference.bytes), $"step {step}: parameters differ");
            Assert.True(sparse.ExpAvg(0).bytes.SequenceEqual(dense.ExpAvg(0).bytes), $"step {step}: first moments differ");
        }
    }

    /// <summary>6 steps of a small language model whose 2,048-token vocabulary a batch of 256 tokens covers sparsely; with a
    /// checkpoint every 2 steps when <paramref name="checkpoint"/> is given, cancelled after <paramref name="cancelAfter"/> steps.</summary>
    private static (float[] Losses, Tensor[] Parameters, bool Sparse) Train(bool sparseEmbedding, string? checkpoint = null, int? cancelAfter = null)
    {
        random.manual_seed(9);
        var config = MemoryFormerConfig.Nano with { Width = 32, Heads = 2, BitsPerChunk = 8, Layers = 1, ContextLength = 32, VocabularySize = 2048 };
        using var model = new LanguageModel(config);
        var windows = randint(0, 2048, [16, 33], dtype: ScalarType.Int64, generator: new Generator(3));
        var task = new LanguageModelTask(model, windows, windows, batchSize: 8, seed: 9, CPU);
        var options = new TrainingOptions
        {
            MaxSteps = 6, WarmupSteps = 1, GradientClip = 0.05, ReportEvery = 1, CheckpointPath = checkpoint,
            CheckpointEverySteps = checkpoint is null ? 0 : 2,
        };
        bool sawSparse = false;
        using var cancel = new CancellationTokenSource();
        var progress = new SynchronousProgress(p =>
        {
            sawSparse |= model.Backbone.EmbeddingGradient.NonZeroRows is not null;
            if (p.Step == cancelAfter) cancel.Cancel();
        });
        TrainingResult result = null!;
        KernelSettings.Current.With(k => k.SparseEmbeddingGradient = sparseEmbedding,
            () => result = TrainingLoop.Run(model, task, options, progress, null, cancel.Token));
        return (result.LossHistory.Select(l => (float)l).ToArray(), model.parameters().Select(p => p.detach().clone()).ToArray(), sawSparse);
    }

    private static void AssertSameBytes((float[] Losses, Tensor[] Parameters, bool Sparse) a, (float[] Losses, Tensor[] Parameters, bool Sparse) b)
    {
        Assert.Equal(a.Losses, b.Losses);
        for (int i = 0; i < a.Parameters.Length; i++)
            Assert.True(a.Parameters[i].bytes.SequenceEqual(b.Parameters[i].bytes), $"parameter {i} differs");
    }

    [Fact]
    public void Training_with_the_sparse_embedding_lookup_follows_the_dense_run_to_rounding()
    {
        var on = Train(sparseEmbedding: true);
        var off = Train(sparseEmbedding: false);
        Assert.True(on.Sparse);
        Assert.False(off.Sparse);
        Assert.Equal(off.Losses.Length, on.Losses.Length);
        for (int i = 0; i < on.Losses.Length; i++)
            Assert.Equal(off.Losses[i], on.Losses[i], 4);
        for (int i = 0; i < on.Parameters.Length; i++)
            Assert.True(allclose(on.Parameters[i], off.Parameters[i], 1e-3, 1e-5), $"parameter {i} differs beyond rounding");
    }

    [Fact]
    public void The_sparse_path_repeats_its_bytes_on_two_threads_and_across_a_cancel_and_resume()
    {
        int previous = get_num_threads();
        set_num_threads(2);
        try
        {
            var straight = Train(sparseEmbedding: true);
            AssertSameBytes(straight, Train(sparseEmbedding: true));

            using var folder = new Reliability.CheckpointFolder();
            string path = folder.File("run.ckpt");
            Assert.ThrowsAny<OperationCanceledException>(() => Train(sparseEmbedding: true, path, cancelAfter: 3));
            Assert.Equal(3, Reliability.CheckpointFolder.StepOf(path));
            var resumed = Train(sparseEmbedding: true, path);                  // the optimizer's touched rows rebuilt from the moments
            Assert.True(resumed.Sparse);
            Assert.Equal(straight.Parameters.Length, resumed.Parameters.Length);
            for (int i = 0; i < straight.Parameters.Length; i++)
                Assert.True(straight.Parameters[i].bytes.SequenceEqual(resumed.Parameters[i].bytes), $"parameter {i} differs after the resume");
            Assert.Equal(straight.Losses[^1], resumed.Losses[^1]);
        }
        finally { set_num_threads(previous); }
    }
}
