using System.Reflection;
using Microsoft.ML.MemoryFormer.Runtime;

namespace Microsoft.ML.MemoryFormer.Tests.Runtime;

/// <summary><see cref="KernelSettings.With"/> applies a change for its body only, for every switch there is.</summary>
public class KernelSettingsTests
{
    private static readonly PropertyInfo[] Switches = typeof(KernelSettings)
        .GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite).ToArray();

    [Fact]
    public void With_changes_every_switch_for_its_body_only_and_restores_it_after()
    {
        var settings = new KernelSettings();
        Assert.True(Switches.Length >= 20);
        var before = Switches.Select(p => p.GetValue(settings)).ToArray();

        object?[]? inside = null;
        settings.With(s => Array.ForEach(Switches, p => p.SetValue(s, Changed(p.GetValue(s)))),
            () => inside = Switches.Select(p => p.GetValue(settings)).ToArray());

        Assert.Equal(before.Select(Changed), inside!);
        Assert.Equal(before, Switches.Select(p => p.GetValue(settings)));
    }

    [Fact]
    public void With_restores_the_switches_when_its_body_throws_and_a_change_inside_the_body_is_undone_too()
    {
        var settings = new KernelSettings();
        bool fused = settings.FusedTableUpdate;

        Assert.Throws<InvalidOperationException>(() => settings.With(s => s.FusedTableUpdate = !fused, () =>
        {
            settings.StreamingStores = !settings.StreamingStores;
            throw new InvalidOperationException("body failed");
        }));

        Assert.Equal(fused, settings.FusedTableUpdate);
        Assert.Equal(new KernelSettings().StreamingStores, settings.StreamingStores);
    }

    private static object? Changed(object? value) => value switch
    {
        bool b => !b,
        long l => l + 1,
        int i => i + 1,
        Enum e => Enum.GetValues(e.GetType()).Cast<object>().Where(v => !v.Equals(e)).First(),
        _ => throw new InvalidOperationException($"A switch of type {value?.GetType()} needs a case here."),
    };
}
