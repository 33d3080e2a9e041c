using System.ComponentModel;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using Spectre.Console.Cli;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf probe-update</c>: the row passes with the fused AdamW update of one whole d = 512 training step (issue 16), on synthetic
/// tables of <c>perf train --width 512</c>'s shapes: 6 blocks × (Q, K, V [16384, 512], ML₁ [16384, 640], ML₂ [65536, 512]), bf16 moments,
/// N = 2048 tokens, K = 64 chunks, uniform codes. The blocks are walked in turn, so every table and moment comes from memory as in a
/// step (3.3 GB, ten times the L3). Times the pass as it is and under <see cref="KernelSettings"/> variants, interleaved, and beside it
/// the floors of its parts: the same bytes streamed without arithmetic, the arithmetic on rows that stay in L1, the row pass alone.
/// </summary>
internal sealed unsafe class UpdateProbeCommand : Command<UpdateProbeCommand.Settings>
{
    internal sealed class Settings : PerfSettings
    {
        [CommandOption("--rounds")]
        [Description("Interleaved rounds after one warm-up round (median). Default 7; --quick: 3.")]
        public int? Rounds { get; init; }

        [CommandOption("--blocks")]
        [Description("Blocks of tables (the step's 6 by default).")]
        [DefaultValue(6)]
        public int Blocks { get; init; } = 6;

        [CommandOption("--variants")]
        [Description("Comma-separated variants beside the default: noupdateprefetch, updateprefetch, nohitprefetch, noprefetches; plainupdate (LeanBf16Update off). Default: updateprefetch, noupdateprefetch, nohitprefetch.")]
        [DefaultValue("updateprefetch,noupdateprefetch,nohitprefetch")]
        public string Variants { get; init; } = "updateprefetch,noupdateprefetch,nohitprefetch";

        [CommandOption("--no-floors")]
        [Description("Skip the floor bodies (stream, arithmetic, row pass alone).")]
        public bool NoFloors { get; init; }
    }

    private static readonly Dictionary<string, Action<KernelSettings>> Tweaks = new()
    {
        ["default"] = _ => { },
        ["noupdateprefetch"] = k => k.PrefetchUpdateRows = false,
        ["nohitprefetch"] = k => k.PrefetchHitRows = false,
        ["noprefetches"] = k => k.PrefetchUpdateRows = k.PrefetchHitRows = false,
        ["updateprefetch"] = k => k.PrefetchUpdateRows = true,
        ["plainupdate"] = k => k.LeanBf16Update = false,
    };

    private const int N = 2048, K = 64;

    /// <summary>One table of the step with its moments, ∂L/∂y, hits and weight gradient.</summary>
    private sealed class Table : IDisposable
    {
        public readonly int Rows, Width;
        public readonly float* Values, GradOut, WeightGrad;
        public readonly ushort* M, V;
        public readonly RowHits Hits;

        public Table(int bits, int width, Random random)
        {
            Rows = K << bits;
            Width = width;
            long elements = (long)Rows * width;
            Values = (float*)NativeMemory.AlignedAlloc((nuint)(elements * 4), 64);
            M = (ushort*)NativeMemory.AlignedAlloc((nuint)(elements * 2), 64);
            V = (ushort*)NativeMemory.AlignedAlloc((nuint)(elements * 2), 64);
            GradOut = (float*)NativeMemory.AlignedAlloc((nuint)((long)N * width * 4), 64);
            WeightGrad = (float*)NativeMemory.AlignedAlloc(N * K * 4, 64);
            for (long i = 0; i < elements; i++)
                Values[i] = ((int)((ulong)i * 2654435761UL % 1000) - 500) * 2e-5f;
            new Span<ushort>(M, (int)elements).Fill(0x3A00);                       // small positive bf16 moments
            new Span<ushort>(V, (int)elements).Fill(0x3500);
            for (long i = 0; i < (long)N * width; i++)
                GradOut[i] = ((int)((ulong)i * 40503UL % 1000) - 500) * 1e-6f;
            new Span<float>(WeightGrad, N * K).Clear();
            var rows = new int[N * K];
            var weights = new float[N * K];
            for (int i = 0; i < N; i++)
            {
                for (int c = 0; c < K; c++)
                {
                    rows[(i * K) + c] = (c << bits) + random.Next(1 << bits);       // [N, K]: chunk c's rows are [c·2^τ, (c+1)·2^τ)
                    weights[(i * K) + c] = (float)random.NextDouble();
                }
            }
            fixed (float* w = weights)
                Hits = RowHits.Build(rows, rows.Length, K, w, Rows, chunked: true);
        }

