using System.Runtime.InteropServices;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Perf;

/// <summary>
/// <c>perf layer</c>'s Memory Layer fwd + bwd (<see cref="LayerCase"/>) and each kernel of it as its own timed body, with the bytes
/// each must move (<c>perf layer-budget</c>). The kernels run on the call's own shapes: the table, codes and a ∂L/∂y of ones as
/// <c>sum(y).backward()</c> gives; none of them changes the layer.
/// </summary>
internal sealed unsafe class LayerBudget : IDisposable
{
    private readonly LayerCase layer;
    private readonly Tensor x, table, bias, gradOut, gradWeights, tableGrad, output;
    private readonly SignHashKernel.Result codes;
    private readonly int[] rows32;
    private readonly float[] weights32;
    private readonly RowHits hits;
    private readonly nint tileMajor;
    private readonly int n, k, h, rowCount;

    public LayerBudget(int width, int tokens)
    {
        layer = new LayerCase(width, tokens);
        n = tokens;
        h = width;
        k = width / LayerCase.BitsPerChunk;
        table = layer.Memory.Table.detach();
        bias = layer.Memory.Bias.detach();
        rowCount = (int)table.shape[0];
        x = randn(n, width);
        codes = SignHashKernel.Run(x, LayerCase.BitsPerChunk, l1Scaled: true, 1f, withJacobian: true);
        rows32 = codes.Rows.data<long>().Select(v => (int)v).ToArray();
        weights32 = codes.Weights.data<float>().ToArray();
        gradOut = ones(n, h);
        gradWeights = zeros(n, k);
        tableGrad = zeros_like(table);
        output = empty(n, h);
        fixed (float* w = weights32)
            hits = RowHits.Build(rows32, rows32.Length, k, w, rowCount, chunked: true);
        tileMajor = (nint)NativeMemory.AlignedAlloc((nuint)(table.numel() * sizeof(float)), 64);
        TiledGather.ToTileMajor(TensorMemory.Floats(table), h, rowCount, (float*)tileMajor, streaming: true);
    }

    public string Describe() =>
        $"K = {k}, τ = {LayerCase.BitsPerChunk}, table [{rowCount}, {h}] = {table.numel() * 4 / 1e6:F1} MB, {(double)n * k / rowCount:F0} hits a row, " +
        $"∂L/∂y [{n}, {h}] = {n * h * 4 / 1e6:F1} MB; 'the rest' = the whole call less every kernel row above it (autograd, allocations, views)";

    /// <summary>(phase, ms, MB it must move or NaN, where those bytes live) in call order, then "the rest" and Linear's.</summary>
    public List<(string Name, double Ms, double Mb, string Where)> Measure(int rounds)
    {
        double tableMb = table.numel() * 4 / 1e6, rowMb = n * h * 4 / 1e6, pairs = (double)n * k;
        bool hashRows32 = KernelSettings.Current.HashWritesRows32;
        var phases = new (string Name, Action Body, double Mb, string Where, bool Kernel)[]
        {
            ("perf layer: MF fwd+bwd (table marked written)", layer.MemoryForwardBackward, double.NaN, "", false),
            ("  the same, tile-major copy reused (no training step gets this)", layer.MemoryForwardBackwardReused, double.NaN, "", false),
            ("  hash forward with Jacobian", HashForward, (2 * rowMb) + (pairs * 12 / 1e6), "x and Jacobian [N, d] streamed; rows int64, weights", !hashRows32),
            ("  rows int64 → int32 (validated)", RowCopy, pairs * 12 / 1e6, "streamed", !hashRows32),
            ("  hash forward with Jacobian, writing the int32 rows too (HashWritesRows32)", HashForwardRows32, (2 * rowMb) + (pairs * 16 / 1e6),
                "x and Jacobian [N, d] streamed; rows int64 and int32, weights", hashRows32),
            ("  tiled forward as a training step runs it (strided tile copies, walk, output)", Strided, (pairs * 64 * h / 16 / 1e6) + tableMb + rowMb,
                "N·K·h/16 random 64-byte lines from L2; table read once (strided); output", true),
            ("    of it, the table's tiles copied alone (no walk)", StridedCopies, tableMb, "table read once, 64 or 128 bytes a row", false),
            ("  before s19: tile-major copy of the table", TileCopy, 2 * tableMb, "DRAM/L3 read, non-temporal write", false),
            ("  before s19: tiled walk from the tile-major copy (staging, 8-token walk, output)", Walk, (pairs * 64 * h / 16 / 1e6) + (2 * tableMb) + rowMb,
                "N·K·h/16 random 64-byte lines from L2; staging 2 × table; output", false),
            ("  y.sum(), the benchmark's loss (Linear's call has it too)", LossSum, rowMb, "streamed", true),
            ("  ∂L/∂y materialised (sum's expanded ones → contiguous; benchmark only: a training step's ∂L/∂y arrives contiguous)", GradOutCopy, rowMb, "written", true),
            ("  ∂L/∂w zeros [N, K]", WeightGradZeros, pairs * 4 / 1e6, "written", true),
            ("  hit sort by row (chunked)", Sort, pairs * 20 / 1e6, "rows, weights read; tokens, pairs, weights scattered", true),
            ("    before s20: each chunk's column walked (StagedHitSort off)", SortByColumns, pairs * 20 / 1e6, "the same", false),
            ("  row pass: ∂L/∂T rows and ∂L/∂w (no sort)", RowPass, (pairs * h * 4 / 1e6) + (2 * tableMb) + (pairs * 8 / 1e6),
                "N·K random ∂L/∂y rows (L3); table read, gradient written", true),
            ("  hash backward (dx = ∂L/∂w · J)", HashBackward, (2 * rowMb) + (pairs * 4 / 1e6), "streamed", true),
            ("  bias gradient (Σ_n ∂L/∂y)", BiasSums, rowMb, "streamed", true),
            ("    the managed ColumnSums on the calling thread (ManagedBiasSums on)", ManagedBiasSums, rowMb, "streamed", false),
            ("    torch's sum(0) (ManagedBiasSums off)", TorchBiasSums, rowMb, "streamed", false),
            ("perf layer: Linear fwd+bwd", layer.LinearForwardBackward, double.NaN, "", false),
            ("  Linear forward", layer.LinearForward, double.NaN, "", false),
        };
        var looped = phases.Select(p => Timing.Looped(p.Body, 2, 60)).ToArray();
        var medians = Timing.Interleave(looped.Select(l => l.Body).ToArray(), rounds);
        var ms = medians.Select((m, i) => m / looped[i].Loops).ToArray();
        var result = phases.Select((p, i) => (p.Name, ms[i], p.Mb, p.Where)).ToList();
        double kernels = phases.Select((p, i) => p.Kernel ? ms[i] : 0).Sum();
        result.Insert(result.FindIndex(r => r.Name.StartsWith("perf layer: Linear", StringComparison.Ordinal)), ("  the rest (whole − the kernels marked in the call)", ms[0] - kernels, double.NaN, "autograd, the two nodes' glue, allocations, page faults, views"));
        return result;
    }

