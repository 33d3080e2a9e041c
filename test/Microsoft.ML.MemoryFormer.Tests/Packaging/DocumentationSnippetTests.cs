using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Microsoft.ML.MemoryFormer.Tests.Packaging;

/// <summary>
/// The C# snippets users copy from the README, the package page (PACKAGE.md) and docs/scale.md compile against today's
/// public API, and use no member marked <c>[Obsolete]</c>. A file is read top to bottom as a reader reads it: each snippet
/// sees a console app's implicit usings and the <c>using</c> directives of the snippets above it; the names a snippet takes
/// from its surroundings (the user's data views, an estimator, a trained model) are fields of the class around it
/// (<see cref="Surroundings"/>), so a snippet that declares one of them itself simply hides the field.
/// </summary>
public partial class DocumentationSnippetTests
{
    public static TheoryData<string> Documents => new() { "README.md", "src/Microsoft.ML.MemoryFormer/PACKAGE.md", "docs/scale.md" };

    [SkippableTheory]
    [MemberData(nameof(Documents))]
    public void Every_csharp_snippet_compiles_against_the_current_api_without_obsolete_members(string document)
    {
        var root = RepositoryFolder.Find();
        Skip.If(root is null, "The repository (README.md, docs/) is not above the test output folder.");
        var snippets = Snippets(File.ReadAllLines(Path.Combine(root!, document)));
        Assert.NotEmpty(snippets);
        var problems = new List<string>();
        var usings = new List<string>(ImplicitUsings);
        foreach (var (line, text) in snippets)
        {
            usings.AddRange(UsingDirective().Matches(text).Select(m => m.Groups["directive"].Value).Except(usings).ToList());
            problems.AddRange(Compile(document, line, string.Join('\n', usings), UsingDirective().Replace(text, "")));
        }
        Assert.True(problems.Count == 0, $"{document}:\n" + string.Join('\n', problems));
    }

    /// <summary>The <c>&lt;example&gt;&lt;code&gt;</c> blocks of the library's XML docs (what IntelliSense and API pages show)
    /// compile too. They show calls, not imports, so each sees ML.NET's root namespace and every public namespace of the library.</summary>
    [SkippableFact]
    public void Every_xml_doc_example_compiles_against_the_current_api_without_obsolete_members()
    {
        var root = RepositoryFolder.Find();
        Skip.If(root is null, "The repository (src/) is not above the test output folder.");
        var source = Path.Combine(root!, "src", "Microsoft.ML.MemoryFormer");
        var usings = string.Join('\n', ImplicitUsings.Append("using Microsoft.ML;").Concat(typeof(Microsoft.ML.MemoryFormer.MLNet.MemoryFormerTabularOptions)
            .Assembly.GetExportedTypes().Select(t => $"using {t.Namespace};").Distinct()));
        var problems = new List<string>();
        int examples = 0;
        foreach (var file in Directory.EnumerateFiles(source, "*.cs", SearchOption.AllDirectories).Order())
        {
            var document = Path.GetRelativePath(root!, file).Replace('\\', '/');
            foreach (var (line, text) in XmlDocExamples(File.ReadAllLines(file)))
            {
                examples++;
                problems.AddRange(Compile(document, line, usings, text));
            }
        }
        Assert.True(examples >= 10, $"found only {examples} <code> examples under {source}");
        Assert.True(problems.Count == 0, string.Join('\n', problems));
    }

    [Fact]
    public void An_obsolete_call_and_a_misspelt_member_are_both_reported()
    {
        var found = Compile("test.md", 1, string.Join('\n', ImplicitUsings.Append("using Microsoft.ML;").Append("using Microsoft.ML.MemoryFormer.MLNet;")),
            "var a = mlContext.Regression.Trainers.MemoryFormer(new MemoryFormerTabularOptions());\nlm.Generat(\"x\");\n");
        Assert.Contains(found, p => p.Contains("CS0618") && p.Contains("test.md(1"));
        Assert.Contains(found, p => p.Contains("CS1061") && p.Contains("test.md(2"));
    }

    /// <summary>What a .NET console project with <c>ImplicitUsings</c> on imports.</summary>
    private static readonly string[] ImplicitUsings =
        ["using System;", "using System.IO;", "using System.Linq;", "using System.Collections.Generic;", "using System.Threading;",
         "using System.Threading.Tasks;"];

