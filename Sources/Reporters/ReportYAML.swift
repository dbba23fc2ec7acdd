import IstioCapture

/// `-o yaml`: the JSON document of the same run, as YAML. One document model (the JSON encoders) serves both,
/// so the two cannot disagree; libyaml composes the JSON (a YAML flow document) and writes it in block style.
public enum ReportYAML {
    public static func fromJSON(_ json: String) throws(YAMLError) -> String {
        // Our own JSON: no limit on its size (a 110k-rule `show` is millions of nodes), only on nesting.
        try YAMLEmitter.emit(YAMLComposer(maxDepth: 256, maxNodes: .max).composeAll(json))
    }
}
