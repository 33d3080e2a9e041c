namespace Microsoft.ML.MemoryFormer.Interop;

/// <summary>The CRC-32 of zip records (polynomial 0xEDB88320), to write torch.save files and to check the ones read.</summary>
internal static class ZipCrc32
{
    private static readonly uint[] Table = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    /// <summary>The CRC of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Finish(Append(Start, data));

    /// <summary>The running value before any byte.</summary>
    public const uint Start = 0xFFFFFFFFu;

    /// <summary>Continues a running value over <paramref name="data"/>.</summary>
    public static uint Append(uint running, ReadOnlySpan<byte> data)
    {
        foreach (var b in data) running = Table[(running ^ b) & 0xFF] ^ (running >> 8);
        return running;
    }

    /// <summary>The CRC of a running value.</summary>
    public static uint Finish(uint running) => running ^ 0xFFFFFFFFu;
}
