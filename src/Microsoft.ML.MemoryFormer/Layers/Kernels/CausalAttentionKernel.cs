using System.Runtime.Intrinsics;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>
/// Causal softmax attention (or, with per-row key lengths, bidirectional attention over right-padded rows), forward and
/// backward, in managed AVX-512 code for training on the CPU: one (batch, head)
/// pair per work item, thread-owned, so every output element is summed in one fixed order on one thread (the same bits
/// for any thread count). The forward goes eight queries at a time: scores against the keys up to the tile's last query
/// (the masked blocks beyond skipped), the causal softmax in place (log-sum-exp saved), then P·V into the output rows. The
/// backward recomputes P from the log-sum-exp (FlashAttention's, Dao et al. 2022), forms dS = P ∘ (dP − rowsum(dO ∘ O))
/// and dQ = dS·K/√hd tile by tile, keeping P and dS of the pair in a scratch, then dV = Pᵀ·dO and dK = dSᵀ·Q/√hd
/// over the lower triangle. All products are <see cref="AttentionTiles.Product"/>'s 8 × 32 register tiles.
/// </summary>
/// <remarks>Needs AVX-512 and hd a multiple of 32. Q, K, V, O and their gradients are addressed as
/// [B, H, T, hd] through <see cref="View"/> strides (hd contiguous), so token-major [B, T, H, hd] storage needs no
/// copy. Scratch per worker: K and V transposed [hd, T'] and, in the backward, P and dS [T', T'] (T' = T rounded up
/// to 32): 0.6 MB at T = 256.</remarks>
internal static unsafe class CausalAttentionKernel
{
    private const int R = AttentionTiles.Rows;
    private const int C = AttentionTiles.Columns;

    [ThreadStatic]
    private static float[]? scratch;

    /// <summary>True when the hardware and head width suit the kernel.</summary>
    public static bool Supports(long headWidth) => Vector512.IsHardwareAccelerated && headWidth > 0 && headWidth % C == 0;

    /// <summary>A [B, H, T, hd] operand: its first element and the strides (in floats) of batch, head and token.</summary>
    public readonly record struct View(nint Data, long Batch, long Head, long Token)
    {
        /// <summary>The first element of (b, h).</summary>
        public float* At(long b, long h) => (float*)Data + (b * Batch) + (h * Head);
    }

    /// <summary>The sizes of a call.</summary>
    public readonly record struct Sizes(int Batch, int Heads, int Tokens, int HeadWidth)
    {
        /// <summary>T rounded up to 32.</summary>
        public int Padded => (Tokens + C - 1) / C * C;

        /// <summary>1/√hd.</summary>
        public float Scale => 1f / MathF.Sqrt(HeadWidth);
    }

    /// <summary>o = causal softmax(q kᵀ/√hd) v per (b, h); lse [B·H, T] gets each row's log-sum-exp. With
    /// <paramref name="keyLengths"/> ([B], each in [1, T]) the attention is bidirectional instead: every query of batch row b
    /// sees keys [0, keyLengths[b]) (right-padded sequences; a padded query sees the same keys, not itself).</summary>
    public static void Forward(View q, View k, View v, View o, float* lse, Sizes s, int[]? keyLengths = null)
    {
        nint lseAddress = (nint)lse;
        KernelParallel.For(s.Batch * s.Heads, 2L * s.Tokens * s.Tokens * s.HeadWidth, (start, end) =>
        {
            fixed (float* work = Scratch((s.HeadWidth * s.Padded) + (R * s.Padded)))
            {
                for (int item = start; item < end; item++)
                    ForwardItem(q, k, v, o, (float*)lseAddress + ((long)item * s.Tokens), s, item / s.Heads, item % s.Heads, work,
                        keyLengths?[item / s.Heads] ?? 0);
            }
        });
    }

    /// <summary>dq, dk, dv of <see cref="Forward"/> from dO, the saved inputs, the output and the log-sum-exp (the same
    /// <paramref name="keyLengths"/>; dk and dv are zero at keys no query sees).</summary>
    public static void Backward(View q, View k, View v, View o, View dO, float* lse, View dq, View dk, View dv, Sizes s, int[]? keyLengths = null)
    {
        nint lseAddress = (nint)lse;
        long tp = s.Padded;
        KernelParallel.For(s.Batch * s.Heads, 5L * s.Tokens * s.Tokens * s.HeadWidth, (start, end) =>
        {
            fixed (float* work = Scratch((2 * s.HeadWidth * tp) + (2 * tp * tp)))
            {
                for (int item = start; item < end; item++)
                    BackwardItem(q, k, v, o, dO, (float*)lseAddress + ((long)item * s.Tokens), dq, dk, dv, s, item / s.Heads, item % s.Heads, work,
                        keyLengths?[item / s.Heads] ?? 0);
            }
        });
    }

    private static float[] Scratch(long floats)
    {
        if (scratch is null || scratch.Length < floats)
            scratch = GC.AllocateUninitializedArray<float>((int)floats, pinned: true);
        return scratch;
    }

    /// <summary>The keys query row i sees: [0, i + 1) when causal (<paramref name="keyLength"/> 0), else [0, keyLength).</summary>
    private static int KeysOf(int i, int keyLength) => keyLength > 0 ? keyLength : i + 1;

