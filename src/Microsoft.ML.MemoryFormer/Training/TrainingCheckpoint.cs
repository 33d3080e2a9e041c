using System.Diagnostics;
using System.Text.Json;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Persistence;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Training;

/// <summary>
/// A training run's checkpoint file (<see cref="TrainingOptions.CheckpointPath"/>): the run's fingerprint, the weights,
/// the optimizer's moments and step counts, and the loop's <see cref="TrainingState"/> (step, loss history, items,
/// wall time, early-stopping state and best weights) and the weight average when the run keeps one, as entries of a <see cref="ModelArchive"/> written atomically,
/// so a kill at any moment leaves the previous checkpoint loadable. The learning rate is a pure function of the step
/// and the batches and dropout of a step are pure functions of (seed, step), so they need no entry. The tensors are
/// streamed between TorchSharp and the file, never gathered in managed arrays, so a checkpoint may exceed 2 GB and
/// needs no memory beyond the model's and the optimizer's. While it exists it holds an exclusive lock on a hidden
/// <c>.{file}.lock</c> beside the file, so a second run (in this or another process) cannot train on the same
/// checkpoint at the same time.
/// </summary>
internal sealed class TrainingCheckpoint : IDisposable
{
    private const string FingerprintEntry = "run.json";
    private const string StateEntry = "loop.bin";
    private const string WeightsEntry = "weights.bin";
    private const string OptimizerEntry = "optimizer.bin";
    private const string BestWeightsEntry = "best-weights.bin";
    private const string AverageEntry = "weight-average.bin";

    private readonly string path;
    private readonly RunFingerprint fingerprint;
    private readonly TrainingOptions options;
    private readonly Stopwatch sinceLastSave = Stopwatch.StartNew();
    private readonly FileStream runLock;

    /// <summary>A checkpoint at <see cref="TrainingOptions.CheckpointPath"/> for the run of <paramref name="model"/> with
    /// <paramref name="options"/>, identified further by the caller's <paramref name="run"/> parts (architecture, data).</summary>
    /// <exception cref="InvalidOperationException">Another run holds the checkpoint.</exception>
    /// <remarks>Options left at a run-dependent default are resolved here (<see cref="Options"/>): an unset
    /// <see cref="TrainingOptions.TableGradientClipping"/> takes the rule of the checkpoint's run when the file holds
    /// one (logged to <paramref name="log"/> when it is not today's default), else today's default; an unset
    /// <see cref="TrainingOptions.TableMomentPrecision"/> likewise (a new run's default depends on the model's device:
    /// <see cref="ModelOptimizer.DefaultMoments"/>).</remarks>
    public TrainingCheckpoint(nn.Module model, TrainingOptions options, RunFingerprint? run, Action<string>? log = null)
    {
        path = Path.GetFullPath(options.CheckpointPath ?? throw new ArgumentException("No checkpoint path.", nameof(options)));
        this.options = options = Resolve(options, PeekFingerprint(path), path, log, ModelOptimizer.DefaultMoments(model));
        fingerprint = run ?? new RunFingerprint();
        // The rule is recorded as the resolved one; Global is left out, as every checkpoint did before PreviousStep became
        // the default, so those resume (and a Global checkpoint written now still resumes on older versions).
        // Likewise the moments' precision: Float32, the default before BFloat16, is left out.
        var rule = options.TableClippingRule;
        var moments = options.TableMomentPrecision!.Value;
        var identifying = options with
        {
            CheckpointPath = null, CheckpointEverySteps = 0, CheckpointInterval = null, ReportEvery = 1,
            TableGradientClipping = rule == TableGradientClipping.Global ? null : rule,
            TableMomentPrecision = moments == MomentPrecision.Float32 ? null : moments,
        };
        fingerprint.WithProperties(nameof(TrainingOptions), JsonSerializer.Serialize(identifying))
            .With("parameters", string.Join("; ", model.state_dict().Select(kv => $"{kv.Key} [{string.Join(", ", kv.Value.shape)}]")));
        runLock = Lock(path);                                                // last: nothing after it can throw and leak it
    }

    /// <summary>The run's options with its run-dependent defaults resolved (the table clipping rule and the moments'
    /// precision are never null).</summary>
    public TrainingOptions Options => options;

    private const string ClippingPart = nameof(TrainingOptions) + "." + nameof(TrainingOptions.TableGradientClipping);

    /// <summary>The fingerprint stored in the checkpoint at <paramref name="checkpoint"/>, or null when there is none or
    /// it cannot be read (<see cref="TryResume"/> then reports why).</summary>
    private static RunFingerprint? PeekFingerprint(string checkpoint)
    {
        if (!File.Exists(checkpoint)) return null;
        try
        {
            using var archive = ModelArchive.Load(checkpoint);
            return RunFingerprint.FromJson(archive.GetText(FingerprintEntry));
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or JsonException)
        {
            return null;
        }
    }

