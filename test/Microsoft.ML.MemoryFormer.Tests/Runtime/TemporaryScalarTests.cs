using System.Reflection;
using System.Reflection.Emit;
using Microsoft.ML.MemoryFormer.Runtime;
using TorchSharp;

namespace Microsoft.ML.MemoryFormer.Tests.Runtime;

/// <summary>
/// The library never hands libtorch a TorchSharp scalar that nothing references: an implicit <c>Scalar</c> (from
/// <c>tensor * 0.5</c>, <c>add_(x, alpha: 0.1)</c>, or the hidden <c>alpha = 1</c> of <c>Tensor.add(Tensor)</c>) can be
/// finalized while the native op reads it (docs/reliability.md, "Finalizers and native calls"). The check reads the
/// library's IL: every conversion to <c>Scalar</c> must be stored (a named <c>using</c> local or a field) before use,
/// and the TorchSharp methods that make an implicit scalar themselves must not be called.
/// </summary>
public class TemporaryScalarTests
{
    private static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static).Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value);

    [Fact]
    public void The_library_passes_no_unreferenced_scalar_to_a_native_op()
    {
        var library = typeof(LiveScalars).Assembly;
        var found = new List<string>();
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        int scanned = 0;
        foreach (var type in library.GetTypes())
            foreach (var method in type.GetMethods(all).Cast<MethodBase>().Concat(type.GetConstructors(all)))
            {
                var il = method.GetMethodBody()?.GetILAsByteArray();
                if (il is null) continue;
                scanned++;
                foreach (var problem in Problems(method, il))
                    found.Add($"{type.FullName}.{method.Name}: {problem}");
            }
        Assert.True(scanned > 1000, $"only {scanned} method bodies read: the scan is not looking at the library");
        Assert.True(found.Count == 0, "Temporary scalars (name them with `using Scalar x = …;` or use Runtime.LiveScalars):\n" + string.Join("\n", found));
    }

    [Fact]
    public void The_check_finds_a_temporary_scalar_and_accepts_a_named_one()
    {
        var bad = typeof(TemporaryScalarTests).GetMethod(nameof(Temporary), BindingFlags.NonPublic | BindingFlags.Static)!;
        var good = typeof(TemporaryScalarTests).GetMethod(nameof(Named), BindingFlags.NonPublic | BindingFlags.Static)!;
        // `* 0.5`, softplus's beta and threshold two calls down, and the hidden alpha of add
        Assert.Equal(3, Problems(bad, bad.GetMethodBody()!.GetILAsByteArray()!).Count());
        Assert.Empty(Problems(good, good.GetMethodBody()!.GetILAsByteArray()!));
    }

    private static torch.Tensor Temporary(torch.Tensor x) => torch.nn.functional.softplus(x * 0.5).add(x);

    private static torch.Tensor Named(torch.Tensor x)
    {
        using Scalar half = 0.5;
        return x.mul(half).add(x, LiveScalars.One);
    }

    /// <summary>Calls in <paramref name="il"/> that make a scalar nothing references.</summary>
    private static IEnumerable<string> Problems(MethodBase method, byte[] il)
    {
        foreach (var (callee, at, next) in Calls(method, il))
        {
            if (MakesScalar(callee) && !IsStore(il, next))
                yield return $"{callee.DeclaringType!.Name}.{callee.Name} passed on without a name (IL offset {at})";
            else if (HidesScalar(callee))
                yield return $"{callee.DeclaringType!.Name}.{callee.Name}({string.Join(", ", callee.GetParameters().Select(p => p.ParameterType.Name))}) makes an implicit scalar (IL offset {at})";
        }
    }

    /// <summary>Every call and callvirt in <paramref name="il"/>: the callee, its offset and the next instruction's offset.</summary>
    private static IEnumerable<(MethodBase Callee, int At, int Next)> Calls(MethodBase method, byte[] il)
    {
        for (int i = 0; i < il.Length;)
        {
            short value = il[i] == 0xFE ? (short)(0xFE00 | il[i + 1]) : il[i];
            var op = OpCodesByValue[value];
            int next = i + op.Size + OperandSize(op, il, i + op.Size);
            if ((op == OpCodes.Call || op == OpCodes.Callvirt) && Resolve(method, BitConverter.ToInt32(il, i + op.Size)) is { } callee)
                yield return (callee, i, next);
            i = next;
        }
    }

    private static bool MakesScalar(MethodBase m) =>
        m.DeclaringType is { } t && (t == typeof(Scalar) && m.Name == "op_Implicit" || t == typeof(ScalarExtensionMethods) && m.Name == "ToScalar");

    private static readonly Dictionary<(MethodBase, int), bool> Hiding = [];

    /// <summary>A TorchSharp method that converts a number to a scalar nothing keeps, itself or through the TorchSharp
    /// methods it calls (the hidden <c>alpha = 1</c> of <c>add(Tensor)</c>, <c>square()</c> as <c>pow(2)</c>,
    /// <c>functional.softplus</c>'s beta and threshold), read from TorchSharp's IL a few calls deep.</summary>
    private static bool HidesScalar(MethodBase m, int depth = 0)
    {
        if (m.DeclaringType?.Assembly != typeof(Scalar).Assembly || MakesScalar(m) || depth > 3) return false;
        lock (Hiding)
        {
            if (Hiding.TryGetValue((m, depth), out bool known)) return known;
            Hiding[(m, depth)] = false;                                        // a recursive call sees "no" while this one is read
            bool hides = m.GetMethodBody()?.GetILAsByteArray() is { } il
                && Calls(m, il).Any(c => MakesScalar(c.Callee) ? !IsStore(il, c.Next) : HidesScalar(c.Callee, depth + 1));
            Hiding[(m, depth)] = hides;
            return hides;
        }
    }

    private static bool IsStore(byte[] il, int at)
    {
        if (at >= il.Length) return false;
        byte b = il[at];
        return b is >= 0x0A and <= 0x0D                                        // stloc.0 … stloc.3
            || b == 0x13                                                        // stloc.s
            || b == 0x7D || b == 0x80                                           // stfld, stsfld
            || (b == 0xFE && at + 1 < il.Length && il[at + 1] == 0x0E);        // stloc
    }

    private static MethodBase? Resolve(MethodBase method, int token)
    {
        try
        {
            return method.Module.ResolveMethod(token, method.DeclaringType?.IsGenericType == true ? method.DeclaringType.GetGenericArguments() : null,
                method.IsGenericMethod ? method.GetGenericArguments() : null);
        }
        catch (ArgumentException)
        {
            return null;                                                       // a generic context this scan does not rebuild
        }
    }

    private static int OperandSize(OpCode op, byte[] il, int at) => op.OperandType switch
    {
        OperandType.InlineNone => 0,
        OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
        OperandType.InlineVar => 2,
        OperandType.InlineI8 or OperandType.InlineR => 8,
        OperandType.InlineSwitch => 4 + (4 * BitConverter.ToInt32(il, at)),
        _ => 4,
    };
}
