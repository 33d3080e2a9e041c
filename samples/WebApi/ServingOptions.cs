namespace WebApi;

/// <summary>
/// The <c>Serving</c> configuration section: where the two models are and the limits every request is checked
/// against. Set them in appsettings.json, as environment variables (<c>Serving__MaxBatchSize=32</c>) or on the
/// command line (<c>--Serving:ClassifierPath=/models/spam.zip</c>).
/// </summary>
public sealed class ServingOptions
{
    /// <summary>The configuration section these options are read from.</summary>
    public const string Section = "Serving";

    /// <summary>The ML.NET zip of a text classifier (Text → PredictedLabel, Score); empty = <see cref="DefaultModelFolder"/>/classifier.zip.</summary>
    public string ClassifierPath { get; set; } = "";

    /// <summary>The ML.NET zip of a MemoryFormer language model; empty = <see cref="DefaultModelFolder"/>/language-model.zip.</summary>
    public string LanguageModelPath { get; set; } = "";

    /// <summary>Largest request body in bytes; a larger one gets 413. Default 1 MiB.</summary>
    public long MaxRequestBodyBytes { get; set; } = 1 << 20;

    /// <summary>Most texts in one <c>POST /classify</c>. Default 64.</summary>
    public int MaxBatchSize { get; set; } = 64;

    /// <summary>Longest text to classify, in characters. Default 4096.</summary>
    public int MaxTextLength { get; set; } = 4096;

    /// <summary>Longest prompt, in characters. Default 4096.</summary>
    public int MaxPromptLength { get; set; } = 4096;

    /// <summary>Largest <c>maxNewTokens</c> a client may ask for. Default 512.</summary>
    public int MaxNewTokens { get; set; } = 512;

    /// <summary>Most stop sequences in one request (each at most 64 characters). Default 4.</summary>
    public int MaxStopSequences { get; set; } = 4;

    /// <summary>Generations that run at once; further requests wait (in order) for a slot. Default 8.</summary>
    public int MaxConcurrentGenerations { get; set; } = 8;

    /// <summary>
    /// The confidence (a text's largest class probability) below which <c>POST /classify</c> marks the text out of scope
    /// (<c>"outOfScope": true</c>: it probably belongs to none of the classes). 0, the default, judges nothing and leaves the
    /// field out. Fit it on held-out in-scope texts with <c>mlContext.MulticlassClassification.FitOutOfScopeThreshold</c>
    /// (e.g. the threshold that accepts 95 % of them); a text is in scope when its confidence is at least the threshold.
    /// </summary>
    public float OutOfScopeThreshold { get; set; }

    /// <summary>Idle classifier engines the pool keeps; more are made under load and disposed when returned. Default 2 × cores.</summary>
    public int MaxIdleEngines { get; set; } = 2 * Environment.ProcessorCount;

    /// <summary>Where the demo models live when no path is configured: <c>~/.cache/memoryformer/webapi</c>.</summary>
    public static string DefaultModelFolder { get; } =
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "memoryformer", "webapi");

    /// <summary>The classifier's path with the default applied.</summary>
    public string ResolvedClassifierPath =>
        Path.GetFullPath(string.IsNullOrWhiteSpace(ClassifierPath) ? Path.Combine(DefaultModelFolder, "classifier.zip") : ClassifierPath);

    /// <summary>The language model's path with the default applied.</summary>
    public string ResolvedLanguageModelPath =>
        Path.GetFullPath(string.IsNullOrWhiteSpace(LanguageModelPath) ? Path.Combine(DefaultModelFolder, "language-model.zip") : LanguageModelPath);

    /// <summary>Checks the limits at start-up, naming the bad setting.</summary>
    /// <exception cref="InvalidOperationException">A limit is not positive.</exception>
    public void Validate()
    {
        Positive(nameof(MaxRequestBodyBytes), MaxRequestBodyBytes);
        Positive(nameof(MaxBatchSize), MaxBatchSize);
        Positive(nameof(MaxTextLength), MaxTextLength);
        Positive(nameof(MaxPromptLength), MaxPromptLength);
        Positive(nameof(MaxNewTokens), MaxNewTokens);
        Positive(nameof(MaxConcurrentGenerations), MaxConcurrentGenerations);
        Positive(nameof(MaxIdleEngines), MaxIdleEngines);
        if (MaxStopSequences < 0) Positive(nameof(MaxStopSequences), MaxStopSequences);
        if (!(OutOfScopeThreshold >= 0 && OutOfScopeThreshold <= 1))
            throw new InvalidOperationException(
                $"Configuration {Section}:{nameof(OutOfScopeThreshold)} must be a probability in [0, 1] (0: off); it is {OutOfScopeThreshold}.");
    }

    private static void Positive(string name, long value)
    {
        if (value <= 0)
            throw new InvalidOperationException($"Configuration {Section}:{name} must be a positive number; it is {value}.");
    }
}
