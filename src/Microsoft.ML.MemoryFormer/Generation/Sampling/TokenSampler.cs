using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Generation.Sampling;

/// <summary>
/// Picks the next token from a model's logits as <see cref="GenerationOptions"/> say: vocabulary limit, repetition
/// penalty, frequency and presence penalties (on the generated ids only), then greedy argmax (temperature 0) or temperature → top-k → top-p → a draw from a seeded
/// <see cref="torch.Generator"/>. Works on [V] logits (one sequence) or [B, V] logits (B sequences at once), on any
/// device. Each row of a batch draws from its own generator, every one seeded with the seed, so a sequence's draws depend
/// only on the seed, its own logits and the device — not on the other sequences of its batch or its place among them: a
/// prompt sampled in a batch gets the text it gets alone.
/// </summary>
internal sealed class TokenSampler : IDisposable
{
    private readonly ILogitsProcessor[] _beforeChoice;
    private readonly ILogitsProcessor[] _truncation;
    private readonly OutputPenalties? _outputPenalties;
    private readonly ulong _seed;
    private readonly List<Generator> _generators = [];

    /// <summary>float32's largest value, alive for the process (an implicit scalar could be finalized while an op reads it; see Runtime.LiveScalars).</summary>
    private static readonly Scalar LargestFloat = float.MaxValue;

    /// <param name="options">Validated here.</param>
    /// <param name="defaultSeed">Seed when <see cref="GenerationOptions.Seed"/> is null (the model's or MLContext's).</param>
    /// <param name="vocabularySize">Real vocabulary size when the logits are wider (padded); null when they are not.</param>
    public TokenSampler(GenerationOptions options, int defaultSeed = 0, int? vocabularySize = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        _seed = unchecked((ulong)(uint)(options.Seed ?? defaultSeed));

        var beforeChoice = new List<ILogitsProcessor>();
        if (vocabularySize is int size)
        {
            beforeChoice.Add(new VocabularyLimit(size));
        }

        if (options.RepetitionPenalty != 1.0)
        {
            beforeChoice.Add(new RepetitionPenalty(options.RepetitionPenalty));
        }

        if (options.FrequencyPenalty != 0 || options.PresencePenalty != 0)
        {
            _outputPenalties = new OutputPenalties(options.FrequencyPenalty, options.PresencePenalty);
        }

        var truncation = new List<ILogitsProcessor>();
        if (!IsGreedy)
        {
            truncation.Add(new Temperature(options.Temperature));
            if (options.TopK > 0)
            {
                truncation.Add(new TopK(options.TopK));
            }

            if (options.TopP < 1.0)
            {
                truncation.Add(new TopP(options.TopP));
            }
        }

        _beforeChoice = [.. beforeChoice];
        _truncation = [.. truncation];
    }

    /// <summary>The options this sampler follows.</summary>
    public GenerationOptions Options { get; }

    /// <summary>Whether tokens are chosen by argmax: temperature 0, or one below float32's smallest normal number (the
    /// sampling arithmetic runs in float32, where such a temperature divides by zero; its limit is greedy anyway).</summary>
    public bool IsGreedy => Options.Temperature < MinimumSampledTemperature;

    /// <summary>float32's smallest normal number: the lowest temperature that is sampled rather than greedy.</summary>
    public const double MinimumSampledTemperature = 1.1754943508222875e-38;

    /// <summary>Picks the next token of one sequence.</summary>
    /// <param name="logits">[V] next-token logits.</param>
    /// <param name="history">Ids already in the sequence (prompt and output), for the repetition penalty.</param>
    /// <param name="generated">The ids generated so far, for the frequency and presence penalties; none when null.</param>
    /// <returns>The chosen id.</returns>
    public int Sample(Tensor logits, IReadOnlyList<int> history, IReadOnlyList<int>? generated = null)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(history);
        if (logits.dim() != 1)
        {
            throw new ArgumentException($"Expected [V] logits, got shape [{string.Join(", ", logits.shape)}].", nameof(logits));
        }

        using DisposeScope scope = torch.NewDisposeScope();
        return Sample(logits.unsqueeze(0), [history], [generated ?? []])[0]; // [1, V]
    }

    /// <summary>Picks the next token of each of B sequences.</summary>
    /// <param name="logits">[B, V] next-token logits.</param>
    /// <param name="histories">Per row, ids already in the sequence; B entries.</param>
    /// <param name="generated">Per row, the ids generated so far (the frequency and presence penalties count these); none when null.</param>
    /// <returns>B chosen ids.</returns>
    public int[] Sample(Tensor logits, IReadOnlyList<IReadOnlyList<int>> histories, IReadOnlyList<IReadOnlyList<int>>? generated = null)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(histories);
        if (logits.dim() != 2)
        {
            throw new ArgumentException($"Expected [B, V] logits, got shape [{string.Join(", ", logits.shape)}].", nameof(logits));
        }

        using DisposeScope scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        Tensor scores = logits.detach().to_type(ScalarType.Float32);  // [B, V]
        foreach (ILogitsProcessor processor in _beforeChoice)
        {
            scores = processor.Process(scores, histories);
        }

        if (_outputPenalties is not null && generated is not null)
        {
            scores = _outputPenalties.Process(scores, generated);
        }

        Tensor chosen;                                                 // [B]
        if (IsGreedy)
        {
            chosen = scores.argmax(-1);
        }
        else
        {
            // Penalties of extreme (but valid) sizes can push scores to +∞ in float32: the largest float keeps the temperature's
            // shift and the softmax defined.
            scores = scores.clamp_max(LargestFloat);
            foreach (ILogitsProcessor processor in _truncation)
            {
                scores = processor.Process(scores, histories);
            }

            Tensor probabilities = scores.softmax(-1);                 // [B, V]
            var rows = new Tensor[probabilities.shape[0]];
            for (int i = 0; i < rows.Length; i++)                      // row i from generator i: [1, 1] each
                rows[i] = torch.multinomial(probabilities.narrow(0, i, 1), 1, generator: GeneratorFor(logits.device, i));
            chosen = torch.cat(rows, 0).squeeze(-1);
        }

        long[] ids = chosen.cpu().data<long>().ToArray();
        return Array.ConvertAll(ids, id => (int)id);
    }

    /// <summary>Releases the random generators.</summary>
    public void Dispose()
    {
        foreach (Generator generator in _generators)
        {
            generator.Dispose();
        }

        _generators.Clear();
    }

    private Generator GeneratorFor(Device device, int row)
    {
        // One generator per row of the batch, made on the logits' device on first use (CUDA sampling needs a CUDA generator),
        // all seeded alike: row i's draws are those of its sequence sampled alone.
        while (_generators.Count <= row)
        {
            _generators.Add(new Generator(_seed, device));
        }

        Generator generator = _generators[row];
        if (generator.device.type != device.type || (device.type != DeviceType.CPU && generator.device.index != device.index))
        {
            throw new ArgumentException($"This sampler draws on {generator.device}; logits are on {device}.", nameof(device));
        }

        return generator;
    }
}