    /// <summary>One (b, h): keys transposed into kt [hd, T'], then per 8-query tile scores [8, ≤T'] → P → O rows.</summary>
    private static void ForwardItem(View qv, View kv, View vv, View ov, float* lse, Sizes s, int b, int h, float* work, int keyLength)
    {
        int t = s.Tokens, hd = s.HeadWidth, tp = s.Padded;
        float* q = qv.At(b, h), k = kv.At(b, h), v = vv.At(b, h), o = ov.At(b, h);
        float* kt = work, p = work + ((long)hd * tp);                                     // [hd, T'], [8, T']
        AttentionTiles.Transpose(k, kv.Token, t, hd, kt, tp);
        for (int i0 = 0; i0 < t; i0 += R)
        {
            int rows = Math.Min(R, t - i0), keys = KeysOf(i0 + rows - 1, keyLength), end = (keys + C - 1) / C * C;
            for (int j = 0; j < end; j += C)                                                 // scores [8, end)
                AttentionTiles.Product(q + (i0 * qv.Token), qv.Token, 1, rows, kt + j, tp, 0, hd, p + j, tp, R, s.Scale);
            for (int r = 0; r < rows; r++)
                lse[i0 + r] = AttentionTiles.Softmax(p + ((long)r * tp), KeysOf(i0 + r, keyLength), end);
            for (int c = 0; c < hd; c += C)                                                  // O rows = P · V
                AttentionTiles.Product(p, tp, 1, rows, v + c, vv.Token, 0, keys, o + (i0 * ov.Token) + c, ov.Token, rows, 1f);
        }
    }

    /// <summary>One (b, h) backward: per query tile P again, dS and dQ; then dV = Pᵀ dO and dK = dSᵀ Q per key tile.</summary>
    private static void BackwardItem(View qv, View kv, View vv, View ov, View dov, float* lse, View dqv, View dkv, View dvv,
        Sizes s, int b, int h, float* work, int keyLength)
    {
        int t = s.Tokens, hd = s.HeadWidth, tp = s.Padded;
        float* q = qv.At(b, h), k = kv.At(b, h), v = vv.At(b, h), o = ov.At(b, h), dO = dov.At(b, h);
        float* kt = work, vt = kt + ((long)hd * tp), p = vt + ((long)hd * tp), ds = p + ((long)tp * tp);   // [hd, T'] ×2, [T', T'] ×2
        AttentionTiles.Transpose(k, kv.Token, t, hd, kt, tp);
        AttentionTiles.Transpose(v, vv.Token, t, hd, vt, tp);
        for (int i0 = 0; i0 < t; i0 += R)
            QueryTile(q, qv.Token, k, kv.Token, dO, dov.Token, o, ov.Token, lse, dqv.At(b, h), dqv.Token, kt, vt, p, ds, s, i0, keyLength);
        float* dk = dkv.At(b, h), dv = dvv.At(b, h);
        // Causal: key j is seen by queries [j, T). Bidirectional: by every query, and keys from keyLength on by none (their P
        // columns are zero up to the 8-row tile holding keyLength − 1; the rows past it are cleared).
        int seen = keyLength > 0 ? (keyLength + R - 1) / R * R : t;
        for (int j0 = 0; j0 < Math.Min(t, seen); j0 += R)
        {
            int rows = Math.Min(R, t - j0), first = keyLength > 0 ? 0 : j0;
            for (int c = 0; c < hd; c += C)                                                  // rows j0… of Pᵀ dO and dSᵀ Q
            {
                AttentionTiles.Product(p + j0, 1, tp, rows, dO + c, dov.Token, first, t, dv + (j0 * dvv.Token) + c, dvv.Token, rows, 1f);
                AttentionTiles.Product(ds + j0, 1, tp, rows, q + c, qv.Token, first, t, dk + (j0 * dkv.Token) + c, dkv.Token, rows, s.Scale);
            }
        }
        for (int j = seen; j < t; j++)
        {
            new Span<float>(dv + (j * dvv.Token), hd).Clear();
            new Span<float>(dk + (j * dkv.Token), hd).Clear();
        }
    }

    /// <summary>Query rows i0…i0+7: P rows again from the scores and lse, dP = dO·Vᵀ, dS in place, dQ rows = dS·K/√hd.</summary>
    private static void QueryTile(float* q, long qRow, float* k, long kRow, float* dO, long dORow, float* o, long oRow, float* lse,
        float* dq, long dqRow, float* kt, float* vt, float* p, float* ds, Sizes s, int i0, int keyLength)
    {
        int t = s.Tokens, hd = s.HeadWidth, tp = s.Padded;
        int rows = Math.Min(R, t - i0), keys = KeysOf(i0 + rows - 1, keyLength), end = (keys + C - 1) / C * C;
        float* pRows = p + ((long)i0 * tp), dsRows = ds + ((long)i0 * tp);
        for (int j = 0; j < end; j += C)
        {
            AttentionTiles.Product(q + (i0 * qRow), qRow, 1, rows, kt + j, tp, 0, hd, pRows + j, tp, R, s.Scale);   // scores
            AttentionTiles.Product(dO + (i0 * dORow), dORow, 1, rows, vt + j, tp, 0, hd, dsRows + j, tp, R, 1f);   // dP
        }
        for (int r = 0; r < rows; r++)
        {
            int i = i0 + r;
            AttentionTiles.Probabilities(pRows + ((long)r * tp), KeysOf(i, keyLength), end, lse[i]);
            float rowDot = AttentionTiles.Dot(dO + (i * dORow), o + (i * oRow), hd);
            AttentionTiles.ScoreGradient(pRows + ((long)r * tp), dsRows + ((long)r * tp), end, rowDot);
        }
        for (int c = 0; c < hd; c += C)
            AttentionTiles.Product(dsRows, tp, 1, rows, k + c, kRow, 0, keys, dq + (i0 * dqRow) + c, dqRow, rows, s.Scale);
    }
}
