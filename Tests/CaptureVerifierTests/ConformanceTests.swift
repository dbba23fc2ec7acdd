import CaptureVerifier
import IstioCapture
import NetfilterModel
import Testing

/// Every live dump of Istio's corpus, verified against the configuration that produced it, has no error:
/// what istio-iptables installs satisfies every obligation that applies to its version.
@Suite("Corpus conformance")
struct ConformanceTests {
    @Test("live dump verifies without errors", arguments: Corpus.cases)
    func liveDumpVerifies(_ c: CorpusCase) throws {
        let rules = try c.ruleset()
        let config = try c.configuration()
        let report = verify(rules, configuration: config, options: VerifierOptions(groupIDs: Corpus.groups))
        let errors = report.errors
        #expect(errors.count == 0, "\(c.testDescription):\n\(describe(errors))")
        #expect(report.ok == errors.isEmpty)
        expectWitnessesReplay(report, rules)
        // Nothing the configuration says differs from what istio-iptables installs.
        let drift = report.findings(ofKind: .ruleDrift)
        #expect(drift.count == 0, "\(c.testDescription):\n\(describe(drift))")
    }

    @Test("the corpus is all there")
    func corpusIsComplete() {
        // 4 full 1.10 runs, 27 + 28 + 28 sidecar cases in 1.14 / 1.26 / master with a dump, 9 CNI cases.
        #expect(Corpus.cases.filter { $0.ref == "1.10.6" }.count == 4)
        #expect(Corpus.cases.filter { $0.isCNI }.count == 9)
        #expect(Corpus.cases.count > 80)
    }
}