        public TableGradientPass.RowPass Pass => new(Hits, (nint)Values, (nint)GradOut, Width, (nint)WeightGrad);

        public BlockedTableGradient.FusedStep Step => new((nint)M, (nint)V, new AdamWKernel.Coefficients(1e-4, 0.9, 0.95, 1e-8, 0.1, 3, 1.0), Bf16: true, Salt: 7);

        public long Elements => (long)Rows * Width;

        public void Dispose()
        {
            Hits.Dispose();
            NativeMemory.AlignedFree(Values);
            NativeMemory.AlignedFree(M);
            NativeMemory.AlignedFree(V);
            NativeMemory.AlignedFree(GradOut);
            NativeMemory.AlignedFree(WeightGrad);
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        settings.Apply();
        string machine = MachineFigures.Measure(settings);
        int rounds = settings.Rounds ?? (settings.Quick ? 3 : 7);
        var random = new Random(11);
        var tables = new List<Table>();
        for (int b = 0; b < settings.Blocks; b++)
        {
            tables.AddRange([new Table(8, 512, random), new Table(8, 512, random), new Table(8, 512, random)]);  // Q, K, V
            tables.Add(new Table(8, 640, random));                                                               // ML₁ 512 → K(τ+2)
            tables.Add(new Table(10, 512, random));                                                              // ML₂, τ + 2 = 10 bits
        }
        long elements = tables.Sum(t => t.Elements);
        long hits = tables.Sum(t => (long)t.Hits.Pairs);
        double updateGb = elements * 16.0 / 1e9, hitGb = tables.Sum(t => (double)t.Hits.Pairs * t.Width * 4) / 1e9;
        try
        {
            var names = new List<string>();
            var bodies = new List<Action>();
            foreach (var v in new[] { "default" }.Concat(settings.Variants.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)))
            {
                var tweak = Tweaks[v];
                names.Add($"row pass + fused AdamW, {v}");
                bodies.Add(() => KernelSettings.Current.With(tweak, () => { foreach (var t in tables) TableGradientPass.UpdateAll(t.Pass, t.Rows, t.Step); }));
            }
            int variants = bodies.Count;
            if (!settings.NoFloors)
            {
                names.Add("floor: the update's bytes streamed (read p, m, v; write them back), no arithmetic");
                bodies.Add(() => { foreach (var t in tables) Stream(t); });
                names.Add("floor: the update's arithmetic on one row kept in L1, as many elements");
                bodies.Add(() => Arithmetic(elements));
                names.Add("floor: the update's arithmetic as above, the plain loop (LeanBf16Update off)");
                bodies.Add(() => KernelSettings.Current.With(Tweaks["plainupdate"], () => Arithmetic(elements)));
                names.Add("  floor: the plain loop's arithmetic with its square root and division replaced by multiplies (other results: what the rest costs ports 0/5)");
                bodies.Add(() => NoDivider(elements));
                names.Add("  of it: one square root and one division per element alone (vsqrtps + vdivps), as many elements");
                bodies.Add(() => Divider(elements));
                names.Add("floor: the row pass alone (gradient rows kept in cache, no update)");
                bodies.Add(() => { foreach (var t in tables) RowPassOnly(t, dots: true); });
                names.Add("floor: the hits' ∂L/∂y rows alone (the row pass without the table row and ∂L/∂w)");
                bodies.Add(() => { foreach (var t in tables) RowPassOnly(t, dots: false); });
            }
            var wall = Timing.InterleaveRounds(bodies, rounds);
            var cpu = CpuRounds(bodies, rounds);
            var table = new PerfTable("probe-update", $"One d = 512 step's row passes with the fused AdamW ({settings.Blocks} blocks × 5 tables, " +
                $"{elements / 1e6:F0} M elements, {hits / 1e6:F2} M hits; median of {rounds} interleaved rounds)",
                "body", "ms", "CPU ms", "default ÷ this (wall, per round)", "default ÷ this (CPU)", "GB/s of the update's bytes");
            for (int i = 0; i < bodies.Count; i++)
            {
                string ratio = i < variants ? RoundRatio(wall[0], wall[i]) : "";
                string cpuRatio = i < variants ? RoundRatio(cpu[0], cpu[i]) : "";
                double ms = Timing.Median(wall[i]);
                table.AddRow(names[i], ms, Timing.Median(cpu[i]), ratio, cpuRatio, updateGb / ms * 1e3);
            }
            table.AddNote($"the update's bytes: {updateGb:F2} GB (fp32 value read + write, bf16 m and v read + write: 16 B an element); the hits' ∂L/∂y rows " +
                $"{hitGb:F2} GB (from [N, h] buffers of {N * 512 * 4 >> 20}–{N * 640 * 4 >> 20} MB, L2/L3); variants: noupdateprefetch = PrefetchUpdateRows off, " +
                "updateprefetch = PrefetchUpdateRows on, nohitprefetch = PrefetchHitRows off; the floors do the same work in pieces: " +
                "the stream moves the update's bytes with vector loads and stores in the same row order on the same threads, the arithmetic runs " +
                "Bf16Moments.UpdateRow over one 512-element row in L1 for as many elements, the row pass writes each row's gradient into a per-thread row (reading each table row for the dots), the ∂L/∂y floor only sums the hits' rows");
            table.AddNote(machine);
            table.Publish(settings.Output);
        }
        finally
        {
            foreach (var t in tables)
                t.Dispose();
        }
        return 0;
    }

