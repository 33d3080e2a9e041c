using Microsoft.ML.Data;
using Microsoft.ML.MemoryFormer.Configuration;
using Microsoft.ML.MemoryFormer.Generation;
using Microsoft.ML.MemoryFormer.MLNet;
using Microsoft.ML.MemoryFormer.Models;
using Microsoft.ML.MemoryFormer.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.MemoryFormer.Tests.Reliability;

/// <summary>A seeded, untrained tiny language model and its two saved forms (standalone checkpoint and ML.NET zip).</summary>
internal static class TinyModelFiles
{
    public static MemoryFormerConfig Config { get; } = MemoryFormerConfig.Nano with { VocabularySize = 258, Width = 16, Layers = 1 };

    public static MemoryFormerLanguageModelTransformer NewTransformer(int seed = 3, MemoryFormerConfig? config = null)
    {
        torch.manual_seed(seed);
        var model = new LanguageModel(config ?? Config);
        return new MemoryFormerLanguageModelTransformer(model, new ByteLevelTokenizer(), CPU, new GenerationOptions { Temperature = 0, MaxNewTokens = 4 },
            new LanguageModelColumns("Text", "Prompt", "GeneratedText"), generationBatchSize: 4, trainingResult: null);
    }

    public static byte[] Standalone(MemoryFormerLanguageModelTransformer model)
    {
        var path = Path.Combine(Path.GetTempPath(), $"mf-tiny-{Guid.NewGuid():N}.mfa");
        try
        {
            model.Save(path);
            return File.ReadAllBytes(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    public static byte[] MLNetZip(MemoryFormerLanguageModelTransformer model)
    {
        using var stream = new MemoryStream();
        new MLContext(seed: 1).Model.Save(model, null, stream);
        return stream.ToArray();
    }

    public static MemoryFormerLanguageModelTransformer LoadStandalone(byte[] bytes)
    {
        var path = Path.Combine(Path.GetTempPath(), $"mf-tiny-{Guid.NewGuid():N}.mfa");
        try
        {
            File.WriteAllBytes(path, bytes);
            return MemoryFormerLanguageModelTransformer.Load(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    public static MemoryFormerLanguageModelTransformer LoadMLNet(byte[] bytes)
    {
        var ml = new MLContext(seed: 1);
        ml.ComponentCatalog.RegisterMemoryFormer();
        return Unwrap(ml.Model.Load(new MemoryStream(bytes, writable: false), out _));
    }

    /// <summary>The language model inside what <c>mlContext.Model.Load</c> returned.</summary>
    public static MemoryFormerLanguageModelTransformer Unwrap(ITransformer loaded) => loaded switch
    {
        MemoryFormerLanguageModelTransformer lm => lm,
        TransformerChain<ITransformer> chain => (MemoryFormerLanguageModelTransformer)chain.LastTransformer,
        _ => throw new InvalidCastException(loaded.GetType().FullName),
    };

    /// <summary>The model's logits for a fixed prompt, as floats.</summary>
    public static float[] Logits(MemoryFormerLanguageModelTransformer model)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var tokens = tensor(new long[] { 1, 40, 100, 7, 200, 3 }, [1, 6]);
        return model.Model.call(tokens).data<float>().ToArray();
    }
}
