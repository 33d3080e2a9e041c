using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Layers;
using Microsoft.ML.MemoryFormer.Layers.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Layers.Kernels;

public class FusedMemoryGatherTests
{
    /// <summary>Random global rows (chunk k reads rows [k·2^τ, (k+1)·2^τ)), weights and a table.</summary>
    private static (Tensor Rows, Tensor Weights, Tensor Table) RandomInputs(int n, int k, int bits, int h, long seed)
    {
        var gen = new Generator((ulong)seed);
        int buckets = 1 << bits;
        var codes = randint(0, buckets, [n, k], dtype: ScalarType.Int64, generator: gen);
        var rows = codes + (arange(k, dtype: ScalarType.Int64) * buckets).unsqueeze(0);
        var weights = rand([n, k], generator: gen).requires_grad_(true);
        var table = (randn([k * buckets, h], generator: gen) * 0.02f).requires_grad_(true);
        return (rows, weights, table);
    }

    private static TorchSharp.Modules.EmbeddingBag ReferenceBag(Tensor table)
    {
        var bag = nn.EmbeddingBag(table.shape[0], table.shape[1], mode: EmbeddingBagMode.Sum);
        using (no_grad())
            bag.weight!.copy_(table);
        return bag;
    }

    private static float[] Naive(Tensor rows, Tensor weights, Tensor table)
    {
        long n = rows.shape[0], k = rows.shape[1], h = table.shape[1];
        var r = rows.data<long>().ToArray();
        var w = weights.detach().data<float>().ToArray();
        var t = table.detach().data<float>().ToArray();
        var y = new float[n * h];
        for (long i = 0; i < n; i++)
            for (long j = 0; j < k; j++)
                for (long c = 0; c < h; c++)
                    y[(i * h) + c] += w[(i * k) + j] * t[(r[(i * k) + j] * h) + c];
        return y;
    }

    private static void AssertClose(Tensor expected, Tensor actual, double rtol = 1e-5, double atol = 1e-6)
    {
        Assert.Equal(expected.shape, actual.shape);
        double maxDiff = (expected - actual).abs().max().to(ScalarType.Float64).item<double>();
        Assert.True(allclose(actual, expected, rtol, atol), $"max |diff| = {maxDiff}");
    }

    [Theory]
    [InlineData(1, 4, 3, 8)]
    [InlineData(13, 8, 4, 67)]      // N and h not multiples of 8 or 64
    [InlineData(130, 16, 8, 200)]   // 3 full 64-wide tiles + an 8-wide tile + a scalar tail
    [InlineData(257, 6, 5, 64)]
    [InlineData(70, 8, 6, 300)]     // a 256-wide AVX-512 tile, then the 256-bit kernel for the last 44 columns
    public void Forward_matches_EmbeddingBag_and_a_naive_loop(int n, int k, int bits, int h)
    {
        using var scope = NewDisposeScope();
        var (rows, weights, table) = RandomInputs(n, k, bits, h, seed: n * 31 + h);
        using var bag = ReferenceBag(table);

        var fused = FusedMemoryGather.Apply(rows, weights, table);
        var reference = bag.call(rows, null, weights);

        AssertClose(reference, fused);
        AssertClose(tensor(Naive(rows, weights, table)).view(n, h), fused);
    }

    [Theory]
    [InlineData(13, 8, 4, 67)]
    [InlineData(130, 16, 8, 200)]
    [InlineData(70, 8, 6, 300)]
    public void Gradients_match_EmbeddingBag(int n, int k, int bits, int h)
    {
        using var scope = NewDisposeScope();
        var (rows, weights, table) = RandomInputs(n, k, bits, h, seed: 7 + n);
        var refWeights = weights.detach().clone().requires_grad_(true);
        using var bag = ReferenceBag(table);
        var upstream = randn(n, h);

        (FusedMemoryGather.Apply(rows, weights, table) * upstream).sum().backward();
        (bag.call(rows, null, refWeights) * upstream).sum().backward();

        AssertClose(refWeights.grad!, weights.grad!, rtol: 1e-4, atol: 1e-5);
        AssertClose(bag.weight!.grad!, table.grad!, rtol: 1e-4, atol: 1e-6);
    }

    [Fact]
    public void Table_gradient_is_zero_in_untouched_rows_and_deterministic()
    {
        using var scope = NewDisposeScope();
        var (rows, weights, table) = RandomInputs(300, 4, 8, 24, seed: 3);
        var upstream = randn(300, 24);
        (FusedMemoryGather.Apply(rows, weights, table) * upstream).sum().backward();
        var first = table.grad!.clone();
        table.grad = null;
        (FusedMemoryGather.Apply(rows, weights, table) * upstream).sum().backward();

        Assert.True((first == table.grad!).all().item<bool>());
        var touched = zeros(table.shape[0], dtype: ScalarType.Bool).index_fill_(0, rows.reshape(-1), true);
        Assert.Equal(0f, first[~touched].abs().sum().item<float>());
    }

