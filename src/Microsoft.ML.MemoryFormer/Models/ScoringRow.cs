namespace Microsoft.ML.MemoryFormer.Models;

/// <summary>
/// One row a scorer buffered for <see cref="TextClassifierModel.LogProbabilities(IReadOnlyList{ScoringRow})"/>: its token windows
/// when already encoded, or its text (and second text of a pair) to encode during the call (<see cref="TextClassifierModel.Buffer"/>).
/// </summary>
/// <param name="Windows">The row's windows (<see cref="TextClassifierModel.Encode"/>), or null when <paramref name="Text"/> is set.</param>
/// <param name="Text">The row's text when not encoded yet.</param>
/// <param name="Second">The second text of a pair, or null.</param>
internal readonly record struct ScoringRow(int[][]? Windows, string? Text, string? Second);