    /// <summary>The table clipping rule of the run that wrote <paramref name="saved"/>: the recorded number, Global when
    /// absent (the default before PreviousStep), null when the record is not a known rule.</summary>
    private static TableGradientClipping? RuleOf(RunFingerprint saved) =>
        !saved.Parts.TryGetValue(ClippingPart, out var text) ? TableGradientClipping.Global
        : int.TryParse(text, out int number) && Enum.IsDefined((TableGradientClipping)number) ? (TableGradientClipping)number
        : null;

    private const string MomentsPart = nameof(TrainingOptions) + "." + nameof(TrainingOptions.TableMomentPrecision);

    /// <summary>The moments' precision of the run that wrote <paramref name="saved"/>: the recorded number, Float32 when
    /// absent (the default before BFloat16), null when the record is not a known precision.</summary>
    private static MomentPrecision? MomentsOf(RunFingerprint saved) =>
        !saved.Parts.TryGetValue(MomentsPart, out var text) ? MomentPrecision.Float32
        : int.TryParse(text, out int number) && Enum.IsDefined((MomentPrecision)number) ? (MomentPrecision)number
        : null;

    private static TrainingOptions Resolve(TrainingOptions options, RunFingerprint? saved, string checkpoint, Action<string>? log,
        MomentPrecision newRunMoments)
    {
        if (options.TableGradientClipping is null)
        {
            var rule = saved is null ? null : RuleOf(saved);
            if (rule is { } r && r != TrainingOptions.DefaultTableGradientClipping)
                log?.Invoke($"the checkpoint '{checkpoint}' was written by a run with TableGradientClipping {r}; the run continues " +
                    $"with {r} (TableGradientClipping is unset; a new run would use {TrainingOptions.DefaultTableGradientClipping})");
            options = options with { TableGradientClipping = rule ?? TrainingOptions.DefaultTableGradientClipping };
        }
        if (options.TableMomentPrecision is null)
        {
            var moments = saved is null ? null : MomentsOf(saved);
            if (moments is { } m && m != newRunMoments)
                log?.Invoke($"the checkpoint '{checkpoint}' was written by a run with TableMomentPrecision {m}; the run continues " +
                    $"with {m} (TableMomentPrecision is unset; a new run would use {newRunMoments})");
            options = options with { TableMomentPrecision = moments ?? newRunMoments };
        }
        return options;
    }

