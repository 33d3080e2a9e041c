using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Layers.Kernels;

/// <summary>The autograd node of <see cref="FusedMemoryGather"/>: its forward (the tiled or token-major gather, from the fp32
/// tables or their bf16 copies) and its backward (the row pass, the weight gradient and the fused table update).</summary>
internal static partial class FusedMemoryGather
{
    /// <summary>The autograd node: inputs (rows, weights, table_0..table_{T-1}), outputs y_0..y_{T-1}.</summary>
    private sealed class GatherFunction : GuardedMultiFunction<GatherFunction>
    {
        public override string Name => nameof(FusedMemoryGather);

        protected override unsafe List<Tensor> ForwardPass(autograd.AutogradContext ctx, object[] vars)
        {
            var rows = (Tensor)vars[0];
            var weights = (Tensor)vars[1];
            var sinks = (GradientSinks)vars[^1];
            int tableCount = sinks.Tables.Length;
            var tables = new Tensor[tableCount];
            for (int t = 0; t < tableCount; t++)
                tables[t] = (Tensor)vars[t + 2];

            int n = (int)rows.shape[0], k = (int)rows.shape[1];
            long rowLimit = tables.Min(t => t.shape[0]);
            var rows32 = sinks.Rows32?.Take(rowLimit, k) ?? PooledRows.From(rows, rowLimit);   // the hash's int32 rows, or a copy

            using var scope = NewDisposeScope();
            var biases = sinks.HasBias ? Enumerable.Range(0, tableCount).Select(t => ((Tensor)vars[tableCount + t + 2]).contiguous()).ToArray() : null;
            var w = weights.contiguous();
            var tablesC = tables.Select(t => t.contiguous()).ToArray();
            var outputs = tables.Select(t => KernelBuffers.Empty(n, t.shape[1])).ToArray();

            nint wPtr = (nint)TensorMemory.Floats(w);
            var tablePtrs = tablesC.Select(t => (nint)TensorMemory.Floats(t)).ToArray();
            var outPtrs = outputs.Select(o => (nint)TensorMemory.Floats(o)).ToArray();
            var biasPtrs = biases?.Select(b => (nint)TensorMemory.Floats(b)).ToArray() ?? new nint[tableCount];
            var widths = tables.Select(t => (int)t.shape[1]).ToArray();
            long work = k * (long)widths.Sum();

            var settings = KernelSettings.Current;
            var table16 = ForwardCopies(sinks, tables, tablesC);                // 0 where the forward reads fp32
            if (TakesTiledForward(n, k, rowLimit, widths, tables.Select(t => t.shape[0] * t.shape[1] * sizeof(float)).ToArray(), settings))
            {
                if (table16.All(p => p != 0) && Bf16TiledGather.Supports(widths))
                    Bf16TiledGather.Forward(rows32.Array!, rows32.Chunked, n, k, rowLimit, wPtr, table16, widths, biasPtrs, outPtrs, settings.TiledStridedCopy);
                else
                {
                    var kept = KeptTileCopies(sinks, tables, tablesC, rowLimit, table16);
                    var keys = BufferKeys(sinks, tables, tablesC, rowLimit, table16);
                    // A forward a backward follows reads a table the optimizer changes next: on Intel, copy its tiles straight from it,
                    // unless the pooled tile-major buffer already holds it.
                    bool held = settings.ReuseTileMajorBuffer && keys is not null && keys.Any(key => key is { } h && TileMajorBuffer.Holds(h));
                    var plan = settings.TiledStridedCopy && sinks.BackwardPossible && !held && kept.All(p => p == 0)
                        ? TiledGather.Plan.Strided with { PairTiles = settings.TiledPairTiles } : TiledGather.Plan.Default with { PairTiles = settings.TiledPairTiles };
                    TiledGather.Forward(rows32.Array!, rows32.Chunked, n, k, rowLimit, wPtr, tablePtrs, widths, biasPtrs, outPtrs, plan, table16, kept, keys);
                }
            }
            else
            {
                int ahead = settings.PrefetchGatherRows ? RowKernels.GatherPrefetchAhead : 0;
                KernelParallel.For(n, work, (start, end) =>
                {
                    fixed (int* r = rows32.Array)
                    {
                        for (int t = 0; t < tableCount; t++)
                        {
                            int h = widths[t];
                            float* src = (float*)tablePtrs[t], dst = (float*)outPtrs[t], wp = (float*)wPtr, bias = (float*)biasPtrs[t];
                            ushort* src16 = (ushort*)table16[t];
                            for (int i = start; i < end; i++)
                            {
                                if (src16 == null && ahead > 0)                  // the next token's rows are prefetched too
                                    RowKernels.WeightedBagSumPrefetched(src, h, r + ((long)i * k), wp + ((long)i * k), k, dst + ((long)i * h), bias,
                                        ahead, i + 1 < end ? 2 * k : k);
                                else if (src16 == null)
                                    RowKernels.WeightedBagSum(src, h, r + ((long)i * k), wp + ((long)i * k), k, dst + ((long)i * h), bias);
                                else if (bias != null)
                                    EncoderKernels.BagSumBf16(src16, h, r + ((long)i * k), wp + ((long)i * k), k, dst + ((long)i * h), bias,
                                        ahead, i + 1 < end ? 2 * k : k);
                                else
                                    Bf16Gather.WeightedBagSum(src16, h, r + ((long)i * k), wp + ((long)i * k), k, dst + ((long)i * h), 512);
                            }
                        }
                    }
                });
            }

            if (!sinks.BackwardPossible)
            {
                rows32.Return();                                                 // no backward will read them
                return outputs.Select(o => o.MoveToOuterDisposeScope()).ToList();
            }
            ctx.save_for_backward([weights, .. tables, rows]);                  // rows: for a second backward (retain_graph)
            ctx.save_data("rows", rows32);
            ctx.save_data("k", k);
            ctx.save_data("sinks", vars[^1]);
            ctx.save_data("bf16", table16.Select(p => p != 0).ToArray());
            ctx.save_data("weightsNeedGrad", weights.requires_grad);
            ctx.save_data("tablesNeedGrad", tables.Select(t => t.requires_grad).ToArray());
            ctx.save_data("biasesNeedGrad", sinks.HasBias ? Enumerable.Range(0, tableCount).Select(t => ((Tensor)vars[tableCount + t + 2]).requires_grad).ToArray() : Array.Empty<bool>());
            return outputs.Select(o => o.MoveToOuterDisposeScope()).ToList();
        }

