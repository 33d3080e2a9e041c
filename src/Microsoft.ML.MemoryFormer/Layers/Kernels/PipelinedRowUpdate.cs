using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// The fused row pass + bf16 AdamW of <see cref="TableGradientPass.UpdateAll"/> software-pipelined
/// (<see cref="Runtime.KernelSettings.PipelinedUpdate"/>): while the row pass of row r walks its hits, the AdamW step of row r − 1 runs
/// sixteen elements after each hit, so the step's square roots and divisions execute while the hits' ∂L/∂y loads are in flight instead
/// of after them (issue 16, "Training at d = 512": the divider and the loads were two floors in sequence).
/// </summary>
/// <remarks>The same bits as the row-by-row pass: row r's tiles read only table row r, which its own step changes later; row r − 1's step
/// reads its own gradient row (two alternate buffers) and changes only row r − 1; the step is elementwise with each element's own
/// rounding noise (<see cref="Bf16Moments.Update16"/>); the tiles are <see cref="RowGradientKernel"/>'s, the squares and ∂L/∂w adds in
/// its order.</remarks>
internal static unsafe class PipelinedRowUpdate
{
    /// <summary>Whether a pass can take it: AVX-512, bf16 moments, fp32 ∂L/∂y rows and table without copies to keep current, the weight
    /// gradient wanted, whole 128-column tiles.</summary>
    public static bool Applies(TableGradientPass.RowPass pass, BlockedTableGradient.FusedStep step) =>
        Avx512F.IsSupported && Vector512.IsHardwareAccelerated && step.Bf16 && pass.GradOut16 == 0 && pass.Table16 == 0 && pass.TileMajor == 0
        && !pass.RoundDots && pass.WeightGradient != 0 && pass.Width % 128 == 0;

    /// <summary>The AdamW step of one row still to be done, sixteen elements at a time.</summary>
    private struct Pending
    {
        public float* P, G;
        public ushort* M, V;
        public long Index;
        public int Next, End;

        /// <summary>Sixteen more elements, if any are left.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Step(in Bf16Moments.VectorCoefficients512 k, Vector512<uint> salt)
        {
            if (Next >= End)
                return;
            Bf16Moments.Update16(P + Next, G + Next, M + Next, V + Next, Index + Next, k, salt);
            Next += 16;
        }

        /// <summary>The rest of the row.</summary>
        public void Finish(in Bf16Moments.VectorCoefficients512 k, Vector512<uint> salt)
        {
            for (; Next < End; Next += 16)
                Bf16Moments.Update16(P + Next, G + Next, M + Next, V + Next, Index + Next, k, salt);
        }
    }

    /// <summary>Rows [<paramref name="start"/>, <paramref name="end"/>) of one worker: each row's gradient and ∂L/∂w share, the step of the
    /// row before spread over its hits; writes each row's squared norm to <paramref name="squares"/>.</summary>
    public static void Rows(TableGradientPass.RowPass pass, BlockedTableGradient.FusedStep step, int start, int end, double[] squares)
    {
        int h = pass.Width;
        var k = new Bf16Moments.VectorCoefficients512(step.Coefficients);
        var salt = Vector512.Create(step.Salt);
        var buffers = new float[(2 * h) + 32];
        var pending = default(Pending);
        fixed (float* buffer = buffers)
        fixed (int* starts = pass.Hits.Starts, tokens = pass.Hits.Tokens, pairs = pass.Hits.PairIndex)
        fixed (float* weights = pass.Hits.Weights)
        {
            float* table = (float*)pass.Table, grad = (float*)pass.GradOut, gw = (float*)pass.WeightGradient;
            float* aligned = (float*)(((nint)buffer + 63) & ~(nint)63);
            for (int r = start; r < end; r++)
            {
                long o = (long)r * h;
                float* g = aligned + (((r - start) & 1) * (h + 16)), row = table + o;
                int count = pass.HitCount(r);
                if (count == 0)
                {
                    new Span<float>(g, h).Clear();
                    squares[r] = 0;
                }
                else
                {
                    int s = starts[r];
                    float sum = 0f;                                           // RowGradientKernel.Run's order: 0 + tile 0 + tile 1 + …
                    for (int c = 0; c < h; c += 128)
                        sum += Tile(row, grad, h, c, tokens + s, pairs + s, weights + s, count, g, gw, ref pending, k, salt);
                    squares[r] = sum;
                }
                pending.Finish(k, salt);
                pending = new Pending
                {
                    P = row, G = g, M = (ushort*)step.ExpAvg + o, V = (ushort*)step.ExpAvgSq + o, Index = o, Next = 0, End = h,
                };
            }
            pending.Finish(k, salt);
        }
    }

    /// <summary><see cref="RowGradientKernel"/>'s 512-bit tile (the same operations), with sixteen elements of the pending step after each hit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Tile(float* row, float* grad, int h, int c, int* tokens, int* pairs, float* w, int count, float* dst, float* gw,
        ref Pending pending, in Bf16Moments.VectorCoefficients512 k, Vector512<uint> salt)
    {
        float* t = row + c;
        Vector512<float> t0 = Vector512.Load(t), t1 = Vector512.Load(t + 16), t2 = Vector512.Load(t + 32), t3 = Vector512.Load(t + 48),
            t4 = Vector512.Load(t + 64), t5 = Vector512.Load(t + 80), t6 = Vector512.Load(t + 96), t7 = Vector512.Load(t + 112);
        Vector512<float> a0 = Vector512<float>.Zero, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int j = 0; j < count; j++)
        {
            float* g = grad + ((long)tokens[j] * h) + c;
            var wj = Vector512.Create(w[j]);
            Vector512<float> g0 = Vector512.Load(g), g1 = Vector512.Load(g + 16), g2 = Vector512.Load(g + 32), g3 = Vector512.Load(g + 48),
                g4 = Vector512.Load(g + 64), g5 = Vector512.Load(g + 80), g6 = Vector512.Load(g + 96), g7 = Vector512.Load(g + 112);
            a0 = Vector512.FusedMultiplyAdd(g0, wj, a0);
            a1 = Vector512.FusedMultiplyAdd(g1, wj, a1);
            a2 = Vector512.FusedMultiplyAdd(g2, wj, a2);
            a3 = Vector512.FusedMultiplyAdd(g3, wj, a3);
            a4 = Vector512.FusedMultiplyAdd(g4, wj, a4);
            a5 = Vector512.FusedMultiplyAdd(g5, wj, a5);
            a6 = Vector512.FusedMultiplyAdd(g6, wj, a6);
            a7 = Vector512.FusedMultiplyAdd(g7, wj, a7);
            var p = Vector512.FusedMultiplyAdd(g4, t4, Vector512.FusedMultiplyAdd(g1, t1, g0 * t0));
            var q = Vector512.FusedMultiplyAdd(g5, t5, Vector512.FusedMultiplyAdd(g3, t3, g2 * t2));
            p = Vector512.FusedMultiplyAdd(g6, t6, p);
            q = Vector512.FusedMultiplyAdd(g7, t7, q);
            gw[pairs[j]] += RowGradientKernel.TreeSum(p + q);
            pending.Step(k, salt);
        }
        return RowGradientKernel.StoreTile(dst + c, streaming: false, a0, a1, a2, a3, a4, a5, a6, a7);
    }
}
