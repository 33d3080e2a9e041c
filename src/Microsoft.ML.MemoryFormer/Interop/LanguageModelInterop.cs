using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;

namespace Microsoft.ML.MemoryFormer.Interop;

/// <summary>
/// Moves a <see cref="LanguageModel"/> between this library and other stacks: safetensors with a <c>config.json</c>
/// (<c>LanguageModel.ImportSafetensors</c> / <c>model.ExportSafetensors</c>), and checkpoints of the authors' official
/// MemoryFormer code, a GPT-NeoX/DeepSpeed fork (<c>LanguageModel.ImportGptNeoXCheckpoint</c> /
/// <c>model.ExportGptNeoXCheckpoint</c>) for training on many GPUs and coming back. Only weights move: optimizer state
/// and schedules are not carried over (docs/scale.md).
/// </summary>
/// <remarks>
/// Nothing read runs code: PyTorch pickles go through a reader that interprets a fixed list of opcodes and globals and
/// refuses the rest, and every header and shape is checked against the bytes present before anything is allocated.
/// Damaged or hostile files give <see cref="InvalidDataException"/>; checkpoints of a kind this library does not model
/// (tensor-parallel shards, other weight functions or MLP layouts) give <see cref="NotSupportedException"/>.
/// </remarks>
public static class LanguageModelInterop
{
    extension(LanguageModel)
    {
        /// <summary>Reads a folder written by <c>ExportSafetensors</c>: <c>model.safetensors</c> and <c>config.json</c>.</summary>
        /// <param name="directory">The folder.</param>
        /// <returns>The model (dispose it).</returns>
        /// <exception cref="InvalidDataException">The header, the config or the tensors are damaged, or do not belong together.</exception>
        public static LanguageModel ImportSafetensors(string directory)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(directory);
            return SafetensorsModel.Import(directory);
        }

        /// <summary>
        /// Reads a checkpoint written by the official MemoryFormer code (GPT-NeoX layout, model-parallel-size 1): the
        /// <c>mp_rank_00_model_states.pt</c> file, its <c>global_stepN</c> folder (single file or per-layer
        /// <c>layer_XX-model_00-model_states.pt</c> files), or the save folder with its <c>latest</c> file.
        /// </summary>
        /// <param name="path">The file or folder.</param>
        /// <param name="options">Settings the tensors do not record (heads, context, rotary); null takes the official configs' values.</param>
        /// <returns>The model (dispose it).</returns>
        /// <exception cref="InvalidDataException">The files are damaged, hostile, or lack or add tensors.</exception>
        /// <exception cref="NotSupportedException">Tensor-parallel shards, dense Q/K/V, a single-layer or extra_table MLP, odd rotary sizes.</exception>
        public static LanguageModel ImportGptNeoXCheckpoint(string path, GptNeoXImportOptions? options = null)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(path);
            return GptNeoXCheckpoint.Import(path, options ?? new GptNeoXImportOptions());
        }

        /// <summary>Reads the tokenizer description a safetensors folder carries, or null when it has none.</summary>
        /// <param name="directory">The folder.</param>
        /// <returns>The description; <see cref="ITextTokenizer.FromDescription"/> rebuilds the tokenizer.</returns>
        public static TokenizerDescription? ReadSafetensorsTokenizer(string directory)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(directory);
            return SafetensorsModel.ReadTokenizer(directory);
        }
    }

    extension(LanguageModel model)
    {
        /// <summary>
        /// Writes <c>model.safetensors</c> (every parameter, float32, under its state-dict name), <c>config.json</c> and,
        /// when given, <c>tokenizer_description.json</c> into <paramref name="directory"/>.
        /// </summary>
        /// <param name="directory">The folder (created if needed; those files are replaced).</param>
        /// <param name="tokenizer">The tokenizer to record, e.g. <c>tokenizer.Describe()</c>; null records none.</param>
        public void ExportSafetensors(string directory, TokenizerDescription? tokenizer = null)
        {
            ArgumentNullException.ThrowIfNull(model);
            ArgumentException.ThrowIfNullOrWhiteSpace(directory);
            model.ThrowIfAdaptiveHead("Safetensors export");
            SafetensorsModel.Export(model, directory, tokenizer);
        }

        /// <summary>
        /// Writes the model as a checkpoint the official code loads (<c>"finetune": true</c>): <c>global_stepN/</c> with
        /// <c>mp_rank_00_model_states.pt</c> (or per-layer files), <c>latest</c>, and <c>memoryformer_model.yml</c> with the
        /// model settings to merge into the training config.
        /// </summary>
        /// <param name="directory">The save folder (GPT-NeoX's <c>load</c>).</param>
        /// <param name="options">Single file or pipeline layout, iteration; null: single file, iteration 0.</param>
        /// <returns>The <c>global_stepN</c> folder written.</returns>
        /// <exception cref="NotSupportedException">The model uses a setting the official code cannot express (dense baseline,
        /// the paper's weight function, ExtraBits ≠ 2, dropout, an odd rotary size).</exception>
        public string ExportGptNeoXCheckpoint(string directory, GptNeoXExportOptions? options = null)
        {
            ArgumentNullException.ThrowIfNull(model);
            ArgumentException.ThrowIfNullOrWhiteSpace(directory);
            model.ThrowIfAdaptiveHead("GPT-NeoX checkpoint export");
            return GptNeoXCheckpoint.Export(model, directory, options ?? new GptNeoXExportOptions());
        }
    }
}
