using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using Microsoft.ML.MemoryFormer.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.LanguageModeling;

/// <summary>Everything a language-model training run needs besides the text (no ML.NET types).</summary>
/// <param name="Config">Architecture, with the tokenizer's vocabulary and the context length already set.</param>
/// <param name="Tokenizer">Turns documents into ids.</param>
/// <param name="BatchSize">Windows per step.</param>
/// <param name="ValidationFraction">Tail of the windows kept for validation when no validation text is given.</param>
/// <param name="Seed">Seeds initialisation and batch order.</param>
/// <param name="Device">Where to train.</param>
/// <param name="Schedule">Run length, learning rates, decay, warm-up, validation and checkpoints for the packed windows.</param>
/// <param name="Initial">A trained model of <paramref name="Config"/>'s architecture to go on training (continued or
/// task-adaptive pretraining) instead of a fresh one; the trainer takes it over (trains it in place, disposes it when
/// training fails; one of another architecture is refused with an <see cref="ArgumentException"/> and left alone).
/// Null (the default): random initial weights.</param>
internal sealed record LanguageModelTrainingPlan(MemoryFormerConfig Config, ITextTokenizer Tokenizer, int BatchSize,
    double ValidationFraction, int Seed, Device Device, TrainingSchedule Schedule, LanguageModel? Initial = null);