    private static string RoundRatio(double[] baseline, double[] variant)
    {
        var ratios = baseline.Zip(variant, (b, v) => b / v).Order().ToArray();
        var c = System.Globalization.CultureInfo.InvariantCulture;
        return $"{Timing.Median(ratios).ToString("F3", c)} ({ratios[0].ToString("F2", c)}–{ratios[^1].ToString("F2", c)})";
    }

    private static double[][] CpuRounds(List<Action> bodies, int rounds)
    {
        var cpu = bodies.Select(_ => new double[rounds]).ToArray();
        for (int round = 0; round < rounds; round++)
        {
            foreach (int b in Timing.Rotation(bodies.Count, round))
            {
                double start = LayerPhases.ProcessCpuMs();
                bodies[b]();
                cpu[b][round] = LayerPhases.ProcessCpuMs() - start;
            }
        }
        return cpu;
    }

    /// <summary>Reads and writes back the value and both moments of every row, 64 bytes at a time, rows split as the pass splits them.</summary>
    private static void Stream(Table t)
    {
        int h = t.Width;
        KernelParallel.For(t.Rows, h * (1L + (t.Hits.Pairs / Math.Max(1, t.Rows))), (start, end) =>
        {
            for (int r = start; r < end; r++)
            {
                long o = (long)r * h;
                float* p = t.Values + o;
                for (int i = 0; i + 16 <= h; i += 16)
                    (Vector512.Load(p + i) * Vector512<float>.One).Store(p + i);
                ushort* m = t.M + o, v = t.V + o;
                for (int i = 0; i + 32 <= h; i += 32)
                {
                    (Vector512.Load(m + i) | Vector512<ushort>.Zero).Store(m + i);
                    (Vector512.Load(v + i) | Vector512<ushort>.Zero).Store(v + i);
                }
            }
        });
    }

    /// <summary>The bf16 AdamW arithmetic over <paramref name="elements"/> elements, on one 512-element row per thread that stays in L1.</summary>
    private static void Arithmetic(long elements) => OnL1Rows(elements, &Bf16Moments.UpdateRow);

    /// <summary>Runs <paramref name="row"/> (a bf16 AdamW row body) over <paramref name="elements"/> elements, 512 at a time on one row
    /// per thread that stays in L1 (gradients 1e-3, moments of ordinary size).</summary>
    private static void OnL1Rows(long elements, delegate*<float*, float*, ushort*, ushort*, int, in AdamWKernel.Coefficients, long, uint, void> row)
    {
        int rows = (int)(elements / 512);
        var c = new AdamWKernel.Coefficients(1e-4, 0.9, 0.95, 1e-8, 0.1, 3, 1.0);
        KernelParallel.For(rows, 512 * 8, (start, end) =>
        {
            var p = new float[512];
            var g = new float[512];
            var m = new ushort[512];
            var v = new ushort[512];
            Array.Fill(g, 1e-3f);
            Array.Fill(m, (ushort)0x3A00);
            Array.Fill(v, (ushort)0x3500);
            fixed (float* pp = p, gp = g)
            fixed (ushort* mp = m, vp = v)
            {
                for (int r = start; r < end; r++)
                    row(pp, gp, mp, vp, 512, c, (long)r * 512, 7);
            }
        });
    }

