namespace WebApi;

/// <summary>Body of <c>POST /classify</c>: <c>{"texts": ["...", "..."]}</c>.</summary>
public sealed class ClassifyRequest
{
    /// <summary>The texts to classify: 1 to <see cref="ServingOptions.MaxBatchSize"/> strings.</summary>
    public string?[]? Texts { get; set; }
}
