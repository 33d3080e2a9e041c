using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using WebApi;

namespace Microsoft.ML.MemoryFormer.Tests.Serving;

/// <summary>
/// samples/WebApi started in-process on the test server, serving two test-sized demo models trained (in seconds)
/// into a temporary folder, with small limits so the tests can exceed them cheaply.
/// </summary>
public sealed class WebApiFactory : WebApplicationFactory<ServingApp>
{
    /// <summary>The largest batch the app accepts.</summary>
    public const int MaxBatchSize = 8;

    /// <summary>The longest text the app accepts.</summary>
    public const int MaxTextLength = 200;

    /// <summary>The largest body the app accepts.</summary>
    public const int MaxRequestBodyBytes = 16 * 1024;

    /// <summary>The most tokens a request may ask for (large, so an aborted stream is surely cut short).</summary>
    public const int MaxNewTokens = 20_000;

    private readonly string folder = Path.Combine(Path.GetTempPath(), $"mf-webapi-{Guid.NewGuid():N}");

    /// <summary>Trains the two models.</summary>
    public WebApiFactory()
    {
        DemoModels.Train(ClassifierPath, LanguageModelPath, DemoModelSize.Tiny);
    }

    /// <summary>The classifier zip the app serves.</summary>
    public string ClassifierPath => Path.Combine(folder, "classifier.zip");

    /// <summary>The language-model zip the app serves.</summary>
    public string LanguageModelPath => Path.Combine(folder, "language-model.zip");

    /// <summary>The app's counters.</summary>
    public ServingCountersSnapshot Counters => Services.GetRequiredService<ServingCounters>().Snapshot();

    /// <summary>The app's classifier engine pool.</summary>
    public ClassifierEnginePool Engines => Services.GetRequiredService<ClassifierEnginePool>();

    /// <summary>Generation slots taken now.</summary>
    public int SlotsInUse => Services.GetRequiredService<GenerationSlots>().InUse;

    /// <inheritdoc />
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting("Serving:ClassifierPath", ClassifierPath);
        builder.UseSetting("Serving:LanguageModelPath", LanguageModelPath);
        builder.UseSetting("Serving:MaxBatchSize", $"{MaxBatchSize}");
        builder.UseSetting("Serving:MaxTextLength", $"{MaxTextLength}");
        builder.UseSetting("Serving:MaxRequestBodyBytes", $"{MaxRequestBodyBytes}");
        builder.UseSetting("Serving:MaxNewTokens", $"{MaxNewTokens}");
        builder.UseSetting("Serving:MaxConcurrentGenerations", "4");
        builder.UseSetting("Serving:MaxIdleEngines", "1");
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing && Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
    }
}
