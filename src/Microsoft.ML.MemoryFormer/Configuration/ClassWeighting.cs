namespace Microsoft.ML.MemoryFormer.Configuration;

/// <summary>How the classification loss weighs classes, for imbalanced labels.</summary>
public enum ClassWeighting
{
    /// <summary>Every row counts the same.</summary>
    None,

    /// <summary>Class c gets weight n / (C · n_c), so each class contributes as if the classes were balanced.</summary>
    Balanced,
}
