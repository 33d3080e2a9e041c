using System.Buffers.Binary;
using System.Text;

namespace Microsoft.ML.MemoryFormer.Interop;

/// <summary>
/// Reads the <c>data.pkl</c> of a PyTorch <c>torch.save</c> file without executing anything: a pickle machine that knows
/// a fixed list of opcodes (the data opcodes of protocols 2–5) and a fixed list of globals (tensor rebuilding, storage
/// classes, <c>collections.OrderedDict</c>, <c>torch.Size</c>), each interpreted here. A few data-only classes that
/// training checkpoints carry next to the weights (numpy RNG states, DeepSpeed's loss scaler) become inert
/// <see cref="PickleOpaque"/> markers; any other global, and every opcode that builds arbitrary objects (INST, OBJ,
/// EXT*, text PERSID, buffers), is refused with <see cref="InvalidDataException"/>.
/// </summary>
/// <remarks>
/// Bounded against hostile files: the pickle's length is capped by the caller, the stack and memo are capped
/// (<see cref="MaxStack"/>, <see cref="MaxMemo"/>), every length is checked against the bytes left before anything is
/// allocated, containers are capped at <see cref="MaxItems"/> items and nesting at <see cref="MaxDepth"/>.
/// </remarks>
internal sealed class SafePickleReader
{
    /// <summary>Most values on the stack at once.</summary>
    public const int MaxStack = 1 << 20;

    /// <summary>Most memo slots.</summary>
    public const int MaxMemo = 1 << 20;

    /// <summary>Most items a list, tuple or dict built by one opcode may hold.</summary>
    public const int MaxItems = 1 << 22;

    /// <summary>Deepest nesting of containers in a tensor's shape or stride.</summary>
    public const int MaxDepth = 16;

    private static readonly object Mark = new();

    private static readonly Dictionary<string, string> StorageDtypes = new(StringComparer.Ordinal)
    {
        ["FloatStorage"] = "F32", ["HalfStorage"] = "F16", ["BFloat16Storage"] = "BF16", ["DoubleStorage"] = "F64",
        ["LongStorage"] = "I64", ["IntStorage"] = "I32", ["ShortStorage"] = "I16", ["CharStorage"] = "I8",
        ["ByteStorage"] = "U8", ["BoolStorage"] = "BOOL",
    };

    private static readonly HashSet<string> InertGlobals = new(StringComparer.Ordinal)
    {
        "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype",
        "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "argparse.Namespace",
        "deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler", "deepspeed.runtime.fp16.loss_scaler.LossScaler",
        "torch.float16", "torch.float32", "torch.bfloat16", "torch.float64", "torch.int64", "torch.int32", "torch.uint8",
        "torch.device", "torch.strided",
    };

    private readonly byte[] data;
    private int position;
    private readonly List<object?> stack = [];
    private readonly Dictionary<long, object?> memo = [];

    private SafePickleReader(byte[] data) => this.data = data;

    /// <summary>Runs the pickle and returns the object it builds.</summary>
    /// <exception cref="InvalidDataException">An opcode or global outside the allowed lists, or malformed bytes.</exception>
    public static object? Read(byte[] pickle)
    {
        var reader = new SafePickleReader(pickle);
        try
        {
            return reader.Run();
        }
        catch (Exception e) when (e is ArgumentException or InvalidCastException or IndexOutOfRangeException
                                      or OverflowException or DecoderFallbackException or KeyNotFoundException)
        {
            throw new InvalidDataException($"The pickle is malformed at byte {reader.position}: {e.Message}", e);
        }
    }

