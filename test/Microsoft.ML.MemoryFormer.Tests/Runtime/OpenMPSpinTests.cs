using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Tests.Runtime;

public class OpenMPSpinTests
{
    [Fact]
    public void Sets_the_spin_count_when_the_process_chose_no_wait_behaviour()
    {
        var environment = new Dictionary<string, string>();
        bool applied = OpenMPSpin.Apply(environment.ContainsKey, (name, value) => { environment[name] = value; return true; });
        Assert.True(applied);
        Assert.Equal(OpenMPSpin.SpinCount, environment["GOMP_SPINCOUNT"]);
    }

    [Theory]
    [InlineData("OMP_WAIT_POLICY", "ACTIVE")]
    [InlineData("GOMP_SPINCOUNT", "300000")]
    public void Leaves_a_wait_behaviour_the_process_chose_alone(string name, string value)
    {
        var environment = new Dictionary<string, string> { [name] = value };
        bool applied = OpenMPSpin.Apply(environment.ContainsKey, (n, v) => { environment[n] = v; return true; });
        Assert.False(applied);
        Assert.Equal(new Dictionary<string, string> { [name] = value }, environment);
    }

    [Fact]
    public void A_failed_setenv_is_not_reported_as_applied()
    {
        Assert.False(OpenMPSpin.Apply(_ => false, (_, _) => false));
    }

    [Fact]
    public void Loading_the_library_left_the_native_environment_with_a_spin_setting_on_linux()
    {
        if (!OperatingSystem.IsLinux())
            return;
        // The module initializer ran when this assembly first used the library: either the test process set a wait
        // behaviour itself, or libgomp (loaded by libtorch after it) sees the library's bounded spin count.
        using var probe = TorchSharp.torch.ones(1);
        if (OpenMPSpin.Applied)
            Assert.Equal(OpenMPSpin.SpinCount, OpenMPSpin.Get("GOMP_SPINCOUNT"));
        else
            Assert.Contains(OpenMPSpin.UserChoices, v => OpenMPSpin.Get(v) is not null);
    }
}
