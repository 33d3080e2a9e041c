using System.Reflection;

namespace Microsoft.ML.MemoryFormer.Tests.Reliability;

/// <summary>ML.NET's own cancellation: the internal <c>ICancelable.CancelExecution</c> of an MLContext's environment (AutoML calls it).</summary>
internal static class MLNetCancellation
{
    public static void Cancel(MLContext ml)
    {
        var environment = typeof(MLContext).GetFields(BindingFlags.NonPublic | BindingFlags.Instance)
            .Select(f => f.GetValue(ml)).First(v => v?.GetType().GetInterfaces().Any(i => i.Name == "ICancelable") == true)!;
        environment.GetType().GetInterfaces().Single(i => i.Name == "ICancelable").GetMethod("CancelExecution")!.Invoke(environment, null);
    }
}
