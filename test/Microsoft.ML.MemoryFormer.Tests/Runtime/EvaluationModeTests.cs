using Microsoft.ML.MemoryFormer.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Runtime;

/// <summary><see cref="EvaluationMode"/>: evaluation mode and no gradients inside the block, the module's own mode and
/// gradients after it.</summary>
public class EvaluationModeTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_block_runs_in_eval_mode_without_gradients_and_leaves_the_module_as_it_was(bool training)
    {
        using var module = nn.Linear(2, 2);
        if (training) module.train(); else module.eval();

        using (EvaluationMode.Enter(module))
        {
            Assert.False(module.training);
            Assert.False(is_grad_enabled());
        }

        Assert.Equal(training, module.training);
        Assert.True(is_grad_enabled());
    }
}
