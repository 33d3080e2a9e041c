using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Text;

public class TextPairEncoderWindowsTests
{
    private const int Eot = ByteLevelTokenizer.EndOfText;
    private static readonly TextPairEncoder Encoder = new(new ByteLevelTokenizer(), maxTokens: 4);   // 3 tokens per window

    [Fact]
    public void A_row_that_fits_one_window_and_a_pair_are_encoded_as_before()
    {
        Assert.Equal([Encoder.Encode("abc")], Encoder.EncodeWindows("abc", null, maxWindows: 5));
        Assert.Equal([Encoder.Encode("")], Encoder.EncodeWindows("", null, maxWindows: 5));
        Assert.Equal([Encoder.Encode("abcdefgh", "xy")], Encoder.EncodeWindows("abcdefgh", "xy", maxWindows: 5));
        Assert.Equal([Encoder.Encode("abcdefgh")], Encoder.EncodeWindows("abcdefgh", null, maxWindows: 1));
    }

    [Fact]
    public void A_GPT2_row_of_one_window_is_its_Encode_without_a_second_tokenization()
    {
        var encoder = new TextPairEncoder(new Gpt2Tokenizer(), maxTokens: 128);
        var random = new Random(3);
        string[] words = ["the", " whale", ",", " Ishmael", " sea", "\n", " 1851", " call", " me", "!", "   ", " naïve", " 😀"];
        int single = 0, several = 0;
        for (int n = 0; n < 400; n += 7)
        {
            string text = string.Concat(Enumerable.Range(0, n).Select(_ => words[random.Next(words.Length)]));
            var windows = encoder.EncodeWindows(text, null, maxWindows: 4, WindowLayout.Even);
            if (windows.Length == 1)
            {
                single++;
                Assert.Equal(encoder.Encode(text), windows[0]);
            }
            else
                several++;
        }
        Assert.True(single > 5 && several > 5, $"{single} one-window and {several} longer rows");
    }

    [Fact]
    public void A_long_row_is_cut_into_full_windows_the_last_one_moved_back_to_end_at_the_last_token()
    {
        var windows = Encoder.EncodeWindows("abcdefgh", null, maxWindows: 5);
        Assert.Equal(3, windows.Length);
        Assert.Equal([Eot, 'a', 'b', 'c'], windows[0]);
        Assert.Equal([Eot, 'd', 'e', 'f'], windows[1]);
        Assert.Equal([Eot, 'f', 'g', 'h'], windows[2]);
    }

    [Fact]
    public void The_opt_in_layouts_read_every_kept_token_once()
    {
        // 8 tokens, 3 per window: short last 3 + 3 + 2; even 3 + 3 + 2; 7 tokens: short last 3 + 3 + 1, even 3 + 2 + 2.
        Assert.Equal([[Eot, 'a', 'b', 'c'], [Eot, 'd', 'e', 'f'], [Eot, 'g', 'h']], Encoder.EncodeWindows("abcdefgh", null, 5, WindowLayout.ShortLast));
        Assert.Equal([[Eot, 'a', 'b', 'c'], [Eot, 'd', 'e', 'f'], [Eot, 'g']], Encoder.EncodeWindows("abcdefg", null, 5, WindowLayout.ShortLast));
        Assert.Equal([[Eot, 'a', 'b', 'c'], [Eot, 'd', 'e'], [Eot, 'f', 'g']], Encoder.EncodeWindows("abcdefg", null, 5, WindowLayout.Even));
        Assert.Equal([[Eot, 'a', 'b'], [Eot, 'c', 'd']], Encoder.EncodeWindows("abcd", null, 5, WindowLayout.Even));
        foreach (var layout in Enum.GetValues<WindowLayout>())
        {
            // a multiple of the window reads the same full windows in every layout; one window and pairs are unchanged
            Assert.Equal(Encoder.EncodeWindows("abcdef", null, 5), Encoder.EncodeWindows("abcdef", null, 5, layout));
            Assert.Equal([Encoder.Encode("abc")], Encoder.EncodeWindows("abc", null, 5, layout));
            Assert.Equal([Encoder.Encode("abcdefgh", "xy")], Encoder.EncodeWindows("abcdefgh", "xy", 5, layout));
            var text = new string('a', 9) + "XYZ" + new string('b', 10_000);     // bounded: the first 4 × 3 tokens
            Assert.Equal("aaaaaaaaaXYZ", new string(Encoder.EncodeWindows(text, null, 4, layout).SelectMany(w => w.Skip(1)).Select(t => (char)t).ToArray()));
        }
    }

    [Fact]
    public void The_window_count_is_bounded_and_the_rest_of_the_text_dropped()
    {
        var windows = Encoder.EncodeWindows(new string('a', 9) + "XYZ" + new string('b', 10_000), null, maxWindows: 4);
        Assert.Equal(4, windows.Length);
        Assert.Equal([Eot, 'X', 'Y', 'Z'], windows[3]);
        Assert.Throws<ArgumentOutOfRangeException>(() => Encoder.EncodeWindows("abc", null, maxWindows: 0));
    }

    [Fact]
    public void Window_outputs_are_averaged_per_row_and_single_windows_pass_through()
    {
        var outputs = tensor(new float[] { 1, 2, 3, 4, 5, 6, 7, 8 }, [4, 2]);                         // [W=4, C=2]
        Assert.Equal(new float[] { 1, 2, 4, 5, 7, 8 }, SequencePooling.MeanOverWindows(outputs, [1, 2, 1]).data<float>().ToArray());
        Assert.Same(outputs, SequencePooling.MeanOverWindows(outputs, [1, 1, 1, 1]));
    }
}