    /// <summary>
    /// Opens <c>.{file}.lock</c> beside <paramref name="checkpoint"/> exclusively (an OS file lock, released even if the
    /// process dies) and deletes it when closed.
    /// </summary>
    private static FileStream Lock(string checkpoint)
    {
        var folder = Path.GetDirectoryName(checkpoint)!;
        Directory.CreateDirectory(folder);
        var lockPath = Path.Combine(folder, $".{Path.GetFileName(checkpoint)}.lock");
        try
        {
            return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (IOException e)
        {
            throw new InvalidOperationException($"The checkpoint '{checkpoint}' is in use by another training run, in this process or " +
                $"another (it holds '{lockPath}'). Wait for that run to end, or set CheckpointPath to another path.", e);
        }
    }

    /// <summary>Releases the checkpoint for other runs.</summary>
    public void Dispose() => runLock.Dispose();

    /// <summary>The step the file holds (-1 before the first save or resume).</summary>
    public int SavedStep { get; private set; } = -1;

    /// <summary>
    /// Loads the checkpoint into <paramref name="model"/>, <paramref name="optimizer"/> and <paramref name="average"/> (when
    /// the run keeps one) and returns the loop's state, or null when there is no file yet.
    /// </summary>
    /// <exception cref="InvalidOperationException">The file is the checkpoint of another run.</exception>
    /// <exception cref="InvalidDataException">The file cannot be read.</exception>
    public TrainingState? TryResume(nn.Module model, ModelOptimizer optimizer, WeightAverage? average = null)
    {
        if (!File.Exists(path)) return null;
        try
        {
            using var archive = ModelArchive.Load(path);
            var saved = RunFingerprint.FromJson(archive.GetText(FingerprintEntry));
            if (fingerprint.FirstDifference(saved) == ClippingPart && RuleOf(saved) is { } savedRule)
                throw new InvalidOperationException($"The checkpoint '{path}' belongs to another training run: its " +
                    $"{ClippingPart} differs (checkpoint: {savedRule}; this run: {options.TableClippingRule}). Leave " +
                    $"TableGradientClipping unset (null) or set it to {savedRule} to resume that run; or delete the file, or " +
                    "set CheckpointPath to another path, to start this run afresh.");
            if (fingerprint.FirstDifference(saved) == MomentsPart && MomentsOf(saved) is { } savedMoments)
                throw new InvalidOperationException($"The checkpoint '{path}' belongs to another training run: its " +
                    $"{MomentsPart} differs (checkpoint: {savedMoments}; this run: {options.TableMomentPrecision}): its optimizer state " +
                    $"holds moments of the other precision. Leave TableMomentPrecision unset (null) or set it to {savedMoments} to " +
                    "resume that run; or delete the file, or set CheckpointPath to another path, to start this run afresh.");
            if (fingerprint.Difference(saved) is { } difference)
                throw new InvalidOperationException($"The checkpoint '{path}' belongs to another training run: {difference}. " +
                    "Delete the file, or set CheckpointPath to another path, to start this run afresh.");
            using (var weights = archive.OpenRead(WeightsEntry))
                model.load(weights, strict: true);
            Layers.Kernels.TableVersion.BumpAll(model);                       // raw writes: bf16 table copies must see them
            Read(archive, OptimizerEntry, optimizer.LoadState);
            if (average is not null)
                Read(archive, AverageEntry, average.ReadFrom);                // the fingerprint says the file has one
            var state = Read(archive, StateEntry, TrainingState.ReadFrom);
            if (archive.Contains(BestWeightsEntry))
                state.SetBestWeights(Read(archive, BestWeightsEntry, reader => ReadTensors(reader, model)));
            SavedStep = state.Step;
            return state;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or JsonException)
        {
            throw new InvalidDataException($"The checkpoint '{path}' cannot be read ({e.Message}). Delete it to start the run afresh.", e);
        }
    }

    /// <summary>Whether a checkpoint is due after <paramref name="step"/> completed steps (by step count or by time).</summary>
    public bool IsDue(int step) => step != SavedStep
        && ((options.CheckpointEverySteps > 0 && step % options.CheckpointEverySteps == 0)
            || (options.CheckpointInterval is { } interval && sinceLastSave.Elapsed >= interval));

    /// <summary>Writes the checkpoint of <paramref name="state"/> atomically (the previous file stays whole until the new one replaces it).</summary>
    public void Save(nn.Module model, ModelOptimizer optimizer, TrainingState state, TimeSpan elapsed, WeightAverage? average = null)
    {
        WriteArchive(model, optimizer, state, elapsed, average);
        SavedStep = state.Step;
        sinceLastSave.Restart();
    }

    private void WriteArchive(nn.Module model, ModelOptimizer optimizer, TrainingState state, TimeSpan elapsed, WeightAverage? average)
    {
        using var archive = new ModelArchive()
            .SetText(FingerprintEntry, fingerprint.ToJson())
            .SetStreamed(WeightsEntry, stream => model.save(stream))
            .SetStreamed(OptimizerEntry, stream => Write(stream, optimizer.SaveState))
            .Set(StateEntry, Write(writer => state.WriteTo(writer, elapsed)));
        if (average is not null)
            archive.SetStreamed(AverageEntry, stream => Write(stream, average.WriteTo));
        if (state.BestWeights is { } best)
            archive.SetStreamed(BestWeightsEntry, stream => Write(stream, writer => WriteTensors(writer, best)));
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        archive.SaveAtomically(path);
    }

    private static byte[] Write(Action<BinaryWriter> write)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream)) write(writer);
        return stream.ToArray();
    }

    private static void Write(Stream stream, Action<BinaryWriter> write)
    {
        using var writer = new BinaryWriter(stream);
        write(writer);
    }

    private static T Read<T>(ModelArchive archive, string entry, Func<BinaryReader, T> read)
    {
        using var reader = new BinaryReader(archive.OpenRead(entry));
        var result = read(reader);
        if (reader.BaseStream.Position != reader.BaseStream.Length)
            throw new InvalidDataException($"Checkpoint entry '{entry}' has {reader.BaseStream.Length - reader.BaseStream.Position} unread bytes.");
        return result;
    }

    private static void Read(ModelArchive archive, string entry, Action<BinaryReader> read) =>
        Read(archive, entry, reader => { read(reader); return true; });

    private static void WriteTensors(BinaryWriter writer, Dictionary<string, Tensor> tensors)
    {
        writer.Write(tensors.Count);
        foreach (var (name, tensor) in tensors)
        {
            writer.Write(name);
            tensor.Save(writer);
        }
    }

    private static Dictionary<string, Tensor> ReadTensors(BinaryReader reader, nn.Module model)
    {
        var shapes = model.state_dict();
        int count = reader.ReadInt32();
        var tensors = new Dictionary<string, Tensor>(count);
        using var noGrad = no_grad();
        for (int i = 0; i < count; i++)
        {
            string name = reader.ReadString();
            var tensor = (shapes.TryGetValue(name, out var like) ? like : throw new InvalidDataException($"The model has no weight '{name}'."))
                .detach().clone().DetachFromDisposeScope();
            tensor.Load(reader);
            tensors[name] = tensor;
        }
        return tensors;
    }
}