        protected override unsafe List<Tensor> BackwardPass(autograd.AutogradContext ctx, List<Tensor> grad_outputs)
        {
            var saved = ctx.get_saved_variables();                              // weights, tables…, rows
            var pooled = (PooledRows)ctx.get_data("rows");
            if (pooled.Array is null)                                           // a second backward of a retained graph
                pooled = PooledRows.From(saved[^1], saved.Skip(1).SkipLast(1).Min(t => t.shape[0]));
            var rows32 = pooled.Array!;
            int k = (int)ctx.get_data("k");
            bool weightsNeedGrad = (bool)ctx.get_data("weightsNeedGrad");
            var tablesNeedGrad = (bool[])ctx.get_data("tablesNeedGrad");
            var sinks = (GradientSinks)ctx.get_data("sinks");
            var readBf16 = (bool[])ctx.get_data("bf16");                        // tables whose forward read the bf16 copy
            int n = pooled.Count / k;
            int tableCount = tablesNeedGrad.Length;

            var result = new List<Tensor> { null!, null! };
            using (var scope = NewDisposeScope())
            {
                var w = saved[0].contiguous();
                var tables = saved.Skip(1).SkipLast(1).Select(t => t.contiguous()).ToArray();
                var grads = grad_outputs.Select(g => g.to(ScalarType.Float32).contiguous()).ToArray();
                var widths = tables.Select(t => (int)t.shape[1]).ToArray();
                var gradPtrs = grads.Select(g => (nint)TensorMemory.Floats(g)).ToArray();
                nint wPtr = (nint)TensorMemory.Floats(w);

                // The weight gradient: the row pass of each table that needs a gradient adds its inner products
                // (RowGradientKernel); any other table's products are added here, token by token.
                bool rowPassDots = weightsNeedGrad && KernelSettings.Current.WeightGradientInRowPass && RowGradientKernel.IsAccelerated;
                var tablePtrs = tables.Select(t => (nint)TensorMemory.Floats(t)).ToArray();
                nint gwPtr = 0;
                if (weightsNeedGrad)
                {
                    var gw = KernelBuffers.Zeros(n, k);
                    gwPtr = (nint)TensorMemory.Floats(gw);
                    var dotTables = Enumerable.Range(0, tableCount).Where(t => !(rowPassDots && tablesNeedGrad[t])).ToArray();
                    if (dotTables.Length > 0)
                        TableGradientPass.AddTokenMajorDots(rows32, n, k, dotTables, tablePtrs, gradPtrs, widths, gwPtr,
                            Enumerable.Range(0, tableCount).Select(t => readBf16[t] ? CurrentCopy(sinks, t, tables[t]) : 0).ToArray());
                    result[1] = gw.MoveToOuterDisposeScope();
                }
                nint rowPassGw = rowPassDots ? gwPtr : 0;

                RowHits? hits = null;
                int smallest = (int)tables.Min(x => x.shape[0]);                // chunk blocks are sized by the smallest table
                var biasesNeedGrad = (bool[])ctx.get_data("biasesNeedGrad");
                var biasGrads = new Tensor?[biasesNeedGrad.Length];
                bool sumsFirst = KernelSettings.Current.ManagedBiasSums;
                for (int t = 0; t < tableCount; t++)
                {
                    // ∂L/∂b_t = Σ_n ∂L/∂y_t[n] (torch's sum(0) bits, ColumnSums), taken first: its sequential read of ∂L/∂y_t leaves it
                    // in cache for the row pass's scattered reads of the same rows (switched off: torch's sums after the passes, as before).
                    if (sumsFirst && t < biasGrads.Length && biasesNeedGrad[t])
                        biasGrads[t] = ColumnSums.Of(grads[t]);
                    if (!tablesNeedGrad[t])
                    {
                        result.Add(null!);
                        continue;
                    }
                    int rowCount = (int)tables[t].shape[0];
                    int h = widths[t];
                    var sink = sinks.Gradients[t];
                    var existing = sink is null ? null : sinks.Tables[t].grad;
                    bool useSink = sink is not null && (existing is null || existing.IsInvalid
                        || (TensorMemory.IsCpuFloat32(existing) && existing.is_contiguous() && existing.shape.SequenceEqual(tables[t].shape)));
                    bool accumulate = useSink && existing is not null && !existing.IsInvalid;
                    var armed = useSink && sink!.Update is { } u && CanFuse(u, sinks.Tables[t], tables[t]) ? u : null;
                    bool blocks = !accumulate && rowCount == smallest && UsesBlocks(pooled, n, k, rowCount, useSink) && armed is not { Bf16: true } && !readBf16[t];
                    if (blocks && armed is { } update)
                    {
                        // The optimizer's step applied block by block (TableUpdate): no gradient is written or set.
                        var step = update.Kernel();
                        update.SquaredNorm = BlockedTableGradient.Write(rows32, n, k, rowCount / k, (float*)wPtr, (float*)tablePtrs[t], (float*)gradPtrs[t], h,
                            null, (float*)rowPassGw, BlockedTableGradient.Plan.Default, step);
                        update.Applied = true;
                        // A raw write no bf16 copy followed. No version bump: the table is saved for a retained graph's second backward.
                        sinks.Copies[t]?.Invalidate();
                        sinks.TileCopies[t]?.Invalidate();
                        TileMajorBuffer.NoteRawWrite();
                        result.Add(null!);
                        continue;
                    }
                    if (!accumulate && armed is { } rowUpdate)
                    {
                        // The same step fused into the row pass: each row updated right after its gradient row is formed.
                        hits ??= RowHits.Build(rows32, pooled.Count, k, (float*)wPtr, smallest, pooled.Chunked);
                        using var narrow = Bf16Rows(grads[t], n, h);
                        rowUpdate.SquaredNorm = TableGradientPass.UpdateAll(new TableGradientPass.RowPass(hits, tablePtrs[t], gradPtrs[t], h, rowPassGw,
                            Address(narrow), CurrentCopy(sinks, t, tables[t]), readBf16[t], TileCopyToWrite(sinks, t, tables[t])), rowCount, rowUpdate.Kernel());
                        TileMajorBuffer.NoteRawWrite();                            // no version bump (as above): a pooled copy of the table is stale
                        rowUpdate.Applied = true;
                        result.Add(null!);
                        continue;
                    }
                    var gt = !useSink ? empty(rowCount, h, dtype: ScalarType.Float32) : accumulate ? existing! : sink!.Rent(tables[t]);
                    double squaredNorm;
                    if (blocks)
                    {
                        // Every row written block by block, no hit sort (BlockedTableGradient).
                        squaredNorm = BlockedTableGradient.Write(rows32, n, k, rowCount / k, (float*)wPtr, (float*)tablePtrs[t], (float*)gradPtrs[t], h,
                            TensorMemory.Floats(gt), (float*)rowPassGw, BlockedTableGradient.Plan.Default);
                        if (useSink)
                            sink!.NonZeroRows = null;
                    }
                    else
                    {
                        hits ??= RowHits.Build(rows32, pooled.Count, k, (float*)wPtr, smallest, pooled.Chunked);
                        using var narrow = Bf16Rows(grads[t], n, h);
                        var pass = new TableGradientPass.RowPass(hits!, tablePtrs[t], gradPtrs[t], h, rowPassGw, Address(narrow), Table16: readBf16[t] ? CurrentCopy(sinks, t, tables[t]) : 0,
                            RoundDots: readBf16[t]);
                        bool sparse = useSink && !accumulate && KernelSettings.Current.WriteTouchedRowsOnly && hits!.TouchedCount <= rowCount / SparseFraction;
                        squaredNorm = sparse ? TableGradientPass.WriteTouched(pass, gt, sink!) : TableGradientPass.WriteAll(pass, rowCount, gt, accumulate);
                        if (useSink && !sparse)
                            sink!.NonZeroRows = null;                            // every row written: unknown zeros
                    }
                    if (!useSink)
                    {
                        result.Add(gt.MoveToOuterDisposeScope());
                        continue;
                    }
                    if (!accumulate)
                        sinks.Tables[t].grad = gt;
                    sink!.Record(squaredNorm);
                    result.Add(null!);
                }
                hits?.Dispose();
                for (int t = 0; t < biasGrads.Length; t++)
                    result.Add(biasesNeedGrad[t] ? (biasGrads[t] ?? ColumnSums.Of(grads[t])).MoveToOuterDisposeScope() : null!);
            }
            pooled.Return();
            foreach (var s in saved)
                s.Dispose();
            result.Add(null!);                                                   // the gradient sinks argument
            return result;
        }
    }
}
