using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Tests;

public class TorchLoadsTests
{
    [Fact]
    public void Torch_native_library_loads_in_the_test_host()
    {
        using var t = torch.ones(2, 3);
        Assert.Equal(6f, t.sum().item<float>());
    }
}
