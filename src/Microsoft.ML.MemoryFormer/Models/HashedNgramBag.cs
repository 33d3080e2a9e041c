using Microsoft.ML.MemoryFormer.Layers.Kernels;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// The text classifier's wide branch: a hashed bag of token n-grams in the style of fastText (Joulin et al. 2017, "Bag
/// of Tricks for Efficient Text Classification"). Every window's token 1-grams up to <see cref="NgramLength"/>-grams
/// (padding excluded) are hashed into <see cref="Buckets"/> rows of a [buckets, d] table, and the mean of their rows is
/// the window's bag vector [d]. <see cref="SequenceClassifier"/> adds it to the pooled encoder output in front of the
/// head's linear layer, so the head learns what a linear model on n-gram counts learns (FeaturizeText + SDCA) while the
/// encoder adds what it can. The table starts at zero: an untrained branch changes no output.
/// </summary>
/// <remarks>
/// Hashing on int64 tensors: a unigram's bucket is <c>id mod buckets</c> (exact below the bucket count); an n-gram's is
/// <c>h mod buckets</c> with <c>h = (h' · 1000003 + id + 1) mod (2³¹ − 1)</c> folded over its tokens, unigram to n-gram,
/// so every intermediate value stays below 2⁵². Unigrams and longer n-grams share the table (collisions are part of the
/// hashing trick). Constants are module-owned scalars (<see cref="LiveScalars"/>).
/// </remarks>
internal sealed class HashedNgramBag : nn.Module
{
    private const long Multiplier = 1000003, Prime = 2147483647;
    private readonly Parameter table;
    private readonly Scalar bucketCount, multiplier, prime;

    /// <param name="buckets">Rows of the table, at least 1.</param>
    /// <param name="ngramLength">Longest n-gram, in [1, 3].</param>
    /// <param name="width">Width d of each row (the encoder's width).</param>
    public HashedNgramBag(int buckets, int ngramLength, int width) : base(nameof(HashedNgramBag))
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(buckets, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(ngramLength, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(ngramLength, 3);
        Buckets = buckets;
        NgramLength = ngramLength;
        table = nn.Parameter(zeros(buckets, width));
        bucketCount = (long)buckets;
        multiplier = Multiplier;
        prime = Prime;
        RegisterComponents();
    }

    /// <summary>Rows of the hash table.</summary>
    public int Buckets { get; }

    /// <summary>Longest n-gram hashed (1 = unigrams only).</summary>
    public int NgramLength { get; }

    /// <summary>The table [buckets, d] (for tests and inspection).</summary>
    public Parameter Table => table;

    /// <summary>tokens int64 [B, T] and mask bool [B, T] (null = unpadded) → the mean of each row's n-gram rows [B, d].</summary>
    public Tensor Forward(Tensor tokens, Tensor? mask)
    {
        long rows = tokens.shape[0], length = tokens.shape[1];
        var real = mask ?? ones_like(tokens, dtype: ScalarType.Bool);                          // [B, T]
        var ids = new List<Tensor> { tokens.remainder(bucketCount) };                          // [B, T]
        var weights = new List<Tensor> { real };
        var hash = tokens;                                                                      // [B, T − n + 1]
        var valid = real;
        for (int n = 2; n <= NgramLength && n <= length; n++)
        {
            var next = tokens.narrow(1, n - 1, length - n + 1);                                  // [B, T − n + 1]
            hash = hash.narrow(1, 0, length - n + 1).mul(multiplier).add(next, LiveScalars.OneInteger)
                .add(LiveScalars.OneInteger, LiveScalars.OneInteger).remainder(prime);
            valid = valid.narrow(1, 0, length - n + 1).logical_and(real.narrow(1, n - 1, length - n + 1));
            ids.Add(hash.remainder(bucketCount));
            weights.Add(valid);
        }
        var all = cat(ids, 1);                                                                  // [B, N]
        var weight = cat(weights, 1).to_type(table.dtype);                                      // [B, N]
        var rowsOf = table.index_select(0, all.flatten()).view(rows, all.shape[1], -1);         // [B, N, d]
        var counts = weight.sum(1, keepdim: true).clamp_min(LiveScalars.One);                   // [B, 1]
        return weight.unsqueeze(1).bmm(rowsOf).squeeze(1) / counts;                             // [B, d]
    }

    /// <summary>
    /// One window's bag vector [d] into <paramref name="destination"/>, without padding or torch: the n-gram rows of
    /// <see cref="Forward"/> (every unigram, then every bigram, …) summed in that order and divided by their count, so a
    /// window's vector does not depend on the other windows of its call (the fused scoring path).
    /// </summary>
    internal unsafe void WindowBag(int[] window, float* destination)
    {
        int width = (int)table.shape[1];
        float* rows = TensorMemory.Floats(table);
        new Span<float>(destination, width).Clear();
        Span<long> hashes = window.Length <= 1024 ? stackalloc long[window.Length] : new long[window.Length];
        int count = 0;
        for (int n = 1; n <= NgramLength && n <= window.Length; n++)
        {
            for (int i = 0; i + n <= window.Length; i++)
            {
                long id = window[i + n - 1];
                hashes[i] = n == 1 ? id : ((hashes[i] * Multiplier) + id + 1) % Prime;       // the n-gram starting at i
                RowKernels.Add(rows + ((hashes[i] % Buckets) * width), destination, width);
                count++;
            }
        }
        float scale = Math.Max(count, 1);
        for (int c = 0; c < width; c++)
            destination[c] /= scale;
        GC.KeepAlive(table);
    }
}