    /// <summary>What the AdamW step's divider does alone: a square root and a division for each of <paramref name="elements"/> elements,
    /// sixteen at a time, eight independent chains (no loads, no stores but the result).</summary>
    private static void Divider(long elements)
    {
        int blocks = (int)(elements / 128);
        var sink = new float[KernelParallel.Workers * 16];
        KernelParallel.For(blocks, 128 * 8, (start, end) =>
        {
            Vector512<float> a0 = Vector512.Create(1.5f), a1 = Vector512.Create(1.6f), a2 = Vector512.Create(1.7f), a3 = Vector512.Create(1.8f),
                a4 = Vector512.Create(1.9f), a5 = Vector512.Create(2.1f), a6 = Vector512.Create(2.2f), a7 = Vector512.Create(2.3f);
            var one = Vector512.Create(1.0001f);
            for (int b = start; b < end; b++)
            {
                a0 = one / Vector512.Sqrt(a0);
                a1 = one / Vector512.Sqrt(a1);
                a2 = one / Vector512.Sqrt(a2);
                a3 = one / Vector512.Sqrt(a3);
                a4 = one / Vector512.Sqrt(a4);
                a5 = one / Vector512.Sqrt(a5);
                a6 = one / Vector512.Sqrt(a6);
                a7 = one / Vector512.Sqrt(a7);
            }
            var total = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
            lock (sink)
                sink[0] += total.GetElement(0);
        });
    }

    /// <summary><see cref="Arithmetic"/> with <c>Bf16Moments.UpdateRow512</c>'s loop copied here and its square root and division
    /// replaced by multiplies: the same loads, noise hash, rounding and stores, no divider (other results; a floor only).</summary>
    private static void NoDivider(long elements) => OnL1Rows(elements, &NoDividerRow);

    private static void NoDividerRow(float* p, float* g, ushort* m, ushort* v, int n, in AdamWKernel.Coefficients c, long index, uint salt)
    {
        var lanes = Vector512.Create(0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u, 9u, 10u, 11u, 12u, 13u, 14u, 15u);
        var mask = Vector512.Create(0xFFFFu);
        var saltVector = Vector512.Create(salt);
        Vector512<float> decay = Vector512.Create(c.Decay), b1 = Vector512.Create(c.Beta1), omb1 = Vector512.Create(c.OneMinusBeta1),
            b2 = Vector512.Create(c.Beta2), omb2 = Vector512.Create(c.OneMinusBeta2), ib = Vector512.Create(1f / c.Bias2Sqrt),
            eps = Vector512.Create(c.Eps), negStep = Vector512.Create(c.NegStepSize);
        for (int i = 0; i + 32 <= n; i += 32)
        {
            var (m0, m1) = Vector512.Widen(Vector512.Load(m + i));
            var (v0, v1) = Vector512.Widen(Vector512.Load(v + i));
            var noise0 = Bf16Moments.Noise512(Vector512.Create((uint)(index + i)) + lanes, saltVector);
            var noise1 = Bf16Moments.Noise512(Vector512.Create((uint)(index + i + 16)) + lanes, saltVector);
            var (mo0, vo0) = Update(p + i, g + i, m0, v0);
            var (mo1, vo1) = Update(p + i + 16, g + i + 16, m1, v1);
            Vector512.Narrow((mo0.AsUInt32() + (noise0 & mask)) >> 16, (mo1.AsUInt32() + (noise1 & mask)) >> 16).Store(m + i);
            Vector512.Narrow((vo0.AsUInt32() + (noise0 >> 16)) >> 16, (vo1.AsUInt32() + (noise1 >> 16)) >> 16).Store(v + i);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        (Vector512<float> M, Vector512<float> V) Update(float* p, float* g, Vector512<uint> m16, Vector512<uint> v16)
        {
            var gi = Vector512.Load(g);
            var pi = Vector512.Load(p) * decay;
            var mi = ((m16 << 16).AsSingle() * b1) + (omb1 * gi);
            var vi = ((v16 << 16).AsSingle() * b2) + (omb2 * gi * gi);
            var denom = (vi * ib) + eps;                                   // no square root
            pi += negStep * mi * denom;                                    // no division
            pi.Store(p);
            return (mi, vi);
        }
    }

    /// <summary>The row pass of <see cref="TableGradientPass.UpdateAll"/> without the update: each row's gradient into a per-thread row;
    /// without <paramref name="dots"/> only the weighted sum of the hits' ∂L/∂y rows (no table row read, no ∂L/∂w).</summary>
    private static void RowPassOnly(Table t, bool dots)
    {
        var pass = dots ? t.Pass : t.Pass with { WeightGradient = 0 };
        int h = t.Width;
        KernelParallel.For(t.Rows, h * (1L + (t.Hits.Pairs / Math.Max(1, t.Rows))), (start, end) =>
        {
            var row = new float[h + 16];
            bool prefetch = pass.Prefetching;
            fixed (float* g = row)
            {
                for (int r = start; r < end; r++)
                {
                    if (prefetch && r + 1 < end)
                        pass.Prefetch(r + 1);
                    pass.Write(r, g, cached: true);
                }
            }
        });
    }
}
