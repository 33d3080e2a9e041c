namespace Microsoft.ML.MemoryFormer.Interop;

/// <summary>A pickled dict (plain or <c>collections.OrderedDict</c>); keys keep their insertion order.</summary>
internal sealed class PickleDict
{
    /// <summary>Written as <c>collections.OrderedDict</c> (as torch state dicts are) rather than a plain dict.</summary>
    public bool Ordered { get; init; }

    private static readonly object NullKey = new();
    private readonly List<KeyValuePair<object?, object?>> entries = [];
    private readonly Dictionary<object, int> index = [];                           // key → position: Set is O(1), so a hostile pickle cannot make it quadratic

    /// <summary>The entries in insertion order (later duplicates replace the value, keeping the first position).</summary>
    public IReadOnlyList<KeyValuePair<object?, object?>> Entries => entries;

    /// <summary>Sets <paramref name="key"/> (strings and numbers compare by value, other keys by reference).</summary>
    public void Set(object? key, object? value)
    {
        if (index.TryGetValue(key ?? NullKey, out int at)) { entries[at] = new(key, value); return; }
        index[key ?? NullKey] = entries.Count;
        entries.Add(new(key, value));
    }

    /// <summary>The value of a string key, or null when absent.</summary>
    public object? Get(string key) => index.TryGetValue(key, out int at) ? entries[at].Value : null;

    /// <summary>Whether a string key is present.</summary>
    public bool Has(string key) => index.ContainsKey(key);
}

/// <summary>A <c>torch.*Storage</c> class named by a pickle: its element type.</summary>
/// <param name="Name">The class name, e.g. <c>FloatStorage</c>.</param>
/// <param name="Dtype">The element type, e.g. <c>F32</c> (safetensors spelling).</param>
internal sealed record PickleStorageType(string Name, string Dtype);

/// <summary>A storage a pickle refers to by persistent id: the zip record <c>data/{Key}</c> of <paramref name="Numel"/> elements.</summary>
internal sealed record PickleStorage(PickleStorageType Type, string Key, string Location, long Numel);

/// <summary>A tensor rebuilt by <c>torch._utils._rebuild_tensor_v2</c>: a view of a storage, not yet read.</summary>
internal sealed record PickleTensor(PickleStorage Storage, long Offset, long[] Shape, long[] Stride);

/// <summary>
/// An object of a class on the inert list (numpy arrays in RNG states, DeepSpeed's loss scaler, argparse namespaces):
/// recorded by name and never constructed, so nothing of it runs. Reading it as weights is an error.
/// </summary>
internal sealed record PickleOpaque(string Global);

/// <summary>A global a pickle named and the reader allows: a callable it interprets itself, never Python code.</summary>
internal sealed record PickleGlobal(string Module, string Name)
{
    public string FullName => $"{Module}.{Name}";
}
