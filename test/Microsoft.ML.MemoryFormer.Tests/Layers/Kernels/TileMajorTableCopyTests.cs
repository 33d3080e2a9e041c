using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Runtime;
using Microsoft.ML.MemoryFormer.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

/// <summary>
/// The kept tile-major copy of <see cref="KernelSettings.TileMajorCopyFromUpdate"/>: a row written by the update equals the
/// forward's own copy of it; training with the switch on and off gives the same bits (losses, tables, moments, outputs) while the
/// copy is built once and then only written by the fused update; and a table written any other way is never read through a
/// stale copy.
/// </summary>
public class TileMajorTableCopyTests
{
    [SkippableTheory]
    [InlineData(64)]
    [InlineData(70)]                                                              // a zero-padded last tile
    public unsafe void A_row_written_by_the_update_equals_the_forwards_copy_of_it(int h)
    {
        Skip.IfNot(TiledGather.IsAccelerated, "Needs AVX-512.");
        const int rows = 37;
        var table = randn(rows, h);
        int tiles = (h + 15) / 16;
        long floats = (long)tiles * rows * 16;
        var expected = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)(floats * 4), 64);
        var written = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)(floats * 4), 64);
        try
        {
            new Span<float>(written, (int)floats).Fill(float.NaN);
            TiledGather.ToTileMajor(TensorMemory.Floats(table), h, rows, expected);
            for (int r = rows - 1; r >= 0; r--)
                TileMajorTableCopy.WriteRow(TensorMemory.Floats(table) + ((long)r * h), h, rows, written, r);
            System.Runtime.Intrinsics.X86.Sse.StoreFence();
            Assert.True(new Span<float>(expected, (int)floats).SequenceEqual(new Span<float>(written, (int)floats)));
        }
        finally
        {
            System.Runtime.InteropServices.NativeMemory.AlignedFree(expected);
            System.Runtime.InteropServices.NativeMemory.AlignedFree(written);
        }
    }

    [SkippableTheory]
    [InlineData(MomentPrecision.BFloat16)]
    [InlineData(MomentPrecision.Float32)]
    public void Training_with_the_kept_copy_gives_the_same_bits_and_builds_it_once(MomentPrecision moments)
    {
        Skip.IfNot(TableVersion.IsAvailable && TiledGather.IsAccelerated, "Needs libtorch's version counter and AVX-512.");
        var on = Train(on: true, moments, (model, step) =>
        {
            var kept = ParameterGroups.TableLayers(model).Where(l => l.TileCopy.Bytes > 0).ToList();
            Assert.NotEmpty(kept);                                                // the tiled forward ran through kept copies
            foreach (var layer in kept)
            {
                AssertCopyIsCurrent(layer);
                Assert.Equal(1, layer.TileCopy.Rebuilds);                         // built by the first forward, then only row writes
            }
        });
        var off = Train(on: false, moments, (model, step) =>
            Assert.All(ParameterGroups.TableLayers(model), l => Assert.Equal(0, l.TileCopy.Bytes)));
        Assert.Equal(off.Losses, on.Losses);
        Assert.Equal(off.Output, on.Output);
        Assert.Equal(off.Moments, on.Moments);
        Assert.All(off.Parameters.Zip(on.Parameters), p => Assert.True(p.First.AsSpan().SequenceEqual(p.Second)));
    }

    [SkippableFact]
    public void The_separate_update_or_the_switch_turned_off_in_a_step_leaves_no_current_copy()
    {
        Skip.IfNot(TableVersion.IsAvailable && TiledGather.IsAccelerated, "Needs libtorch's version counter and AVX-512.");
        Train(on: true, MomentPrecision.BFloat16, (model, step) =>
            Assert.All(ParameterGroups.TableLayers(model).Where(l => l.TileCopy.Bytes > 0), l =>
            {
                Assert.False(l.TileCopy.IsCurrent(l.Table), "the separate step's raw write went unnoticed");
                Assert.Equal(step + 1, l.TileCopy.Rebuilds);                      // one per forward
            }), separate: true);
        Train(on: true, MomentPrecision.BFloat16, (model, step) =>
            Assert.All(ParameterGroups.TableLayers(model).Where(l => l.TileCopy.Bytes > 0), l =>
                Assert.Equal(step % 2 == 1, !l.TileCopy.IsCurrent(l.Table))), offInOddBackwards: true);
    }

    [SkippableFact]
    public void An_edit_or_a_load_is_never_read_through_a_stale_copy()
    {
        Skip.IfNot(TableVersion.IsAvailable && TiledGather.IsAccelerated, "Needs libtorch's version counter and AVX-512.");
        random.manual_seed(4);
        using var layer = new MemoryLayer(8, 6, 32, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.1, 0.01);
        var x = randn(300, 48);
        var first = Forward(layer, x, on: true);
        Assert.Equal(1, layer.TileCopy.Rebuilds);
        AssertCopyIsCurrent(layer);

        using (no_grad())
            layer.Table[3, 1] = layer.Table[3, 1] + 0.5f;                         // a user's edit
        Assert.False(layer.TileCopy.IsCurrent(layer.Table));
        var edited = Forward(layer, x, on: true);
        Assert.False(first.eq(edited).all().item<bool>(), "the edit changed nothing");
        Assert.True(edited.eq(Forward(layer, x, on: false)).all().item<bool>(), "the forward after the edit read a stale copy");
        Assert.Equal(2, layer.TileCopy.Rebuilds);

        var bytes = ModuleWeights.ToBytes(layer);
        using (no_grad())
            layer.Table.mul_(2);
        Forward(layer, x, on: true);
        ModuleWeights.Load(layer, bytes, MemoryFormerConfig.Nano);                // a raw load into the same storage
        Assert.False(layer.TileCopy.IsCurrent(layer.Table));
        Assert.True(edited.eq(Forward(layer, x, on: true)).all().item<bool>(), "the forward after the load read a stale copy");
        AssertCopyIsCurrent(layer);
    }

    /// <summary>The kept copy equals the forward's own tile-major copy of the layer's table, bit for bit.</summary>
    private static unsafe void AssertCopyIsCurrent(MemoryLayer layer)
    {
        Assert.True(layer.TileCopy.IsCurrent(layer.Table), "the copy is not current");
        int rows = (int)layer.Table.shape[0], h = (int)layer.Table.shape[1];
        long floats = (long)((h + 15) / 16) * rows * 16;
        var expected = new float[floats];
        fixed (float* e = expected)
            TiledGather.ToTileMajor(TensorMemory.Floats(layer.Table.detach()), h, rows, e);
        Assert.True(expected.AsSpan().SequenceEqual(new ReadOnlySpan<float>(layer.TileCopy.Pointer, (int)floats)), "the copy differs from the table");
    }

    private static Tensor Forward(MemoryLayer layer, Tensor x, bool on)
    {
        Tensor y = null!;
        KernelSettings.Current.With(k =>
        {
            k.TileMajorCopyFromUpdate = on;
            k.TiledForwardMinTableBytes = 0;
        }, () =>
        {
            var input = x.detach().clone().requires_grad_(true);                  // a forward a backward can follow
            y = layer.call(input).detach();
        });
        return y;
    }

    private sealed record Run(double[] Losses, float[] Output, byte[] Moments, byte[][] Parameters);

    /// <summary>Four optimizer steps of a tiny MemoryFormer whose gathers all take the tiled forward, <paramref name="check"/> after each.</summary>
    private static Run Train(bool on, MomentPrecision moments, Action<LanguageModel, int> check, bool separate = false, bool offInOddBackwards = false)
    {
        const int steps = 4;
        Run result = null!;
        KernelSettings.Current.With(k =>
        {
            k.TileMajorCopyFromUpdate = on;
            k.TiledForwardMinTableBytes = 0;
            k.FusedTableUpdate = !separate;
        }, () =>
        {
            random.manual_seed(9);
            using var model = new LanguageModel(Config);
            var task = new LanguageModelTask(model, Windows(), Windows(), batchSize: 16, seed: 9, CPU);
            using var optimizer = new ModelOptimizer(model, new TrainingOptions
            {
                MaxSteps = steps, WarmupSteps = 1, TableGradientClipping = TableGradientClipping.PreviousStep, TableMomentPrecision = moments,
            });
            model.train();
            var losses = new double[steps];
            for (int step = 0; step < steps; step++)
            {
                using var scope = NewDisposeScope();
                optimizer.ZeroGrad(step);
                var loss = task.Loss(step).Loss;
                losses[step] = loss.item<float>();
                KernelSettings.Current.With(k => k.TileMajorCopyFromUpdate = on && !(offInOddBackwards && step % 2 == 1), () => loss.backward());
                optimizer.Step(step);
                check(model, step);
            }
            using var state = new MemoryStream();
            using (var writer = new BinaryWriter(state, System.Text.Encoding.UTF8, leaveOpen: true))
                optimizer.SaveState(writer);
            float[] output;
            using (no_grad())
                output = task.Loss(steps).Loss.detach().reshape(-1).data<float>().ToArray();
            result = new Run(losses, output, state.ToArray(), model.parameters().Select(p => p.bytes.ToArray()).ToArray());
        });
        return result;
    }

    private static readonly MemoryFormerConfig Config = MemoryFormerConfig.Nano with { Width = 64, Heads = 2, BitsPerChunk = 4, Layers = 1, ContextLength = 32 };

    private static Tensor Windows() => randint(0, 64, [16, 33], dtype: ScalarType.Int64, generator: new TorchSharp.torch.Generator(3));
}
