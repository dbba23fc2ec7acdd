import CaptureVerifier
import Foundation
import IstioCapture
import NetfilterModel
import RuleReaders
import Testing
import TestSupport

/// Issue 4: a capture bundle verifies offline exactly as the live namespace it was captured from, for every
/// corpus case (legacy x_tables, with TPROXY policy routing where the case needs it).
@Suite("Bundle corpus conformance")
struct BundleConformanceTests {
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), arguments: Corpus.cases)
    func bundleVerifiesAsTheLiveNamespace(_ corpusCase: CorpusCase) throws {
        let config = try corpusCase.configuration()
        let ns = try TestNamespace()
        try ns.mustRun(["ip", "link", "set", "lo", "up"])
        try LiveConformanceTests.load(.init(corpusCase: corpusCase, backend: .legacy), into: ns, config: config)

        let live = try LiveRulesetReader(backend: .auto, namespacePath: ns.path).read(ReadRequest())
        let bundle = try CaptureBundle.capture(from: .live(backend: .auto, namespacePath: ns.path, pid: nil), toolVersion: "test")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("iptaudit-bundle-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        try bundle.write(to: file)
        let offline = try BundleRulesetReader(path: file).read(ReadRequest())

        #expect(offline == live, "\(corpusCase.testDescription): the bundle reads back other tables than the namespace holds")
        if config.interceptionMode == .tproxy { #expect(offline.policyRouting?.routes.contains { $0.type == "local" } == true) }
        let options = VerifierOptions(groupIDs: Corpus.groups)
        let expected = verify(live, configuration: config, options: options)
        let actual = verify(offline, configuration: config, options: options)
        #expect(actual == expected, "\(corpusCase.testDescription):\nlive:\n\(describe(expected.findings))\nbundle:\n\(describe(actual.findings))")
    }
}
