using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.ML.Tokenizers;

namespace Microsoft.ML.MemoryFormer.Text;

/// <summary>
/// GPT-2's encoding split the way <see cref="TiktokenTokenizer"/> splits it, with the split and the per-word lookup done
/// here: a scanner for GPT-2's pre-tokenizer pattern and a lock-free cache of word → ids in front of Microsoft.ML.Tokenizers'
/// byte-pair merges. The ids are those of <c>TiktokenTokenizer.EncodeToIds</c> on the same text.
/// </summary>
/// <remarks>
/// <para>Why: tokenizing ran at ≈ 100 ns a token on the scoring benchmark's long rows, ≈ 8 % of a scoring pass's wall
/// time while the second core waits. Of that, ≈ 45 % was the library's per-word lookup (its LRU cache takes a lock per word and
/// keeps only words of ≤ 15 characters), ≈ 25 % the pre-tokenizer (a fresh regex match enumeration, its timeout clock and an
/// iterator step per word) and ≈ 15 % the runtime's helpers those call (docs/benchmarks.md, "Scoring, eleventh round").</para>
/// <para>The split: the library's pattern for GPT-2 is
/// <c>'(?:[sdmt]|ll|ve|re)| ?(?&gt;\p{L}+)| ?(?&gt;\p{N}+)| ?(?&gt;[^\s\p{L}\p{N}]+)|(?&gt;\s+)$|\s+(?!\S)|\s</c>, matched
/// from each word's end to the next; every UTF-16 unit is a letter (<see cref="char.IsLetter(char)"/>), a number
/// (<see cref="char.IsNumber(char)"/>), white space (<see cref="char.IsWhiteSpace(char)"/>) or other, as the regex engine
/// classifies it, so <see cref="NextWord"/> takes the same words. A word's ids depend on the word alone (the library encodes each
/// match on its own), so the cache returns what the merges would.</para>
/// <para>The cache is process-wide (the vocabulary is GPT-2's, shared by every <see cref="Gpt2Tokenizer"/>), holds words of at
/// most <see cref="MaxCachedWordLength"/> characters and at most <see cref="MaxCachedWords"/> of them (≈ 8 MB at most), and is
/// emptied when full; reads take no lock, so the scorers of several threads share it.</para>
/// </remarks>
internal static class Gpt2WordEncoder
{
    /// <summary>Longest word kept in the cache (UTF-16 units); longer ones are merged every time, as the library does past 15.</summary>
    public const int MaxCachedWordLength = 32;

    /// <summary>Most words kept; the cache is emptied when it would hold more.</summary>
    public const int MaxCachedWords = 1 << 16;

    private static readonly ConcurrentDictionary<string, int[]> Cache = new(StringComparer.Ordinal);

    private static int cachedWords;      // Cache.Count without taking its locks; approximate under races, exact alone

    private static readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> CacheBySpan =
        Cache.GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>Whether <see cref="Gpt2Tokenizer"/> encodes through this class (the default) or calls
    /// <c>TiktokenTokenizer.EncodeToIds</c> on the whole text as before 2026-12-07 (s21). The same
    /// ids either way; the switch exists for <c>perf scoring --tokenize-reps</c> to time both.</summary>
    public static bool Enabled { get; set; } = true;

    /// <summary>Appends the ids of <paramref name="text"/> (no special tokens: every character is text) to <paramref name="ids"/>.</summary>
    public static void Encode(TiktokenTokenizer tokenizer, ReadOnlySpan<char> text, List<int> ids)
    {
        int start = 0;
        while (start < text.Length)
        {
            int end = NextWord(text, start);
            AddWord(tokenizer, text[start..end], ids);
            start = end;
        }
    }

    /// <summary>The end of the word that starts at <paramref name="start"/> (&lt; the text's length): the first alternative of
    /// GPT-2's pattern that matches there, as the regex engine takes it.</summary>
    internal static int NextWord(ReadOnlySpan<char> text, int start)
    {
        int n = text.Length;
        char c = text[start];
        if (c == '\'' && start + 1 < n)
        {
            char c1 = text[start + 1];
            if (c1 is 's' or 'd' or 'm' or 't') return start + 2;                 // 's 'd 'm 't
            if (start + 2 < n)
            {
                char c2 = text[start + 2];
                if ((c1 == 'l' && c2 == 'l') || (c1 == 'v' && c2 == 'e') || (c1 == 'r' && c2 == 'e')) return start + 3;   // 'll 've 're
            }
        }
        int first = c == ' ' && start + 1 < n ? start + 1 : start;              // " ?" takes the space when a word follows it
        var kind = Classify(text[first]);
        if (kind != CharKind.Space)
        {
            int end = first + 1;
            while (end < n && Classify(text[end]) == kind) end++;                // letters, numbers or other, each run atomic
            return end;
        }
        // White space (a space before white space lands here too): the whole run at the text's end, else the run but its last
        // unit (that unit then leads the next word), else the single unit.
        int run = start + 1;
        while (run < n && char.IsWhiteSpace(text[run])) run++;
        if (run == n) return n;
        return run - start >= 2 ? run - 1 : start + 1;
    }

    private enum CharKind : byte { Letter, Number, Other, Space }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static CharKind Classify(char c) => c < 128 ? AsciiKinds[c] : KindOf(c);

    /// <summary>The class the regex engine gives <paramref name="c"/> in GPT-2's pattern.</summary>
    private static CharKind KindOf(char c) =>
        char.IsWhiteSpace(c) ? CharKind.Space : char.IsLetter(c) ? CharKind.Letter : char.IsNumber(c) ? CharKind.Number : CharKind.Other;

    private static readonly CharKind[] AsciiKinds = Enumerable.Range(0, 128).Select(i => KindOf((char)i)).ToArray();

    private static void AddWord(TiktokenTokenizer tokenizer, ReadOnlySpan<char> word, List<int> ids)
    {
        if (word.Length <= MaxCachedWordLength && CacheBySpan.TryGetValue(word, out var cached))
        {
            if (cached.Length == 1) ids.Add(cached[0]);
            else ids.AddRange(cached);
            return;
        }
        // The library's own encoding of one match: its pre-tokenizer would split the word no further, and GPT-2 has no normalizer.
        var merged = tokenizer.EncodeToIds(word, considerPreTokenization: false, considerNormalization: false);
        ids.AddRange(merged);
        if (word.Length > MaxCachedWordLength) return;
        if (Volatile.Read(ref cachedWords) >= MaxCachedWords) ClearCache();
        if (CacheBySpan.TryAdd(word, [.. merged])) Interlocked.Increment(ref cachedWords);
    }

    /// <summary>Words in the cache (tests).</summary>
    internal static int CachedWords => Cache.Count;

    /// <summary>Empties the cache (when full, and for tests).</summary>
    internal static void ClearCache()
    {
        Cache.Clear();
        Volatile.Write(ref cachedWords, 0);
    }
}
