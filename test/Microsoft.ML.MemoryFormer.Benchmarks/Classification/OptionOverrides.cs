using System.Globalization;
using System.Reflection;

namespace Microsoft.ML.MemoryFormer.Benchmarks.Classification;

/// <summary>Sets public fields of an options object from "Name=value,Name=value" (the benchmark's <c>--set</c>).</summary>
internal static class OptionOverrides
{
    /// <summary>Returns <paramref name="options"/> with the named fields set; an unknown name or bad value throws.</summary>
    public static T Apply<T>(T options, string? assignments) where T : class
    {
        if (string.IsNullOrWhiteSpace(assignments)) return options;
        foreach (var assignment in assignments.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = assignment.Split('=', 2, StringSplitOptions.TrimEntries);
            var field = typeof(T).GetField(parts[0], BindingFlags.Public | BindingFlags.Instance)
                ?? throw new ArgumentException($"--set: {typeof(T).Name} has no public field '{parts[0]}'.");
            if (parts.Length != 2) throw new ArgumentException($"--set: write '{parts[0]}=value'.");
            var type = Nullable.GetUnderlyingType(field.FieldType) ?? field.FieldType;
            object value = type.IsEnum ? Enum.Parse(type, parts[1], ignoreCase: true) : Convert.ChangeType(parts[1], type, CultureInfo.InvariantCulture);
            field.SetValue(options, value);
        }
        return options;
    }
}