    [Theory]
    [InlineData(37, false, false)]
    [InlineData(37, true, false)]     // a frozen table: its inner products take the token-major pass, the others the row pass
    [InlineData(2, true, true)]       // few touched rows: the sparse row pass into reusable gradient buffers
    [InlineData(300, false, true)]    // every row written into the buffers
    public void ApplyMany_matches_separate_applications_for_shared_rows(int n, bool freezeMiddle, bool withBuffers)
    {
        using var scope = NewDisposeScope();
        var (rows, weights, tableQ) = RandomInputs(n, 8, 6, 40, seed: 11);
        var tableK = (randn(tableQ.shape[0], 130) * 0.02f).requires_grad_(!freezeMiddle);   // a 128-wide tile and a tail
        var tableV = (randn(tableQ.shape[0], 24) * 0.02f).requires_grad_(true);
        var w2 = weights.detach().clone().requires_grad_(true);
        Tensor[] copies = [tableQ.detach().clone().requires_grad_(true), tableK.detach().clone().requires_grad_(!freezeMiddle),
            tableV.detach().clone().requires_grad_(true)];
        Tensor[] upstream = [randn(n, 40), randn(n, 130), randn(n, 24)];
        TableGradient[] buffers = [new(), new(), new()];

        try
        {
            var outs = FusedMemoryGather.ApplyMany(rows, weights, [tableQ, tableK, tableV], withBuffers ? buffers : null);
            outs.Select((y, i) => (y * upstream[i]).sum()).Aggregate((a, b) => a + b).backward();
            copies.Select((t, i) => (Reference(rows, w2, t) * upstream[i]).sum()).Aggregate((a, b) => a + b).backward();

            AssertClose(w2.grad!, weights.grad!, rtol: 1e-4, atol: 1e-5);
            AssertClose(copies[0].grad!, tableQ.grad!, rtol: 1e-4, atol: 1e-6);
            AssertClose(copies[2].grad!, tableV.grad!, rtol: 1e-4, atol: 1e-6);
            if (freezeMiddle)
                Assert.Null(tableK.grad);
            else
                AssertClose(copies[1].grad!, tableK.grad!, rtol: 1e-4, atol: 1e-6);
        }
        finally
        {
            foreach (var b in buffers)
                b.Dispose();
        }
    }

    [Theory]
    [InlineData(false)]   // chunk k reads only its block of rows (a Memory Layer's hash): sorted chunk by chunk in parallel
    [InlineData(true)]    // rows anywhere in the table: the serial sort
    public void Gradients_match_the_reference_whether_or_not_rows_follow_the_chunk_blocks(bool anywhere)
    {
        using var scope = NewDisposeScope();
        var (rows, weights, table) = RandomInputs(300, 8, 5, 144, seed: 21);
        if (anywhere)
            rows = randint(0, table.shape[0], rows.shape, dtype: ScalarType.Int64, generator: new Generator(22));
        var w2 = weights.detach().clone().requires_grad_(true);
        var t2 = table.detach().clone().requires_grad_(true);
        var upstream = randn(300, 144);

        (FusedMemoryGather.Apply(rows, weights, table) * upstream).sum().backward();
        (Reference(rows, w2, t2) * upstream).sum().backward();

        AssertClose(w2.grad!, weights.grad!, rtol: 1e-4, atol: 1e-5);
        AssertClose(t2.grad!, table.grad!, rtol: 1e-4, atol: 1e-6);
    }

