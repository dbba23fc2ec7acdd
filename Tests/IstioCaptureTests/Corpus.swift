import CorpusSupport
import IstioCapture

/// This target tests the product's parsers, so its corpus configurations come through text
/// (flags as one command line, CNI pods as manifest YAML); the loader itself lives in CorpusSupport.
extension Corpus {
    static func configuration(_ c: CorpusCase) throws -> CaptureConfiguration { try c.configurationThroughText() }

    /// `ExpectedRules` takes the corpus' groups as a resolver.
    static var groups: ExpectedRules.GroupResolver { groupResolver }
}
