using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Persistence;
using Microsoft.ML.MemoryFormer.Text;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// A trained text classifier, independent of ML.NET: encodes rows with its tokenizer, runs the encoder in eval mode
/// and returns log-probabilities; saves to and loads from a <see cref="ModelArchive"/>.
/// </summary>
/// <remarks>
/// A row longer than one window is read as up to <see cref="MaxWindowsPerRow"/> windows whose logits are averaged
/// (<see cref="TextPairEncoder.EncodeWindows"/>, <see cref="SequencePooling.MeanOverWindows"/>); the logits are divided by
/// <see cref="Temperature"/> before the softmax. Models saved before these settings existed load with one window,
/// temperature 1, no n-gram bag (<see cref="HashedNgramBag"/>), <see cref="WindowLayout.LastMovedBack"/> windows and fp32 scoring, and
/// score exactly as before.
/// </remarks>
internal sealed class TextClassifierModel : IDisposable
{
    /// <summary>Archive entry with the head settings (JSON).</summary>
    public const string HeadEntry = "head.json";

    /// <summary>The newest <see cref="HeadSettings.ReaderVersion"/> this library reads.</summary>
    public const int SupportedReaderVersion = 2;

    /// <summary>The head entry's JSON. <see cref="WindowLayout"/> and <see cref="ScoringPrecision"/> are written only when
    /// they are not the default, so a model with the defaults saves the same bytes as before the settings existed.
    /// <c>ReaderVersion</c> is the oldest reader that scores the model as it was saved: 2 when a setting from 2026-12-06 on
    /// (the window layout, the scoring precision) is not its default, omitted (1) otherwise. A reader refuses a version above
    /// <see cref="SupportedReaderVersion"/> instead of ignoring settings it does not know (readers from before the field
    /// existed cannot check it).</summary>
    private sealed record HeadSettings(int Classes, PoolingKind Pooling, int MaxTokensPerRow, int MaxWindowsPerRow = 1, double Temperature = 1,
        int NgramBuckets = 0, int NgramLength = 2,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] WindowLayout WindowLayout = WindowLayout.LastMovedBack,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] InferencePrecision ScoringPrecision = InferencePrecision.Float32,
        [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] int ReaderVersion = 0);

    private readonly SequenceClassifier network;
    private readonly TextPairEncoder encoder;
    private readonly Device device;

    public TextClassifierModel(SequenceClassifier network, ITextTokenizer tokenizer, int maxTokensPerRow, Device device,
        int maxWindowsPerRow = 1, double temperature = 1, WindowLayout windowLayout = WindowLayout.LastMovedBack,
        InferencePrecision scoringPrecision = InferencePrecision.Float32)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxWindowsPerRow, 1);
        if (!Enum.IsDefined(windowLayout))
            throw new ArgumentOutOfRangeException(nameof(windowLayout), windowLayout, "Unknown window layout.");
        if (scoringPrecision is not (InferencePrecision.Float32 or InferencePrecision.BFloat16))
            throw new ArgumentOutOfRangeException(nameof(scoringPrecision), scoringPrecision, "Scoring precision must be Float32 or BFloat16.");
        if (!(temperature > 0 && double.IsFinite(temperature)))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "The temperature must be positive and finite.");
        this.network = network;
        this.device = device;
        Tokenizer = tokenizer;
        MaxWindowsPerRow = maxWindowsPerRow;
        Temperature = temperature;
        WindowLayout = ScoringWindowLayout = windowLayout;
        encoder = new TextPairEncoder(tokenizer, maxTokensPerRow);
        network.to(device).eval();
        ScoringPrecision = scoringPrecision;
        if (scoringPrecision != InferencePrecision.Float32)
            UseInferencePrecision(scoringPrecision);                           // copies of the final weights
    }

    /// <summary>Number of classes.</summary>
    public int Classes => network.Head.Outputs;

    /// <summary>The tokenizer rows are encoded with.</summary>
    public ITextTokenizer Tokenizer { get; }

    /// <summary>Longest token window (see <see cref="TextPairEncoder"/> for the truncation policy and <see cref="MaxWindowsPerRow"/> for long texts).</summary>
    public int MaxTokensPerRow => encoder.MaxTokens;

    /// <summary>Most windows of <see cref="MaxTokensPerRow"/> tokens read from one row (1 = the row's head only).</summary>
    public int MaxWindowsPerRow { get; }

    /// <summary>How a row longer than one window is cut (<see cref="TextPairEncoder.EncodeWindows"/>): the layout the model
    /// was trained with, saved with it, and what <see cref="ScoringWindowLayout"/> starts as.</summary>
    public WindowLayout WindowLayout { get; }

    /// <summary>The precision the model was trained to score in (the option <c>ScoringPrecision</c>), saved with it and applied
    /// when it is built or loaded; <see cref="UseInferencePrecision"/> changes <see cref="InferencePrecision"/>, not this.</summary>
    public InferencePrecision ScoringPrecision { get; }

    /// <summary>The logits are divided by this before the softmax (1 = uncalibrated; fitted on validation rows).</summary>
    public double Temperature { get; }

    /// <summary>The network (for tests and inspection).</summary>
    public SequenceClassifier Network => network;

    /// <summary>
    /// Most padded tokens per encoder batch when scoring (<see cref="WindowBatches"/>). Small enough that a batch's
    /// activations stay in cache, large enough that each op's fixed cost is spread over many tokens.
    /// </summary>
    internal int ScoringTokensPerBatch { get; set; } = 4096;

    /// <summary>
    /// Score every call as one batch padded to its longest window (the path before length-sorted batches): kept as the
    /// reference the batched path is tested and benchmarked against.
    /// </summary>
    internal bool UseReferenceScoring { get; set; }

    /// <summary>
    /// Run the encoder of the batched path as the fused managed inference forward (<see cref="FusedEncoder"/>: packed,
    /// unpadded windows, no torch dispatch) where it applies (<see cref="FusedEncoder.Supports"/>); off, or where it does
    /// not apply, windows run through the torch modules in length-sorted padded batches. On by default; the benchmark
    /// and the equivalence tests switch it off to compare. The same arithmetic in another order: scores agree to float
    /// rounding, except that where an activation lies within rounding of zero a token's sign-hash bit can flip and it
    /// reads another table row (a rare, isolated difference of ≈ 1e-3 in a long row's log-probabilities; docs/benchmarks.md).
    /// </summary>
    internal bool UseFusedScoring { get; set; } = true;

    /// <summary>
    /// In the fused encoder, gather the Memory Layers' rows table-major, one 32-column table slice over every token of a
    /// group (<see cref="ColumnSliceGather"/>), instead of token by token; the same results bit for bit. Off by default
    /// (measured slower); the benchmark switches it on to compare.
    /// </summary>
    internal bool UseTableMajorGathers { get; set; }

    /// <summary>In the fused encoder, the SIMD per-token kernels (<see cref="EncoderKernels"/>) rather than the decode
    /// step's scalar ones. On by default; the benchmark switches it off to compare.</summary>
    internal bool UseEncoderSimdKernels { get; set; } = true;

    /// <summary>In the fused encoder, compute the first block's Q, K and V once per distinct token id of a call rather than
    /// once per token (<see cref="FusedEncoder"/>: the same bits); a group whose new ids exceed
    /// <see cref="FusedEncoder.MaxNewIdShare"/> of its tokens, or of fewer than 256 tokens, computes per token. On by default
    /// since the working memory is kept across calls (<see cref="KeepFusedMemory"/>): its short-row loss of 2026-12-06 02:41
    /// came from the fresh arrays' gen-2 collections, not from the sharing (docs/benchmarks.md, "Scoring, fourth round");
    /// the benchmark and the equality tests switch it off to compare.</summary>
    internal bool ShareFirstProjections { get; set; } = true;

    /// <summary>Keep the fused encoder's working memory from one call to the next (<see cref="FusedEncoderMemory"/>: no
    /// ≈ 10 MB of fresh pinned arrays, and the gen-2 collections they caused, per call). On by default; the benchmark
    /// switches it off to compare.</summary>
    internal bool KeepFusedMemory { get; set; } = true;

    /// <summary>With <see cref="ShareFirstProjections"/> and <see cref="KeepFusedMemory"/>, keep the first block's per-id rows from one
    /// call to the next while the weights they came from are unchanged (libtorch's version counters; <see cref="FusedEncoderMemory.FirstRowsKey"/>)
    /// instead of rebuilding them each call; the same bits. On by default since 2026-12-07 (s18, scoring round 8); the benchmark
    /// switches it off to compare.</summary>
    internal bool KeepFirstRows { get; set; } = true;

    private readonly FusedEncoderMemory.Pool fusedMemory = new();

    /// <summary>In the fused encoder, run every block over a few windows at a time, pieces in parallel (one fork/join per
    /// group, activations kept in cache from block to block) rather than each block's passes over the whole group in turn;
    /// the same bits. Null (the default) takes it when the kernels have more than one worker: idle with two threads it
    /// scored long rows 1.82–1.98× the reference against 1.62–1.80× for the whole-group passes (four runs) and short rows
    /// faster in three of four; on one thread, where no fork/join is saved, it was no faster on long rows and ≈ 5–10 %
    /// slower on short ones (each piece cycles through every table of both blocks; docs/benchmarks.md, "Scoring, fourth
    /// round" and "Idle re-run after the s13 merges"). The benchmark and the tests set it explicitly.</summary>
    internal bool? UseWindowMajorPasses { get; set; }

    /// <summary>With window-major passes, run each piece of windows in its worker's own activation buffer, the workers taking
    /// pieces one at a time, and score a call as one group (<see cref="FusedEncoder.GroupTokens"/>) instead of groups of
    /// <see cref="ScoringTokensPerBatch"/> tokens, each a fork/join over fixed ranges of windows; the same bits. On by default since
    /// 2026-12-07 (s22, scoring round 13); the benchmark switches it off to compare.</summary>
    internal bool UsePieceBuffers { get; set; } = true;

    /// <summary>Fewest tokens of a window-major piece, or null for <see cref="FusedEncoder.PieceTokens"/> (the benchmark sweeps it).</summary>
    internal int? ScoringPieceTokens { get; set; }

    /// <summary>
    /// How a long row is cut into windows when scoring (<see cref="TextPairEncoder.EncodeWindows"/>): the trained
    /// <see cref="WindowLayout"/> unless a benchmark or test sets another one to measure a train/score mismatch (not
    /// saved: <see cref="ToArchive"/> writes <see cref="WindowLayout"/>). Applies to every scoring path; rows that fit one
    /// window and sentence pairs are unchanged. Scoring a <see cref="WindowLayout.LastMovedBack"/>-trained model with
    /// <see cref="WindowLayout.Even"/> windows, measured loaded (docs/benchmarks.md, "Scoring, fifth round"): ≈ 1.15× the
    /// rows/s and a lower log-loss on three long-document sets, at −0.85 to 0 accuracy points (the windows see other
    /// context than in training); training with the same layout: "Windows in training too".
    /// </summary>
    internal WindowLayout ScoringWindowLayout { get; set; }

    private Dictionary<nint, Bf16Matrix>? bf16Tables;

    /// <summary>The precision the fused scoring encoder computes in (<see cref="UseInferencePrecision"/>).</summary>
    public InferencePrecision InferencePrecision => bf16Tables is not null ? InferencePrecision.BFloat16 : InferencePrecision.Float32;

    /// <summary>
    /// Lower-precision batched scoring, opt-in (the fp32 weights never change). <see cref="InferencePrecision.BFloat16"/>:
    /// the fused scoring encoder gathers from bf16 copies of the Memory Layer tables (half the bytes, fp32 accumulation);
    /// norms, hashes, attention and everything else stay fp32. <see cref="InferencePrecision.Float32"/> drops the copies
    /// and gives the fp32 results back exactly. The copies are a snapshot of the current weights: call this again after
    /// the weights change. Applies where the fused encoder does (CPU fp32 MemoryFormer, <see cref="FusedEncoder.Supports"/>);
    /// the reference and torch paths stay fp32. Speed and accuracy cost: docs/benchmarks.md (<c>perf scoring</c>,
    /// <c>perf scoring-precision</c>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="precision"/> is not a defined value.</exception>
    /// <exception cref="NotSupportedException"><see cref="InferencePrecision.Int8"/>: not implemented for scoring (the precision is unchanged).</exception>
    public void UseInferencePrecision(InferencePrecision precision)
    {
        if (!Enum.IsDefined(precision))
            throw new ArgumentOutOfRangeException(nameof(precision), precision,
                $"Unknown inference precision {(int)precision}; use {string.Join(", ", Enum.GetNames<InferencePrecision>())}.");
        if (precision == InferencePrecision.Int8)
            throw new NotSupportedException("Int8 scoring is not implemented; use BFloat16 or Float32.");
        bf16Tables = null;
        if (precision == InferencePrecision.Float32)
            return;
        var tables = network.Backbone.modules().OfType<MemoryLayer>().Select(l => l.Table)
            .Where(t => TensorMemory.IsCpuFloat32(t) && t.is_contiguous()).ToArray();
        bf16Tables = tables.ToDictionary(TensorMemory.Key, Bf16Matrix.From);
    }

    /// <summary>The bf16 copy of a table made by <see cref="UseInferencePrecision"/>, or null.</summary>
    private Bf16Matrix? Bf16Table(Tensor table) =>
        bf16Tables is not null && TensorMemory.IsCpuFloat32(table) && bf16Tables.TryGetValue(TensorMemory.Key(table), out var copy)
            && copy.Rows == table.shape[0] && copy.Columns == table.shape[1] ? copy : null;

    /// <summary>When set, every call adds the time of its phases to it (the <c>perf scoring</c> benchmark).</summary>
    internal ScoringProfile? Profile { get; set; }

    /// <summary>
    /// Log-probabilities of each class for each row. The rows' windows are sorted by length and scored in batches of at
    /// most <see cref="ScoringTokensPerBatch"/> tokens, each padded only to its longest window (<see cref="WindowBatches"/>);
    /// the result equals <see cref="UseReferenceScoring"/>'s up to float rounding.
    /// </summary>
    public float[][] LogProbabilities(IReadOnlyList<(string Text, string? Second)> rows) =>
        LogProbabilities(rows.Select(r => Encode(r.Text, r.Second)).ToArray());

    /// <summary>The windows of one row, as <see cref="LogProbabilities(IReadOnlyList{int[][]})"/> reads them: a scorer that
    /// buffers rows keeps these (at most <see cref="MaxWindowsPerRow"/> × <see cref="MaxTokensPerRow"/> ids) rather than the
    /// text, so a buffer of very long rows holds only what is scored.</summary>
    public int[][] Encode(string text, string? second)
    {
        long start = Stopwatch.GetTimestamp();
        var windows = encoder.EncodeWindows(text, second, MaxWindowsPerRow, ScoringWindowLayout);
        if (Profile is { } profile) profile.TokenizeMs += Elapsed(ref start);
        return windows;
    }

    /// <summary>Log-probabilities of each class for rows already encoded by <see cref="Encode"/>.</summary>
    public float[][] LogProbabilities(IReadOnlyList<int[][]> encodedRows)
    {
        DisposedModel.ThrowIf(disposed, "MemoryFormer text classifier");
        if (encodedRows.Count == 0) return [];
        long start = Stopwatch.GetTimestamp();
        var encoded = encodedRows as int[][][] ?? encodedRows.ToArray();
        var profile = Profile;
        if (profile is not null)
        {
            profile.Calls++;
            profile.Windows += encoded.Sum(w => w.Length);
            profile.Tokens += encoded.Sum(w => w.Sum(window => (long)window.Length));
        }
        if (UseReferenceScoring) return ReferenceLogProbabilities(encoded, profile, start);
        var logits = BatchedLogits(encoded, profile, ref start);
        var result = new float[encoded.Length][];
        for (int i = 0; i < encoded.Length; i++) result[i] = LogSoftmax(logits.AsSpan(i * Classes, Classes));
        if (profile is not null) profile.HeadMs += Elapsed(ref start);
        return result;
    }

    /// <summary>The path before length-sorted batches: every window of the call in one batch padded to the longest.</summary>
    private float[][] ReferenceLogProbabilities(int[][][] encoded, ScoringProfile? profile, long start)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (tokens, mask) = PaddedBatch.Create(encoded.SelectMany(w => w).ToArray(), encoder.PadId, device); // [W, T]
        if (profile is not null)
        {
            profile.PaddedTokens += tokens.numel();
            profile.PadMs += Elapsed(ref start);
        }
        var hidden = network.Backbone.Forward(tokens, new AttentionContext(Causal: false, KeyMask: mask)); // [W, T, d]
        if (profile is not null) profile.ForwardMs += Elapsed(ref start);
        var logits = SequencePooling.MeanOverWindows(network.Outputs(tokens, hidden, mask), encoded.Select(w => w.Length).ToArray()); // [B, C]
        if (Temperature != 1)
        {
            using Scalar temperature = Temperature;                                  // named: see Runtime/LiveScalars.cs
            logits = logits.div(temperature);
        }
        var flat = F.log_softmax(logits, 1).cpu().data<float>().ToArray();          // [B·C]
        var result = Enumerable.Range(0, encoded.Length).Select(i => flat.AsSpan(i * Classes, Classes).ToArray()).ToArray();
        if (profile is not null) profile.HeadMs += Elapsed(ref start);
        return result;
    }

    /// <summary>The rows' logits [B·C] (divided by the temperature), windows in length-sorted batches.</summary>
    private float[] BatchedLogits(int[][][] encoded, ScoringProfile? profile, ref long start)
    {
        var windows = encoded.SelectMany(w => w).ToArray();
        var windowLogits = new float[windows.Length * Classes];                  // [W, C]
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();                                     // the fused encoder's set-up too (Runtime/TorchScope.cs)
        if (UseFusedScoring && FusedEncoder.Supports(network.Backbone))
            FusedWindowLogits(windows, windowLogits, profile, ref start);
        else
            BatchedWindowLogits(windows, windowLogits, profile, ref start);
        return MeanLogits(encoded, windowLogits);
    }

    /// <summary>Window logits [W, C] from the fused encoder (<see cref="FusedWindows"/>).</summary>
    private unsafe void FusedWindowLogits(int[][] windows, float[] windowLogits, ScoringProfile? profile, ref long start) =>
        FusedWindows(windows, (pooled, group, first) =>
        {
            fixed (float* logits = &windowLogits[first * Classes])
                network.PooledLogits((float*)pooled, group, logits);             // [b, C]
        }, profile, ref start);

    /// <summary>The fused encoder over the windows in order, packed unpadded into groups of at most
    /// <see cref="FusedEncoder.GroupTokens"/> tokens (a longer window forms a group alone): the whole call where the encoder runs its
    /// pieces in its workers' own buffers, else <see cref="ScoringTokensPerBatch"/>. Each group's pooled vectors [b, d] go to
    /// <paramref name="head"/> with the group and its first window's index.</summary>
    private unsafe void FusedWindows(int[][] windows, Action<nint, int[][], int> head, ScoringProfile? profile, ref long start)
    {
        bool bf16 = bf16Tables is not null;
        var memory = KeepFusedMemory ? fusedMemory.Take() : null;
        var fused = new FusedEncoder(network.Backbone, UseTableMajorGathers && !bf16, simd: UseEncoderSimdKernels,
            bf16: bf16 ? Bf16Table : null, shareFirstProjections: ShareFirstProjections, memory: memory, keepFirstRows: KeepFirstRows,
            windowMajor: UseWindowMajorPasses ?? KernelParallel.Workers > 1, pieceTokens: ScoringPieceTokens, pieceBuffers: UsePieceBuffers);
        int groupTokens = fused.GroupTokens(ScoringTokensPerBatch);
        for (int first = 0; first < windows.Length;)
        {
            int end = first + 1;
            for (long tokens = windows[first].Length; end < windows.Length && tokens + windows[end].Length <= groupTokens; end++)
                tokens += windows[end].Length;
            var group = windows[first..end];
            using (var scope = NewDisposeScope())
            {
                var pooled = fused.Pooled(group, network.Head.Pooling, profile); // [b, d]
                if (profile is not null)
                {
                    profile.PaddedTokens += group.Sum(w => (long)w.Length);
                    profile.ForwardMs += Elapsed(ref start);
                }
                head((nint)TensorMemory.Floats(pooled), group, first);
            }
            if (profile is not null) profile.HeadMs += Elapsed(ref start);
            first = end;
        }
        if (memory is not null)
            fusedMemory.Return(memory);                                          // not on an exception: a fresh one next time
    }

    /// <summary>
    /// What the head's linear layer reads for each row: the mean over the row's windows of each window's pooled vector (plus its
    /// n-gram bag when the wide branch is on), so a row's logits are this vector times the head's weight plus its bias, before
    /// the temperature. Rows already encoded by <see cref="Encode"/> → [B][d]. Fused encoder on the CPU, torch modules elsewhere.
    /// </summary>
    public unsafe float[][] Features(IReadOnlyList<int[][]> encodedRows)
    {
        DisposedModel.ThrowIf(disposed, "MemoryFormer text classifier");
        var encoded = encodedRows as int[][][] ?? encodedRows.ToArray();
        var windows = encoded.SelectMany(w => w).ToArray();
        int width = network.Config.Width;
        var windowFeatures = new float[windows.Length * width];                  // [W, d]
        using (var noGrad = no_grad())
        using (var scope = NewDisposeScope())
        {
            long start = 0;
            if (UseFusedScoring && FusedEncoder.Supports(network.Backbone))
                FusedWindows(windows, (pooled, group, first) =>
                {
                    fixed (float* features = &windowFeatures[first * width])
                        network.PooledFeatures((float*)pooled, group, features);  // [b, d]
                }, null, ref start);
            else
                foreach (var batch in WindowBatches.Plan(windows.Select(w => w.Length).ToArray(), ScoringTokensPerBatch))
                {
                    using var inner = NewDisposeScope();
                    var (tokens, mask) = PaddedBatch.Create(batch.Select(i => windows[i]).ToArray(), encoder.PadId, device); // [b, T]
                    var hidden = network.Backbone.Forward(tokens, new AttentionContext(Causal: false, KeyMask: mask)); // [b, T, d]
                    var values = network.Features(tokens, hidden, mask).cpu().data<float>();          // [b, d]
                    for (int j = 0; j < batch.Length; j++)
                        for (int c = 0; c < width; c++) windowFeatures[(batch[j] * width) + c] = values[(j * width) + c];
                }
        }
        var result = new float[encoded.Length][];
        for (int r = 0, w = 0; r < encoded.Length; w += encoded[r].Length, r++)
        {
            result[r] = new float[width];
            for (int i = 0; i < encoded[r].Length; i++)
                for (int c = 0; c < width; c++) result[r][c] += windowFeatures[((w + i) * width) + c] / encoded[r].Length;
        }
        return result;
    }

    /// <summary>Window logits [W, C] through the torch modules, windows sorted by length into padded batches (<see cref="WindowBatches"/>).</summary>
    private void BatchedWindowLogits(int[][] windows, float[] windowLogits, ScoringProfile? profile, ref long start)
    {
        foreach (var batch in WindowBatches.Plan(windows.Select(w => w.Length).ToArray(), ScoringTokensPerBatch))
        {
            using var scope = NewDisposeScope();
            var (tokens, mask) = PaddedBatch.Create(batch.Select(i => windows[i]).ToArray(), encoder.PadId, device); // [b, T]
            if (profile is not null)
            {
                profile.PaddedTokens += tokens.numel();
                profile.PadMs += Elapsed(ref start);
            }
            var hidden = network.Backbone.Forward(tokens, new AttentionContext(Causal: false, KeyMask: mask)); // [b, T, d]
            if (profile is not null) profile.ForwardMs += Elapsed(ref start);
            var outputs = network.Outputs(tokens, hidden, mask).cpu();                // [b, C]
            var values = outputs.data<float>();
            for (int j = 0; j < batch.Length; j++)
                for (int c = 0; c < Classes; c++) windowLogits[batch[j] * Classes + c] = values[j * Classes + c];
            if (profile is not null) profile.HeadMs += Elapsed(ref start);
        }
    }

    /// <summary>The rows' logits [B·C] (divided by the temperature) from their windows' logits [W, C].</summary>
    private float[] MeanLogits(int[][][] encoded, float[] windowLogits)
    {
        var logits = new float[encoded.Length * Classes];                         // [B, C]: mean over each row's windows
        for (int r = 0, w = 0; r < encoded.Length; w += encoded[r].Length, r++)
        {
            float share = 1f / encoded[r].Length;
            for (int c = 0; c < Classes; c++)
            {
                float sum = 0;
                for (int i = 0; i < encoded[r].Length; i++)
                    sum += encoded[r].Length == 1 ? windowLogits[(w + i) * Classes + c] : share * windowLogits[(w + i) * Classes + c];
                logits[r * Classes + c] = Temperature == 1 ? sum : (float)(sum / Temperature);
            }
        }
        return logits;
    }

    private static float[] LogSoftmax(ReadOnlySpan<float> logits)
    {
        float max = float.NegativeInfinity;
        foreach (var v in logits) max = Math.Max(max, v);
        double sum = 0;
        foreach (var v in logits) sum += Math.Exp(v - max);
        float logSum = (float)Math.Log(sum);
        var result = new float[logits.Length];
        for (int c = 0; c < logits.Length; c++) result[c] = logits[c] - max - logSum;
        return result;
    }

    private static double Elapsed(ref long start)
    {
        long now = Stopwatch.GetTimestamp();
        double ms = (now - start) * 1000.0 / Stopwatch.Frequency;
        start = now;
        return ms;
    }

    /// <summary>The model as archive entries: config, tokenizer, head settings and weights.</summary>
    public ModelArchive ToArchive() => new ModelArchive()
        .SetText(ModelArchive.ConfigEntry, network.Config.ToJson())
        .SetText(ModelArchive.TokenizerEntry, Tokenizer.Describe().ToJson())
        .SetText(HeadEntry, JsonSerializer.Serialize(new HeadSettings(Classes, network.Head.Pooling, MaxTokensPerRow, MaxWindowsPerRow, Temperature,
            network.NgramBag?.Buckets ?? 0, network.NgramBag?.NgramLength ?? 2, WindowLayout, ScoringPrecision,
            ReaderVersion: WindowLayout == WindowLayout.LastMovedBack && ScoringPrecision == InferencePrecision.Float32 ? 0 : 2)))
        .WithWeights(network);

    /// <summary>Rebuilds a model written by <see cref="ToArchive"/> on <paramref name="device"/>.</summary>
    public static TextClassifierModel FromArchive(ModelArchive archive, Device device)
    {
        var config = archive.GetJson(ModelArchive.ConfigEntry, MemoryFormerConfig.FromJson);
        var head = archive.GetJson(HeadEntry, ReadHead);
        var tokenizer = archive.GetJson(ModelArchive.TokenizerEntry, json => ITextTokenizer.FromDescription(TokenizerDescription.FromJson(json)));
        ModelParts.CheckTokenizerFits(tokenizer, config);
        ModuleWeights.CheckSizeFits(config, archive, headParameters: ((double)head.Classes + head.NgramBuckets) * config.Width);
        return ModuleLoader.Load(archive, config,
            () => new SequenceClassifier(config, head.Classes, head.Pooling, config.Dropout, head.NgramBuckets, head.NgramLength),
            device, network => new TextClassifierModel(network, tokenizer, head.MaxTokensPerRow, device, head.MaxWindowsPerRow, head.Temperature, head.WindowLayout, head.ScoringPrecision));
    }

    /// <summary>The head entry's settings, checked: a reader version this library does not know, or a value out of range, throws.</summary>
    private static HeadSettings ReadHead(string json)
    {
        var read = JsonSerializer.Deserialize<HeadSettings>(json) ?? throw new ArgumentException("The head settings are null.");
        if (read.ReaderVersion > SupportedReaderVersion)
            throw new ArgumentException($"The model needs reader version {read.ReaderVersion}; this library reads up to {SupportedReaderVersion}. " +
                "Update Microsoft.ML.MemoryFormer to load it.");
        return read is { Classes: >= 1, MaxTokensPerRow: >= 1, MaxWindowsPerRow: >= 1 } && Enum.IsDefined(read.Pooling) && Enum.IsDefined(read.WindowLayout)
            && read.Temperature > 0 && double.IsFinite(read.Temperature) && read.NgramBuckets >= 0 && read.NgramLength is >= 1 and <= 3
            && read.ScoringPrecision is InferencePrecision.Float32 or InferencePrecision.BFloat16 ? read
            : throw new ArgumentException("Classes, MaxTokensPerRow, MaxWindowsPerRow and Temperature must be positive, Pooling and WindowLayout known, " +
                "NgramBuckets ≥ 0, NgramLength in [1, 3] and ScoringPrecision Float32 or BFloat16.");
    }

    public void Dispose()
    {
        disposed = true;
        network.Dispose();
    }

    private bool disposed;
}