    [Theory]
    [InlineData(13, 8, 4, 67, false)]    // 256-bit tiles, an 8-wide tile and a scalar tail start from the bias
    [InlineData(70, 8, 6, 300, false)]   // an AVX-512 tile, then the 256-bit kernel
    [InlineData(40, 4, 5, 96, true)]     // two tables sharing the rows, one of them frozen
    public void A_folded_bias_equals_adding_it_afterwards_in_output_and_gradients(int n, int k, int bits, int h, bool twoTables)
    {
        using var scope = NewDisposeScope();
        var (rows, weights, table) = RandomInputs(n, k, bits, h, seed: 11 + n);
        var second = (randn(table.shape) * 0.02f).requires_grad_(!twoTables);
        Tensor[] tables = twoTables ? [table, second] : [table];
        var biases = tables.Select(_ => (randn(h) * 0.1f).requires_grad_(true)).ToArray();
        var upstream = tables.Select(_ => randn(n, h)).ToArray();
        var clones = (weights.detach().clone().requires_grad_(true), tables.Select(t => t.detach().clone().requires_grad_(t.requires_grad)).ToArray(),
            biases.Select(b => b.detach().clone().requires_grad_(true)).ToArray());

        var folded = FusedMemoryGather.ApplyMany(rows, weights, tables, biases: biases);
        var added = FusedMemoryGather.ApplyMany(rows, clones.Item1, clones.Item2).Select((y, i) => y + clones.Item3[i]).ToArray();
        for (int i = 0; i < tables.Length; i++)
            AssertClose(added[i], folded[i]);
        folded.Select((y, i) => (y * upstream[i]).sum()).Aggregate((a, b) => a + b).backward();
        added.Select((y, i) => (y * upstream[i]).sum()).Aggregate((a, b) => a + b).backward();

        for (int i = 0; i < tables.Length; i++)
        {
            AssertClose(clones.Item3[i].grad!, biases[i].grad!, rtol: 1e-5, atol: 1e-5);
            AssertClose(upstream[i].sum(0L), biases[i].grad!, rtol: 1e-5, atol: 1e-5);
            if (tables[i].requires_grad)
                AssertClose(clones.Item2[i].grad!, tables[i].grad!, rtol: 1e-5, atol: 1e-6);
            else
                Assert.Null(tables[i].grad);
        }
        AssertClose(clones.Item1.grad!, weights.grad!, rtol: 1e-5, atol: 1e-5);
    }

    [Fact]
    public void A_bias_of_the_wrong_width_is_named()
    {
        using var scope = NewDisposeScope();
        var (rows, weights, table) = RandomInputs(4, 2, 3, 8, seed: 1);
        var e = Assert.Throws<ArgumentException>(() => FusedMemoryGather.ApplyMany(rows, weights, [table], biases: [zeros(7)]));
        Assert.Equal("biases", e.ParamName);
        Assert.Contains("[7]", e.Message);
    }

    [Fact]
    public void Frozen_table_gets_no_gradient_and_weights_still_do()
    {
        using var scope = NewDisposeScope();
        var (rows, weights, table) = RandomInputs(20, 4, 4, 16, seed: 5);
        table.requires_grad_(false);
        FusedMemoryGather.Apply(rows, weights, table).sum().backward();
        Assert.Null(table.grad);
        Assert.NotNull(weights.grad);
    }

    [Fact]
    public void Out_of_range_rows_are_rejected()
    {
        using var scope = NewDisposeScope();
        var (rows, weights, table) = RandomInputs(4, 2, 3, 8, seed: 1);
        rows[0, 0] = tensor(table.shape[0]);
        Assert.Throws<ArgumentOutOfRangeException>(() => FusedMemoryGather.Apply(rows, weights, table));
    }

    [Fact]
    public void Float64_tables_are_refused_by_the_kernel_and_a_float64_layer_takes_EmbeddingBag()
    {
        using var scope = NewDisposeScope();
        var (rows, weights, table) = RandomInputs(9, 4, 3, 10, seed: 2);
        var t64 = table.detach().to(ScalarType.Float64).requires_grad_(true);
        var w64 = weights.detach().to(ScalarType.Float64).requires_grad_(true);
        Assert.False(FusedMemoryGather.IsSupported(t64));
        var e = Assert.Throws<ArgumentException>(() => FusedMemoryGather.Apply(rows, w64, t64));
        Assert.Contains("Float64", e.Message);

        random.manual_seed(3);
        using var layer = new MemoryLayer(4, 3, 10, HashWeightFunction.L1ScaledSigmoidProduct, 1.0, 0.1, 0.01);
        var x = randn(9, 12);
        var y32 = layer.call(x);
        layer.to(ScalarType.Float64);
        var x64 = x.to(ScalarType.Float64);
        var y = layer.call(x64);
        Assert.Equal(ScalarType.Float64, y.dtype);
        AssertClose(y32.to(ScalarType.Float64), y, atol: 1e-5);
        y.sum().backward();
        Assert.NotNull(layer.Table.grad);
    }

    /// <summary>The obviously correct gather: index_select then a batched weighted sum, through autograd.</summary>
    private static Tensor Reference(Tensor rows, Tensor weights, Tensor table)
    {
        long n = rows.shape[0], k = rows.shape[1], h = table.shape[1];
        var gathered = table.index_select(0, rows.reshape(-1)).view(n, k, h);          // [N, K, h]
        return bmm(weights.to(table.dtype).unsqueeze(1), gathered).squeeze(1);           // [N, h]
    }
}