    /// <summary>The names the documents' snippets use without declaring them, as the text around each snippet describes them.</summary>
    private const string Surroundings = """
        private static Microsoft.ML.MLContext mlContext = null!;
        private static System.Collections.Generic.IEnumerable<TextRow> myDocuments = [], generalSentences = [];
        private static Microsoft.ML.IDataView documents = null!, heldOutDocuments = null!, heldOut = null!, train = null!, test = null!, trainingData = null!,
            trainData = null!, testData = null!, validationData = null!, outOfScopeQueries = null!, featurizedTest = null!, featurizedTrain = null!;
        private static Microsoft.ML.ITransformer model = null!;
        private static Microsoft.ML.MemoryFormer.MLNet.MemoryFormerTabularTransformer tabular = null!;
        private static Microsoft.ML.MemoryFormer.MLNet.MemoryFormerLanguageModelEstimator estimator = null!;
        private static Microsoft.ML.MemoryFormer.MLNet.MemoryFormerLanguageModelTransformer lm = null!;
        private static Microsoft.ML.MemoryFormer.MLNet.MemoryFormerTextClassificationTransformer classifier = null!;
        """;

    /// <summary>Compiles one snippet as the body of an async method; returns its errors and obsolete-member warnings, each
    /// with the document's own line (the source carries a <c>#line</c> directive).</summary>
    private static IEnumerable<string> Compile(string document, int line, string usings, string body)
    {
        var source = $$"""
            {{usings}}
            internal static class Snippet
            {
            {{Surroundings}}
                internal static async System.Threading.Tasks.Task Run()
                {
            #line {{line}} "{{document}}"
            {{body}}
            #line default
                }
            }
            internal sealed class TextRow { public string Text { get; set; } = ""; }
            """;
        var compilation = CSharpCompilation.Create("Snippet", [CSharpSyntaxTree.ParseText(source, new CSharpParseOptions(LanguageVersion.CSharp14))],
            References.Value, new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));
        return compilation.GetDiagnostics()
            .Where(d => d.Severity == DiagnosticSeverity.Error || d.Id is "CS0618" or "CS0612")
            .Select(d => d.ToString());
    }

    /// <summary>Every assembly the test host runs with (the framework, the library, ML.NET, TorchSharp, ONNX Runtime's
    /// transformer), the references a user's app has after the README's package lines.</summary>
    private static readonly Lazy<MetadataReference[]> References = new(() =>
        ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => p.EndsWith(".dll", StringComparison.Ordinal))
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToArray());

    /// <summary>Each <c>```csharp</c> block of a markdown file with the file line its code starts on.</summary>
    internal static List<(int Line, string Text)> Snippets(string[] lines) => Blocks(lines, "```csharp", "```", line => line);

    /// <summary>Each multi-line <c>/// &lt;code&gt;</c> block of a C# file, its <c>///</c> prefixes and XML escapes removed, with
    /// the file line its code starts on.</summary>
    internal static List<(int Line, string Text)> XmlDocExamples(string[] lines) => Blocks(lines, "/// <code>", "/// </code>",
        line => System.Net.WebUtility.HtmlDecode(line.TrimStart() is var t && t.StartsWith("/// ", StringComparison.Ordinal) ? t[4..] : t.TrimStart('/')));

    /// <summary>The lines between each line that reads <paramref name="open"/> and the next that reads <paramref name="close"/>
    /// (both trimmed), each passed through <paramref name="clean"/>, with the file line (1-based) the block's first line is on.</summary>
    private static List<(int Line, string Text)> Blocks(string[] lines, string open, string close, Func<string, string> clean)
    {
        var blocks = new List<(int, string)>();
        for (int i = 0; i < lines.Length; i++)
        {
            if (lines[i].Trim() != open) continue;
            int start = i + 1, end = start;
            while (end < lines.Length && lines[end].Trim() != close) end++;
            blocks.Add((start + 1, string.Join('\n', lines[start..end].Select(clean))));
            i = end;
        }
        return blocks;
    }

    /// <summary>A <c>using</c> directive on a line of its own, perhaps with a comment after it (not <c>using var</c> nor a
    /// <c>using (...)</c> statement).</summary>
    [GeneratedRegex(@"^(?<directive>using\s+(static\s+)?[A-Za-z_][\w.]*\s*;)[ \t]*(//.*)?$", RegexOptions.Multiline)]
    private static partial Regex UsingDirective();
}
