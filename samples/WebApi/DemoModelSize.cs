namespace WebApi;

/// <summary>How large the <see cref="DemoModels"/> are.</summary>
public enum DemoModelSize
{
    /// <summary>The <c>--train-demo</c> models: d = 128, 2 layers; under a minute on 2 cores.</summary>
    Demo,

    /// <summary>Test-sized models: d = 16, 1 layer; a few seconds.</summary>
    Tiny,
}
