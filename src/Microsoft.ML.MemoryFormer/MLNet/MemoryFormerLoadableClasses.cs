using Microsoft.ML;
using Microsoft.ML.MemoryFormer.MLNet;

// ML.NET's own way to find a loader: when mlContext.Model.Load meets a MemoryFormer transformer, it registers the
// assembly named in the model header (this one) with that context's ComponentCatalog, which reads these attributes.
// So any MLContext, in any process or host, loads MemoryFormer models with no registration call. The attribute and
// SignatureLoadModel are internal to Microsoft.ML.Core: the library compiles against a copy where they are public
// (build/LoaderAttributes.targets) and the runtime reads them because of IgnoresAccessChecksTo below.
// Every IModelLoadable type of this assembly needs a line here (MemoryFormerRegistrationTests checks it).
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.Core")]
// Microsoft.ML.Data's ISingleFeaturePredictionTransformer, by which PermutationFeatureImportance finds a chain's predictor
// (implemented by MemoryFormerTabularTransformer), and the ONNX converter's IDataTransform and ITransformCanSaveOnnx
// (implemented by BatchScoringDataView); public in the compile-time copy, build/LoaderAttributes.targets.
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.Data")]
[assembly: LoadableClass(typeof(MemoryFormerLanguageModelTransformer), typeof(ModelLoader<MemoryFormerLanguageModelTransformer>), null,
    typeof(SignatureLoadModel), "MemoryFormer language model", "MemoryFormerLM")]
[assembly: LoadableClass(typeof(MemoryFormerTextClassificationTransformer), typeof(ModelLoader<MemoryFormerTextClassificationTransformer>), null,
    typeof(SignatureLoadModel), "MemoryFormer text classifier", "MFTextClassifier")]
[assembly: LoadableClass(typeof(MemoryFormerTabularTransformer), typeof(ModelLoader<MemoryFormerTabularTransformer>), null,
    typeof(SignatureLoadModel), "MemoryFormer tabular", "MemoryFormerTabular")]
