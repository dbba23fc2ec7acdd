import CaptureVerifier
import IstioCapture
import NetfilterModel
import Testing

/// One declared example of one obligation.
struct DeclaredExample: CustomTestStringConvertible, Sendable {
    var obligation: ObligationID
    var example: ObligationExample
    var testDescription: String { "\(obligation): \(example.name)" }

    static let all: [DeclaredExample] = obligationDescriptions.flatMap { d in
        d.examples.map { DeclaredExample(obligation: d.id, example: $0) }
    }
}

/// Runs the passing and failing examples each obligation declares next to its check.
@Suite("Declared obligation examples")
struct ObligationExampleTests {
    @Test("example behaves as declared", arguments: DeclaredExample.all)
    func example(_ e: DeclaredExample) throws {
        let rules = try ruleset(ipv4: e.example.ipv4, ipv6: e.example.ipv6)
        let report = verify(rules, configuration: e.example.configuration)
        let result = try #require(report.result(e.obligation))
        switch e.example.expectation {
        case .passes:
            #expect(result.status == .passed, "\(e.testDescription):\n\(describe(result.findings))")
            let serious = result.findings.filter { $0.severity >= .warning }
            #expect(serious.count == 0, "\(e.testDescription):\n\(describe(serious))")
        case .fails(let kind, let severity):
            let hits = result.findings.filter { $0.kind == kind && $0.severity == severity }
            #expect(!hits.isEmpty, "\(e.testDescription) expected \(severity) \(kind), got:\n\(describe(result.findings))")
            #expect(result.status == (severity == .error ? .failed : .passed))
        }
        expectWitnessesReplay(report, rules)
    }

    @Test("every obligation declares a passing and a failing example, and ids are unique")
    func everyObligationHasExamples() {
        let descriptions = obligationDescriptions
        #expect(Set(descriptions.map(\.id)).count == descriptions.count)
        for d in descriptions where d.id != "one-backend" {
            #expect(d.examples.contains { $0.expectation == .passes }, "\(d.id) has no passing example")
            #expect(d.examples.contains { $0.expectation != .passes }, "\(d.id) has no failing example")
        }
        // Every failing example's kind is one the obligation declares it reports.
        for d in descriptions {
            for e in d.examples {
                if case .fails(let kind, _) = e.expectation { #expect(d.kinds.contains(kind), "\(d.id): \(e.name) expects \(kind)") }
            }
        }
    }

    @Test("the passing base rule sets are clean as a whole")
    func baseRuleSetsAreClean() throws {
        for config in [ExampleRules.pod, ExampleRules.dnsPod, ExampleRules.tproxyPod, ExampleRules.dualStackPod] {
            let rules = try ruleset(ipv4: ExampleRules.save(config), ipv6: config.ipv6Enabled ? ExampleRules.save(config, family: .ipv6) : nil)
            let report = verify(rules, configuration: config)
            let errors = report.errors
            #expect(errors.count == 0, "\(describe(errors))")
            #expect(report.findings(ofKind: .ruleDrift).isEmpty)
        }
    }
}
