// Not in Microsoft.ML.MemoryFormer.MLNet: the runtime recognises this attribute by its full name only.
namespace System.Runtime.CompilerServices;

/// <summary>
/// Tells the .NET runtime that this assembly may use non-public members of the named assembly; here it lets the
/// runtime read this assembly's <c>[assembly: LoadableClass]</c> attributes, whose type is internal to Microsoft.ML.Core
/// (MemoryFormerLoadableClasses.cs). The runtime defines no such type: each assembly declares its own.
/// </summary>
/// <param name="assemblyName">The simple name of the assembly whose non-public members are used.</param>
[AttributeUsage(AttributeTargets.Assembly, AllowMultiple = true)]
internal sealed class IgnoresAccessChecksToAttribute(string assemblyName) : Attribute
{
    /// <summary>The simple name of the assembly whose non-public members are used.</summary>
    public string AssemblyName { get; } = assemblyName;
}
