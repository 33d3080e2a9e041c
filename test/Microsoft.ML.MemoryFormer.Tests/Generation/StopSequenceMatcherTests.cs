using Microsoft.ML.MemoryFormer.Generation;

namespace Microsoft.ML.MemoryFormer.Tests.Generation;

public class StopSequenceMatcherTests
{
    [Theory]
    [InlineData("hello\n\nworld", 5)]
    [InlineData("say END now", 4)]
    [InlineData("END\n\n", 0)]
    [InlineData("no stop here", -1)]
    public void Cut_is_at_the_earliest_stop_sequence(string text, int expected)
    {
        Assert.Equal(expected, StopSequenceMatcher.FindCut(text, ["\n\n", "END"]));
    }

    [Fact]
    public void Stop_split_across_pieces_is_found_and_not_emitted()
    {
        var matcher = new StopSequenceMatcher(["</s>"]);

        Assert.Equal("Hi", matcher.Append("Hi<"));
        Assert.Equal(string.Empty, matcher.Append("/"));
        Assert.False(matcher.IsStopped);
        Assert.Equal(string.Empty, matcher.Append("s> more"));
        Assert.True(matcher.IsStopped);
        Assert.Equal(string.Empty, matcher.Flush());
    }

    [Fact]
    public void Held_back_tail_is_released_when_it_stops_matching()
    {
        var matcher = new StopSequenceMatcher(["</s>"]);

        Assert.Equal("a", matcher.Append("a</"));
        Assert.Equal("</b", matcher.Append("b"));
        Assert.Equal("c", matcher.Append("c<"));
        Assert.Equal("<", matcher.Flush());
    }

    [Fact]
    public void Streaming_stops_at_the_same_place_as_the_whole_text()
    {
        string[] stops = ["STOP", "\n\n\n", "ab"];
        string text = "xx a b STO STOP\n\n after";
        int cut = StopSequenceMatcher.FindCut(text, stops);
        var random = new Random(3);
        for (int trial = 0; trial < 50; trial++)
        {
            var matcher = new StopSequenceMatcher(stops);
            var emitted = new System.Text.StringBuilder();
            int position = 0;
            while (position < text.Length && !matcher.IsStopped)
            {
                int length = Math.Min(random.Next(1, 4), text.Length - position);
                emitted.Append(matcher.Append(text.Substring(position, length)));
                position += length;
            }

            emitted.Append(matcher.Flush());
            Assert.True(matcher.IsStopped);
            Assert.Equal(text[..cut], emitted.ToString());
        }
    }

    [Fact]
    public void Without_stop_sequences_everything_streams_through()
    {
        var matcher = new StopSequenceMatcher([]);

        Assert.Equal("abc", matcher.Append("abc"));
        Assert.Equal(string.Empty, matcher.Flush());
    }

    [Fact]
    public void Nothing_is_emitted_after_a_stop()
    {
        var matcher = new StopSequenceMatcher(["."]);

        Assert.Equal("One", matcher.Append("One. Two"));
        Assert.True(matcher.IsStopped);
        Assert.Equal(string.Empty, matcher.Append("Three"));
        Assert.Equal(string.Empty, matcher.Flush());
    }
}
