using System.Text;

namespace Microsoft.ML.MemoryFormer.Text;

/// <summary>
/// A tokenizer whose tokens are the 256 UTF-8 byte values, plus an end-of-text id (256) and a padding id (257).
/// Needs no vocabulary file and is lossless for any Unicode text; sequences are about 4× longer than GPT-2's
/// on English text.
/// </summary>
/// <remarks>
/// <see cref="Decode"/> writes the end-of-text id as <c>&lt;|endoftext|&gt;</c> (as GPT-2 does) and skips the
/// padding id. A multi-byte character cut by the end of the ids or by a special id decodes to U+FFFD.
/// </remarks>
public sealed class ByteLevelTokenizer : ITextTokenizer
{
    /// <summary>The <see cref="TokenizerDescription.Kind"/> of this tokenizer.</summary>
    public const string Kind = "byte-level";

    /// <summary>Id of the end-of-text token: 256, the first id after the bytes.</summary>
    public const int EndOfText = 256;

    /// <summary>Id of the padding token: 257.</summary>
    public const int Padding = 257;

    private const string EndOfTextText = "<|endoftext|>";

    /// <inheritdoc />
    public int VocabularySize => 258;

    /// <inheritdoc />
    /// <remarks>Equal to <see cref="VocabularySize"/>: the vocabulary is too small for rounding to matter.</remarks>
    public int ModelVocabularySize => VocabularySize;

    /// <inheritdoc />
    public int EndOfTextId => EndOfText;

    /// <inheritdoc />
    public int? PadId => Padding;

    /// <inheritdoc />
    public IReadOnlyList<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        var ids = new int[bytes.Length];
        for (int i = 0; i < bytes.Length; i++)
        {
            ids[i] = bytes[i];
        }

        return ids;
    }

    /// <inheritdoc />
    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var text = new StringBuilder();
        var pending = new List<byte>();
        foreach (int id in ids)
        {
            if (id is >= 0 and < 256)
            {
                pending.Add((byte)id);
                continue;
            }

            FlushBytes(pending, text);
            text.Append(id switch
            {
                EndOfText => EndOfTextText,
                Padding => string.Empty,
                _ => throw new ArgumentOutOfRangeException(nameof(ids), id, $"Token id must be in [0, {VocabularySize})."),
            });
        }

        FlushBytes(pending, text);
        return text.ToString();
    }

    /// <inheritdoc />
    public int CountBytes(string text) => Encoding.UTF8.GetByteCount(text);

    /// <inheritdoc />
    public TokenizerDescription Describe() => new(Kind, new Dictionary<string, string>());

    internal static ByteLevelTokenizer FromDescription(TokenizerDescription description)
    {
        if (description.Parameters.Count != 0)
        {
            throw new ArgumentException($"The '{Kind}' tokenizer takes no parameters.", nameof(description));
        }

        return new ByteLevelTokenizer();
    }

    private static void FlushBytes(List<byte> pending, StringBuilder text)
    {
        if (pending.Count == 0)
        {
            return;
        }

        text.Append(Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(pending)));
        pending.Clear();
    }
}
