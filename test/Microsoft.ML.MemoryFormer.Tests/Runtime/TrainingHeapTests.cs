using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Tests.Runtime;

/// <summary><see cref="TrainingHeap"/>'s decision: which mallopt calls it makes, and when it makes none.</summary>
public class TrainingHeapTests
{
    private static (bool Applied, List<(int Param, int Value)> Calls) Decide(bool switchOn, params string[] variables)
    {
        var calls = new List<(int, int)>();
        bool applied = TrainingHeap.Apply(switchOn, ["PATH", "HOME", "DOTNET_gcServer", .. variables], (p, v) => { calls.Add((p, v)); return true; });
        return (applied, calls);
    }

    [Fact]
    public void Sets_the_mmap_threshold_first_then_trim_threshold_and_top_pad_when_the_process_chose_nothing()
    {
        var (applied, calls) = Decide(switchOn: true);
        Assert.True(applied);
        Assert.Equal(
            [(TrainingHeap.M_MMAP_THRESHOLD, 32 << 20), (TrainingHeap.M_TRIM_THRESHOLD, 1 << 30), (TrainingHeap.M_TOP_PAD, 64 << 20)],
            calls);
    }

    [Fact]
    public void The_switch_off_makes_no_call()
    {
        var (applied, calls) = Decide(switchOn: false);
        Assert.False(applied);
        Assert.Empty(calls);
    }

    [Theory]
    [InlineData("GLIBC_TUNABLES")]
    [InlineData("MALLOC_ARENA_MAX")]
    [InlineData("MALLOC_TRIM_THRESHOLD_")]
    [InlineData("MALLOC_MMAP_THRESHOLD_")]
    public void Leaves_an_allocator_policy_the_process_chose_alone(string variable)
    {
        var (applied, calls) = Decide(switchOn: true, variable);
        Assert.False(applied);
        Assert.Empty(calls);
    }

    [Fact]
    public void A_refused_parameter_is_not_reported_as_applied_and_the_others_are_still_tried()
    {
        var calls = new List<int>();
        bool applied = TrainingHeap.Apply(true, [], (p, _) => { calls.Add(p); return p != TrainingHeap.M_TOP_PAD; });
        Assert.False(applied);
        Assert.Equal(3, calls.Count);
    }
}
