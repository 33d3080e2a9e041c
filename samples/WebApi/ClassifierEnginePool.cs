using Microsoft.Extensions.ObjectPool;
using Microsoft.ML;

namespace WebApi;

/// <summary>
/// Pooled classifier <see cref="PredictionEngine{TSrc, TDst}"/>s, the way ASP.NET apps pool ML.NET engines: an engine
/// is not thread-safe, so each request rents one, uses it alone and returns it; the pool keeps up to
/// <c>2 × cores</c> idle engines and creates more under load (they are cheap: the model's weights are shared).
/// </summary>
public sealed class ClassifierEnginePool : IDisposable
{
    private readonly ObjectPool<PredictionEngine<ClassifierInput, ClassifierOutput>> pool;
    private readonly ServingCounters counters;

    /// <summary>Creates the pool over <paramref name="models"/>' classifier.</summary>
    /// <param name="models">The loaded models.</param>
    /// <param name="counters">Where rents and returns are counted.</param>
    public ClassifierEnginePool(ServedModels models, ServingCounters counters)
    {
        ArgumentNullException.ThrowIfNull(models);
        this.counters = counters ?? throw new ArgumentNullException(nameof(counters));
        var provider = new DefaultObjectPoolProvider { MaximumRetained = 2 * Environment.ProcessorCount };
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
            return models.MLContext.Model.CreatePredictionEngine<ClassifierInput, ClassifierOutput>(models.Classifier);
        }

        public override bool Return(PredictionEngine<ClassifierInput, ClassifierOutput> obj) => true;
    }
}
