using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Tests.Models;

/// <summary>Assertions on whole modules' weights.</summary>
internal static class WeightAssert
{
    /// <summary>Asserts that <paramref name="actual"/> has exactly <paramref name="expected"/>'s parameter names and, for each,
    /// the same values (to 1e-6); <paramref name="what"/> names the expected side in the message.</summary>
    public static void Same(torch.nn.Module expected, torch.nn.Module actual, string what)
    {
        var want = expected.state_dict();
        var got = actual.state_dict();
        Assert.Equal(want.Keys.Order(), got.Keys.Order());
        foreach (var (name, weight) in want)
            Assert.True(weight.allclose(got[name], rtol: 0, atol: 1e-6), $"weight '{name}' differs from {what}");
    }
}
