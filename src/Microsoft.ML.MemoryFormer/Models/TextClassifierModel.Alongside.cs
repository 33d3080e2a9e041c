using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>Scoring buffered rows with their tokenizing beside the encoder (<see cref="TokenizeAlongside"/>).</summary>
internal sealed partial class TextClassifierModel
{
    /// <summary>Longest text (characters of both texts of a pair) a scorer keeps as text until the call that scores it
    /// (<see cref="Buffer"/>); a longer row is encoded when it is read, so a buffer of very long rows still holds only what is scored.</summary>
    internal const int MaxBufferedTextLength = 16_384;

    /// <summary>
    /// Tokenize a call's buffered rows (<see cref="Buffer"/>) group by group on one of the fused encoder's workers while the others run
    /// the group before (<see cref="KernelParallel.ForAlongside"/>), instead of every row on the reading thread
    /// before the encoder starts, with a core idle. The same windows, the same groups, the same kernels: the same bits. Applies to the
    /// fused encoder with more than one worker; only one thread tokenizes at a time (two tokenizing at once lost, docs/benchmarks.md,
    /// "Scoring, eighth round"). On by default since 2026-12-07 (s19, scoring round 9); the benchmark switches it off to compare.
    /// </summary>
    internal bool TokenizeAlongside { get; set; } = true;

    /// <summary>A row as a scorer buffers it for <see cref="LogProbabilities(IReadOnlyList{ScoringRow})"/>: its text while
    /// <see cref="TokenizeAlongside"/> is on and it is at most <see cref="MaxBufferedTextLength"/> characters, else its windows now.</summary>
    internal ScoringRow Buffer(string text, string? second) =>
        TokenizeAlongside && text.Length + (second?.Length ?? 0) <= MaxBufferedTextLength
            ? new ScoringRow(null, text, second)
            : new ScoringRow(Encode(text, second), null, null);

    /// <summary>
    /// Log-probabilities of each class for rows buffered by <see cref="Buffer"/>: as <see cref="LogProbabilities(IReadOnlyList{int[][]})"/>
    /// of their windows, the same bits. With <see cref="TokenizeAlongside"/> on the fused path, the first group's rows are encoded here,
    /// and each later group's while the encoder runs the group before it.
    /// </summary>
    internal float[][] LogProbabilities(IReadOnlyList<ScoringRow> rows)
    {
        if (!TokenizeAlongside || UseReferenceScoring || !UseFusedScoring || rows.Count == 0 || KernelParallel.Workers < 2
            || !FusedEncoder.Supports(network.Backbone))
            return LogProbabilities(rows.Select(r => r.Windows ?? Encode(r.Text!, r.Second)).ToArray());
        long start = Stopwatch.GetTimestamp();
        var profile = Profile;
        var stream = new RowWindows(rows, this, ScoringTokensPerBatch);
        var windowLogits = new List<float>();
        using (var noGrad = no_grad())
        using (var scope = NewDisposeScope())                                    // the fused encoder's set-up too (Runtime/TorchScope.cs)
        {
            var memory = KeepFusedMemory ? fusedMemory.Take() : null;
            var fused = NewFusedEncoder(memory);
            stream.EncodeGroupFrom(0);                                           // the first group's rows, before the encoder
            if (profile is not null) profile.PadMs += Elapsed(ref start);
            for (int first = 0; first < stream.Windows.Count;)
            {
                int end = GroupEnd(stream.Windows, first);                       // every window it needs is encoded
                var group = stream.Windows.GetRange(first, end - first).ToArray();
                ExceptionDispatchInfo? failure = null;
                Action? next = stream.Done || stream.Settles(end) ? null : () =>
                {
                    try { stream.EncodeGroupFrom(end, AlongsideGroups); }
                    catch (Exception e) { failure = ExceptionDispatchInfo.Capture(e); }
                };
                var logits = new float[group.Length * Classes];
                GroupLogits(fused, group, logits, profile, ref start, next);
                failure?.Throw();
                windowLogits.AddRange(logits);
                first = end;
            }
            if (memory is not null)
                fusedMemory.Return(memory);                                      // not on an exception: a fresh one next time
        }
        var encoded = stream.Encoded;
        if (profile is not null)
        {
            profile.Calls++;
            profile.Windows += encoded.Sum(w => w.Length);
            profile.Tokens += encoded.Sum(w => w.Sum(window => (long)window.Length));
        }
        var rowLogits = MeanLogits(encoded, windowLogits.ToArray());
        var result = new float[encoded.Length][];
        for (int i = 0; i < encoded.Length; i++) result[i] = LogSoftmax(rowLogits.AsSpan(i * Classes, Classes));
        if (profile is not null) profile.HeadMs += Elapsed(ref start);
        return result;
    }

    /// <summary>How many groups' rows the worker beside the encoder tokenizes at once (when the next group's are not there yet): the
    /// tokenizer's tables go cold in the core's caches while it runs the encoder, so fewer, longer turns cost it less.</summary>
    private const int AlongsideGroups = 4;

    /// <summary>A call's rows encoded in order, as far as the groups scored so far need: their windows back to back.</summary>
    private sealed class RowWindows(IReadOnlyList<ScoringRow> rows, TextClassifierModel model, int budget)
    {
        private readonly List<long> tokensBefore = [0];                         // tokens of windows [0, i)

        /// <summary>Each row's windows, filled in order.</summary>
        public int[][][] Encoded { get; } = new int[rows.Count][][];

        /// <summary>The windows of the rows encoded so far.</summary>
        public List<int[]> Windows { get; } = [];

        /// <summary>Whether every row is encoded.</summary>
        public bool Done => encodedRows == rows.Count;

        private int encodedRows;

        /// <summary>Whether the group that starts at window <paramref name="first"/> is settled: the windows from it hold more than the
        /// budget's tokens (so <see cref="GroupEnd"/> stops inside them), or every row is encoded.</summary>
        public bool Settles(int first) => Done || (first < Windows.Count && tokensBefore[^1] - tokensBefore[first] > budget);

        /// <summary>Encodes rows until the windows from <paramref name="first"/> on hold more than <paramref name="groups"/> budgets' tokens
        /// (at least the group that starts there is settled, <see cref="Settles"/>), or every row is encoded.</summary>
        public void EncodeGroupFrom(int first, int groups = 1)
        {
            while (!Done && (first >= Windows.Count || tokensBefore[^1] - tokensBefore[first] <= (long)groups * budget))
            {
                var row = rows[encodedRows];
                var windows = row.Windows ?? model.Encode(row.Text!, row.Second);
                Encoded[encodedRows++] = windows;
                foreach (var window in windows)
                {
                    Windows.Add(window);
                    tokensBefore.Add(tokensBefore[^1] + window.Length);
                }
            }
        }
    }
}
