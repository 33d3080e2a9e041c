using Microsoft.Extensions.ObjectPool;
using Microsoft.Extensions.Options;
using Microsoft.ML;

namespace WebApi;

/// <summary>
/// Pooled classifier <see cref="PredictionEngine{TSrc, TDst}"/>s, the way ASP.NET apps pool ML.NET engines: an engine
/// is not thread-safe, so each request rents one, uses it alone and returns it; the pool keeps up to
/// <see cref="ServingOptions.MaxIdleEngines"/> idle engines, creates more under load (they are cheap: the model's
/// weights are shared) and disposes those it does not keep.
/// </summary>
/// <remarks>
/// The engines are created with <c>OwnsTransformer = false</c>: ML.NET's default (true) makes an engine dispose the
/// model when the engine is disposed, so the first engine the pool dropped would have disposed the shared classifier
/// and failed every later request (seen under load before this setting).
/// </remarks>
public sealed class ClassifierEnginePool : IDisposable
{
    private readonly ObjectPool<PredictionEngine<ClassifierInput, ClassifierOutput>> pool;
    private readonly ServingCounters counters;

    /// <summary>Creates the pool over <paramref name="models"/>' classifier.</summary>
    /// <param name="models">The loaded models.</param>
    /// <param name="counters">Where rents and returns are counted.</param>
    /// <param name="options">The number of idle engines to keep.</param>
    public ClassifierEnginePool(ServedModels models, ServingCounters counters, IOptions<ServingOptions> options)
    {
        ArgumentNullException.ThrowIfNull(models);
        ArgumentNullException.ThrowIfNull(options);
        this.counters = counters ?? throw new ArgumentNullException(nameof(counters));
        var provider = new DefaultObjectPoolProvider { MaximumRetained = options.Value.MaxIdleEngines };
        pool = provider.Create(new EnginePolicy(models, counters));
    }

    /// <summary>Takes an engine from the pool; dispose the lease to give it back.</summary>
    public Lease Rent()
    {
        var engine = pool.Get();
        counters.EngineRented();
        return new Lease(this, engine);
    }

    /// <summary>Disposes the idle engines (the pool disposes engines it does not keep, too).</summary>
    public void Dispose() => (pool as IDisposable)?.Dispose();

    private void Return(PredictionEngine<ClassifierInput, ClassifierOutput> engine)
    {
        pool.Return(engine);
        counters.EngineReturned();
    }

    /// <summary>One rented engine; <see cref="Dispose"/> returns it to the pool.</summary>
    public struct Lease : IDisposable
    {
        private readonly ClassifierEnginePool owner;
        private PredictionEngine<ClassifierInput, ClassifierOutput>? engine;

        internal Lease(ClassifierEnginePool owner, PredictionEngine<ClassifierInput, ClassifierOutput> engine)
        {
            this.owner = owner;
            this.engine = engine;
        }

        /// <summary>The engine, for this request only.</summary>
        public readonly PredictionEngine<ClassifierInput, ClassifierOutput> Engine =>
            engine ?? throw new ObjectDisposedException(nameof(Lease));

        /// <inheritdoc />
        public void Dispose()
        {
            if (engine is null) return;
            owner.Return(engine);
            engine = null;
        }
    }

    private sealed class EnginePolicy(ServedModels models, ServingCounters counters)
        : PooledObjectPolicy<PredictionEngine<ClassifierInput, ClassifierOutput>>
    {
        public override PredictionEngine<ClassifierInput, ClassifierOutput> Create()
        {
            counters.EngineCreated();
            return models.MLContext.Model.CreatePredictionEngine<ClassifierInput, ClassifierOutput>(models.Classifier,
                new PredictionEngineOptions { OwnsTransformer = false });
        }

        public override bool Return(PredictionEngine<ClassifierInput, ClassifierOutput> obj) => true;
    }
}