    private object? Run()
    {
        while (true)
        {
            if (position >= data.Length) throw Bad("it ends without a STOP opcode");
            byte op = data[position++];
            switch (op)
            {
                case 0x80: Byte(); break;                                              // PROTO
                case 0x95: Bytes(8); break;                                            // FRAME (length ignored: data is in memory)
                case (byte)'.': return Pop();                                          // STOP
                case (byte)'(': Push(Mark); break;                                     // MARK
                case (byte)'}': Push(new PickleDict()); break;                         // EMPTY_DICT
                case (byte)']': Push(new List<object?>()); break;                      // EMPTY_LIST
                case (byte)')': Push(Array.Empty<object?>()); break;                   // EMPTY_TUPLE
                case 0x8f: Push(new List<object?>()); break;                           // EMPTY_SET (kept as a list)
                case (byte)'t': Push(PopToMark().ToArray()); break;                    // TUPLE
                case 0x85: Push(new[] { Pop() }); break;                               // TUPLE1
                case 0x86: { var b = Pop(); var a = Pop(); Push(new[] { a, b }); break; } // TUPLE2
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new[] { a, b, c }); break; } // TUPLE3
                case (byte)'l': Push(PopToMark()); break;                              // LIST
                case (byte)'d': Push(DictFrom(PopToMark())); break;                    // DICT
                case (byte)'q': Memo(Byte()); break;                                   // BINPUT
                case (byte)'r': Memo(UInt32()); break;                                 // LONG_BINPUT
                case 0x94: Memo(memo.Count); break;                                    // MEMOIZE
                case (byte)'h': Push(Recall(Byte())); break;                           // BINGET
                case (byte)'j': Push(Recall(UInt32())); break;                         // LONG_BINGET
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Bytes(4))); break; // BININT
                case (byte)'K': Push((long)Byte()); break;                             // BININT1
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Bytes(2))); break; // BININT2
                case 0x8a: Push(Long1()); break;                                       // LONG1
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Bytes(8))); break; // BINFLOAT
                case (byte)'N': Push(null); break;                                     // NONE
                case 0x88: Push(true); break;                                          // NEWTRUE
                case 0x89: Push(false); break;                                         // NEWFALSE
                case 0x8c: Push(Utf8(Byte())); break;                                  // SHORT_BINUNICODE
                case (byte)'X': Push(Utf8(UInt32())); break;                           // BINUNICODE
                case 0x8d: Push(Utf8(UInt64())); break;                                // BINUNICODE8
                case (byte)'U': Push(Latin1(Byte())); break;                           // SHORT_BINSTRING
                case (byte)'T': Push(Latin1(UInt32())); break;                         // BINSTRING
                case (byte)'C': Push(Bytes(Byte()).ToArray()); break;                  // SHORT_BINBYTES
                case (byte)'B': Push(Bytes(UInt32()).ToArray()); break;                // BINBYTES
                case 0x8e: Push(Bytes(UInt64()).ToArray()); break;                     // BINBYTES8
                case (byte)'s': { var v = Pop(); var k = Pop(); SetItems(AsDict(Peek()), [k, v]); break; } // SETITEM
                case (byte)'u': { var items = PopToMark(); SetItems(AsDict(Peek()), items); break; } // SETITEMS
                case (byte)'a': { var v = Pop(); AddItems(AsList(Peek()), [v]); break; } // APPEND
                case (byte)'e': case 0x90: { var items = PopToMark(); AddItems(AsList(Peek()), items); break; } // APPENDS, ADDITEMS
                case (byte)'2': Push(Peek()); break;                                   // DUP
                case (byte)'0': Pop(); break;                                          // POP
                case (byte)'1': PopToMark(); break;                                    // POP_MARK
                case (byte)'c': Push(Global(Line(), Line())); break;                   // GLOBAL
                case 0x93: { var name = Pop(); var module = Pop(); Push(Global(AsString(module), AsString(name))); break; } // STACK_GLOBAL
                case (byte)'R': { var args = Pop(); var callable = Pop(); Push(Call(callable, AsTuple(args))); break; } // REDUCE
                case 0x81: { var args = Pop(); var cls = Pop(); Push(Call(cls, AsTuple(args))); break; } // NEWOBJ
                case (byte)'Q': Push(PersistentLoad(Pop())); break;                    // BINPERSID
                case (byte)'b': { var state = Pop(); Build(Peek(), state); break; }    // BUILD
                default:
                    throw Bad($"opcode 0x{op:x2} is not allowed (only the data opcodes torch.save writes are read; nothing is executed)");
            }
            if (stack.Count > MaxStack) throw Bad($"its stack grows past {MaxStack} values");
        }
    }

    private object? Global(string module, string name)
    {
        if (module == "__builtin__") module = "builtins";                        // protocol 2 spells Python 3 names the Python 2 way
        var full = $"{module}.{name}";
        if (module == "torch" && StorageDtypes.TryGetValue(name, out var dtype)) return new PickleStorageType(name, dtype);
        if (full is "collections.OrderedDict" or "torch._utils._rebuild_tensor_v2" or "torch._utils._rebuild_parameter"
            or "torch._utils._rebuild_parameter_with_state" or "torch.Size" or "_codecs.encode" or "builtins.set"
            or "builtins.frozenset" or "builtins.slice")
            return new PickleGlobal(module, name);
        if (InertGlobals.Contains(full)) return new PickleOpaque(full);
        throw Bad($"it names the global '{Printable(full)}', which is not on the list of allowed globals " +
                  "(tensors, storages, OrderedDict, torch.Size); such a file could run code when loaded by Python, so it is refused. " +
                  "Re-save only the weights, e.g. torch.save(checkpoint['module'], path)");
    }

    private object? Call(object? callable, object?[] args)
    {
        switch (callable)
        {
            case PickleOpaque opaque: return opaque;                                   // recorded, never constructed
            case PickleGlobal g:
                switch (g.FullName)
                {
                    case "collections.OrderedDict":
                        if (args.Length != 0) throw Bad("OrderedDict is called with arguments");
                        return new PickleDict();
                    case "torch.Size": return args.Length == 1 ? Longs(args[0], "torch.Size") : throw Bad("torch.Size takes one tuple");
                    case "_codecs.encode":
                        if (args.Length != 2 || args[0] is not string text || args[1] is not "latin1") throw Bad("_codecs.encode is only read as (str, 'latin1')");
                        return Encoding.Latin1.GetBytes(text);
                    case "builtins.set" or "builtins.frozenset": return args.Length == 0 ? new List<object?>() : AsList(args[0]).ToList();
                    case "builtins.slice": return new PickleOpaque(g.FullName);
                    case "torch._utils._rebuild_tensor_v2": return RebuildTensor(args);
                    case "torch._utils._rebuild_parameter" or "torch._utils._rebuild_parameter_with_state":
                        return args.Length >= 1 && args[0] is PickleTensor t ? t : throw Bad("_rebuild_parameter is not given a tensor");
                }
                break;
        }
        throw Bad($"it calls {Describe(callable)}, which is not an allowed global");
    }

    private static PickleTensor RebuildTensor(object?[] args)
    {
        if (args.Length is < 4 or > 7 || args[0] is not PickleStorage storage || args[1] is not long offset)
            throw Bad("_rebuild_tensor_v2 is given arguments of the wrong kind");
        var shape = Longs(args[2], "a tensor's size");
        var stride = Longs(args[3], "a tensor's stride");
        if (shape.Length != stride.Length || shape.Length > MaxDepth)
            throw Bad($"a tensor has size rank {shape.Length} and stride rank {stride.Length}");
        if (offset < 0 || shape.Any(s => s < 0) || stride.Any(s => s < 0))
            throw Bad("a tensor has a negative offset, size or stride");
        return new PickleTensor(storage, offset, shape, stride);
    }

    private static object PersistentLoad(object? pid)
    {
        if (pid is not object?[] t || t.Length != 5 || t[0] is not "storage" || t[1] is not PickleStorageType type
            || t[2] is not string key || t[3] is not string location || t[4] is not long numel)
            throw Bad("a persistent id is not ('storage', storage class, key, location, numel)");
        if (numel < 0 || key.Length is 0 or > 64 || !key.All(char.IsAsciiLetterOrDigit))
            throw Bad($"a storage has key '{Printable(key)}' and {numel} elements");
        return new PickleStorage(type, key, location, numel);
    }

    private static void Build(object? target, object? state)
    {
        if (target is PickleDict or PickleOpaque) return;                         // OrderedDict._metadata, inert objects: state ignored
        if (target is PickleTensor) return;                                        // tensor subclass state: ignored
        throw Bad($"BUILD is applied to {Describe(target)}");
    }

    private static void SetItems(PickleDict dict, List<object?> items)
    {
        if (items.Count % 2 != 0) throw Bad("SETITEMS has an odd number of values");
        if (dict.Entries.Count + items.Count / 2 > MaxItems) throw Bad($"a dict grows past {MaxItems} items");
        for (int i = 0; i < items.Count; i += 2) dict.Set(items[i], items[i + 1]);
    }

    private static void AddItems(List<object?> list, List<object?> items)
    {
        if (list.Count + items.Count > MaxItems) throw Bad($"a list grows past {MaxItems} items");
        list.AddRange(items);
    }

    private static PickleDict DictFrom(List<object?> items)
    {
        var dict = new PickleDict();
        SetItems(dict, items);
        return dict;
    }

    private static long[] Longs(object? value, string what)
    {
        if (value is not object?[] items || items.Length > MaxDepth || items.Any(i => i is not long))
            throw Bad($"{what} is not a short tuple of integers");
        return items.Select(i => (long)i!).ToArray();
    }

    private void Memo(long index)
    {
        if (memo.Count >= MaxMemo && !memo.ContainsKey(index)) throw Bad($"its memo grows past {MaxMemo} slots");
        memo[index] = Peek();
    }

    private object? Recall(long index) => memo.TryGetValue(index, out var v) ? v : throw Bad($"it recalls memo slot {index}, which was never set");

    private void Push(object? value) => stack.Add(value);

    private object? Peek() => stack.Count > 0 && stack[^1] != Mark ? stack[^1] : throw Bad("an opcode needs a value on an empty stack");

    private object? Pop()
    {
        var v = Peek();
        stack.RemoveAt(stack.Count - 1);
        return v;
    }

    private List<object?> PopToMark()
    {
        int at = stack.LastIndexOf(Mark);
        if (at < 0) throw Bad("an opcode needs a MARK that is not there");
        if (stack.Count - at - 1 > MaxItems) throw Bad($"a container holds more than {MaxItems} items");
        var items = stack.GetRange(at + 1, stack.Count - at - 1);
        stack.RemoveRange(at, stack.Count - at);
        return items;
    }

    private static PickleDict AsDict(object? v) => v as PickleDict ?? throw Bad($"a dict opcode is applied to {Describe(v)}");

    private static List<object?> AsList(object? v) => v as List<object?> ?? throw Bad($"a list opcode is applied to {Describe(v)}");

    private static object?[] AsTuple(object? v) => v as object?[] ?? throw Bad($"a call's arguments are {Describe(v)}, not a tuple");

    private static string AsString(object? v) => v as string ?? throw Bad($"a global's name is {Describe(v)}");

    private byte Byte() => position < data.Length ? data[position++] : throw Truncated();

    private uint UInt32() => BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4));

    private long UInt64()
    {
        ulong v = BinaryPrimitives.ReadUInt64LittleEndian(Bytes(8));
        return v > int.MaxValue ? throw Bad($"it declares a length of {v} bytes") : (long)v;
    }

    private ReadOnlySpan<byte> Bytes(long count)
    {
        if (count < 0 || count > data.Length - position) throw Truncated();
        var span = data.AsSpan(position, (int)count);
        position += (int)count;
        return span;
    }

    private string Utf8(long count) => Encoding.UTF8.GetString(Bytes(count));

    private string Latin1(long count) => Encoding.Latin1.GetString(Bytes(count));

    private string Line()
    {
        int end = Array.IndexOf(data, (byte)'\n', position, Math.Min(256, data.Length - position));
        if (end < 0) throw Bad("a GLOBAL name is not terminated within 256 bytes");
        var s = Encoding.ASCII.GetString(data, position, end - position);
        position = end + 1;
        return s;
    }

    private long Long1()
    {
        int n = Byte();
        if (n > 8) throw Bad($"an integer of {n} bytes is larger than 64 bits");
        var bytes = Bytes(n);
        long v = 0;
        for (int i = n - 1; i >= 0; i--) v = (v << 8) | bytes[i];
        if (n is > 0 and < 8 && (bytes[n - 1] & 0x80) != 0) v -= 1L << (8 * n);   // two's complement sign
        return v;
    }

    private static string Describe(object? v) => v switch
    {
        null => "None",
        PickleGlobal g => $"'{g.FullName}'",
        PickleOpaque o => $"'{o.Global}'",
        _ => v.GetType().Name,
    };

    private static string Printable(string s) => s.Length > 80 ? s[..80] + "…" : s;

    private InvalidDataException Truncated() => new($"The pickle is truncated at byte {position}.");

    private static InvalidDataException Bad(string what) => new($"The pickle is refused: {what}.");
}