    private void HashForward()
    {
        var r = SignHashKernel.Run(x, LayerCase.BitsPerChunk, l1Scaled: true, 1f, withJacobian: true);
        r.Rows.Dispose();
        r.Weights.Dispose();
        r.Jacobian?.Dispose();
    }

    private void HashForwardRows32()
    {
        var r = SignHashKernel.Run(x, LayerCase.BitsPerChunk, l1Scaled: true, 1f, withJacobian: true, rows32: true);
        r.Rows.Dispose();
        r.Weights.Dispose();
        r.Jacobian?.Dispose();
        r.Rows32!.Return();
    }

    private void RowCopy() => PooledRows.From(codes.Rows, rowCount).Return();

    private void TileCopy() => TiledGather.ToTileMajor(TensorMemory.Floats(table), h, rowCount, (float*)tileMajor, streaming: true);

    private void Walk()
    {
        fixed (float* w = weights32)
            TiledGather.Forward(rows32, chunked: true, n, k, rowCount, (nint)w, [(nint)TensorMemory.Floats(table)], [h],
                [(nint)TensorMemory.Floats(bias)], [(nint)TensorMemory.Floats(output)], TiledGather.Plan.Default, tileMajor: [tileMajor]);
    }

    /// <summary>The forward's kernel as <c>FusedMemoryGather</c> dispatches a training forward (<c>KernelSettings.TiledStridedCopy</c>).</summary>
    private void Strided()
    {
        var plan = KernelSettings.Current.TiledStridedCopy
            ? TiledGather.Plan.Strided with { PairTiles = KernelSettings.Current.TiledPairTiles } : TiledGather.Plan.Default;
        fixed (float* w = weights32)
            TiledGather.Forward(rows32, chunked: true, n, k, rowCount, (nint)w, [(nint)TensorMemory.Floats(table)], [h],
                [(nint)TensorMemory.Floats(bias)], [(nint)TensorMemory.Floats(output)], plan);
    }

    private void StridedCopies()
    {
        TiledGather.ProbeSkip = 1;
        try { Strided(); } finally { TiledGather.ProbeSkip = 0; }
    }

    private void LossSum() => output.sum().Dispose();

    private void GradOutCopy()
    {
        using var one = ones(1, 1);
        using var expanded = one.expand(n, h);
        expanded.contiguous().Dispose();
    }

    private void WeightGradZeros() => KernelBuffers.Zeros(n, k).Dispose();

    private void Sort()
    {
        fixed (float* w = weights32)
            RowHits.Build(rows32, rows32.Length, k, w, rowCount, chunked: true).Dispose();
    }

    private void SortByColumns() => KernelSettings.Current.With(s => s.StagedHitSort = false, Sort);

    private void RowPass()
    {
        var pass = new TableGradientPass.RowPass(hits, (nint)TensorMemory.Floats(table), (nint)TensorMemory.Floats(gradOut), h,
            (nint)TensorMemory.Floats(gradWeights));
        TableGradientPass.WriteAll(pass, rowCount, tableGrad, accumulate: false);
    }

    private void HashBackward() => SignHashKernel.Backward(gradWeights, codes.Jacobian!, LayerCase.BitsPerChunk).Dispose();

    private void BiasSums() => ColumnSums.Of(gradOut).Dispose();

    private void TorchBiasSums() => KernelSettings.Current.With(s => s.ManagedBiasSums = false, BiasSums);

    private void ManagedBiasSums() => KernelSettings.Current.With(s => s.ManagedBiasSums = true, BiasSums);

    public void Dispose()
    {
        hits.Dispose();
        NativeMemory.AlignedFree((void*)tileMajor);
        foreach (var t in new[] { x, gradOut, gradWeights, tableGrad, output, codes.Rows, codes.Weights })
            t.Dispose();
        codes.Jacobian?.Dispose();
        layer.Dispose();
    }
}
