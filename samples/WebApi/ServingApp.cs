using Microsoft.Extensions.Options;

namespace WebApi;

/// <summary>
/// Builds the Web API: options, the loaded models, the engine pool, the generation slots, the counters and the five
/// endpoints. <c>Program.cs</c> runs it; tests start it in-process through <c>WebApplicationFactory&lt;ServingApp&gt;</c>.
/// </summary>
public sealed class ServingApp
{
    private ServingApp()
    {
    }

    /// <summary>Creates the app from the command line and configuration, and loads the models.</summary>
    /// <param name="args">Command-line arguments (configuration overrides such as <c>--Serving:MaxBatchSize=8</c>, <c>--urls</c>).</param>
    /// <returns>The app, ready to run.</returns>
    public static WebApplication Build(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.Services.AddProblemDetails();
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.PropertyNamingPolicy = JsonRequestReader.Options.PropertyNamingPolicy);
        builder.Services.Configure<ServingOptions>(builder.Configuration.GetSection(ServingOptions.Section));
        builder.Services.AddSingleton<ServingCounters>();
        builder.Services.AddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<ServingOptions>>().Value;
            options.Validate();
            return ServedModels.Load(options);
        });
        builder.Services.AddSingleton<ClassifierEnginePool>();
        builder.Services.AddSingleton(sp => new GenerationSlots(sp.GetRequiredService<IOptions<ServingOptions>>().Value.MaxConcurrentGenerations));

        var app = builder.Build();
        var models = app.Services.GetRequiredService<ServedModels>();   // load at start-up: a bad file fails here, not on the first request
        app.Logger.LogInformation("Serving classifier ({Classes}) and language model", string.Join(", ", models.ClassNames));
        app.UseExceptionHandler();
        app.UseStatusCodePages();

        app.MapPost("/classify", ClassifyEndpoint.HandleAsync);
        app.MapPost("/explain", ExplainEndpoint.HandleAsync);
        app.MapPost("/generate", GenerateEndpoints.GenerateAsync);
        app.MapPost("/generate/stream", GenerateEndpoints.StreamAsync);
        app.MapGet("/health", (ServedModels served, GenerationSlots slots, ServingCounters counters) =>
        {
            using var process = System.Diagnostics.Process.GetCurrentProcess();
            return new HealthResponse("ok", served.ClassNames, slots.InUse, counters.Snapshot(), process.WorkingSet64, GC.GetTotalMemory(false));
        });
        return app;
    }
}
