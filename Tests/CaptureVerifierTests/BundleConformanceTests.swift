import CaptureVerifier
import CorpusSupport
import Foundation
import IstioCapture
import NetfilterModel
import RuleReaders
import Testing
import TestSupport

/// Issue 4: a capture bundle verifies offline exactly as the live namespace it was captured from, for every
/// corpus case loaded into legacy x_tables and into nf_tables (with TPROXY policy routing where the case needs it).
@Suite("Bundle corpus conformance")
struct BundleConformanceTests {
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), arguments: LiveConformanceTests.loads)
    func bundleVerifiesAsTheLiveNamespace(_ load: LiveConformanceTests.Load) throws {
        let corpusCase = load.corpusCase
        let config = try corpusCase.configuration()
        let ns = try TestNamespace()
        try ns.mustRun(["ip", "link", "set", "lo", "up"])
        try LiveConformanceTests.load(load, into: ns, config: config)

        let live = try LiveRulesetReader(backend: .auto, namespacePath: ns.path).read(ReadRequest())
        let bundle = try CaptureBundle.capture(from: .live(backend: .auto, namespacePath: ns.path, pid: nil), toolVersion: "test")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("iptaudit-bundle-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        try bundle.write(to: file)
        let offline = try BundleRulesetReader(path: file).read(ReadRequest())

        let loaded: Backend = load.backend == .legacy ? .legacy : .nft
        #expect(bundle.rules.contains { $0.backend == loaded && $0.family == .ipv4 && !$0.tables.isEmpty })
        #expect(differences(offline, live).isEmpty, "\(load.testDescription): the bundle reads back \(differences(offline, live))")
        if config.interceptionMode == .tproxy { #expect(offline.policyRouting?.routes.contains { $0.type == "local" } == true) }
        let options = VerifierOptions(groupIDs: Corpus.groups)
        let expected = verify(live, configuration: config, options: options)
        let actual = verify(offline, configuration: config, options: options)
        #expect(actual == expected, "\(load.testDescription):\nlive:\n\(describe(expected.findings))\nbundle:\n\(describe(actual.findings))")
    }
}

/// What differs between two rulesets, in a few words (the values themselves are pages long).
private func differences(_ a: Ruleset, _ b: Ruleset) -> [String] {
    var out: [String] = []
    let tables = Set(a.tables.map { "\($0.family) \($0.name)" }).union(b.tables.map { "\($0.family) \($0.name)" })
    for t in tables.sorted() {
        let x = a.tables.first { "\($0.family) \($0.name)" == t }, y = b.tables.first { "\($0.family) \($0.name)" == t }
        if x != y { out.append("table \(t) differs") }
    }
    if a.tables.map(\.name) != b.tables.map(\.name) { out.append("tables in another order") }
    if a.backends != b.backends { out.append("backends \(a.backends) vs \(b.backends)") }
    if a.populatedBackends != b.populatedBackends { out.append("populated backends \(a.populatedBackends) vs \(b.populatedBackends)") }
    if a.policyRouting != b.policyRouting { out.append("policy routing differs") }
    return out
}
