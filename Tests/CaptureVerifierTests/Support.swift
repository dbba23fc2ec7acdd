@testable import CaptureVerifier
import CorpusSupport
import Foundation
import IstioCapture
import NetfilterModel
import RuleReaders
import TestSupport
import Testing

/// Parses iptables-save text of one family (empty text: no tables).
func tables(_ text: String, _ family: Family) throws -> [Table] { try Corpus.parse(save: text, family: family) }

func ruleset(ipv4: String, ipv6: String? = nil) throws -> Ruleset { try Corpus.ruleset(ipv4: ipv4, ipv6: ipv6) }

/// Replays every witness concretely: the tracer must take exactly the reported path to the reported verdict.
func expectWitnessesReplay(_ report: VerificationReport, _ ruleset: Ruleset, sourceLocation: SourceLocation = #_sourceLocation) {
    for f in report.obligations.flatMap(\.findings) {
        guard let w = f.witness else { continue }
        let tracer = ConcreteEvaluator(family: f.family, tables: ruleset.tables)
        let trace = tracer.trace(w.packet, pipeline: w.pipeline, assumptions: w.assumptions)
        #expect(trace.path == f.path, "witness of \(f.kind) (\(w.text)) takes another path:\n\(trace.path.map(\.description).joined(separator: "\n"))\nreported:\n\(f.path.map(\.description).joined(separator: "\n"))", sourceLocation: sourceLocation)
        #expect(trace.verdict == w.verdict, "witness of \(f.kind) ends at \(trace.verdict), reported \(w.verdict)", sourceLocation: sourceLocation)
        #expect(w.text == w.packet.description, sourceLocation: sourceLocation)
    }
}

func describe(_ findings: [Finding]) -> String {
    findings.map { "[\($0.severity) \($0.kind) \($0.family) \($0.obligation)] \($0.location): \($0.message)" }.joined(separator: "\n")
}

extension Corpus {
    /// `VerifierOptions` takes the corpus' groups as a table.
    static var groups: [String: UInt32] { groupIDs }
}
