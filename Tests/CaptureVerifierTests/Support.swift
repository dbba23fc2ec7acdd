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

/// Outcomes keyed by everything but their packets, with the packets of equal keys joined: two walks of the same
/// packets compared as sets, whatever boxes each cut them into.
func groupedOutcomes(_ outcomes: [Outcome]) -> [String: PacketSet] {
    var byKey: [String: PacketSet] = [:]
    for o in outcomes {
        let key = "\(o.verdict)|\(o.path.map(\.description))|\(String(describing: o.ctZone))|\(o.assumptions.map(\.description))"
        byKey[key, default: PacketSet()].boxes += o.packets.boxes
    }
    return byKey
}

/// Two walks gave the same paths, verdicts and assumptions, each with the same packets.
func expectSameOutcomes(_ first: [Outcome], _ second: [Outcome], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let a = groupedOutcomes(first), b = groupedOutcomes(second)
    #expect(Set(a.keys) == Set(b.keys), "\(what): the same paths, verdicts and assumptions", sourceLocation: sourceLocation)
    for (key, set) in a {
        guard let other = b[key] else { continue }
        #expect(set.subtracting(other).isEmpty && other.subtracting(set).isEmpty, "\(what): \(key)", sourceLocation: sourceLocation)
    }
}

/// Locally generated packets (no input interface, no marks), the same received from outside, and every packet,
/// each with the pipeline it is walked through.
func walkInputs(_ space: PacketSpace) -> [(PacketBox, Pipeline)] {
    var local = space.universe
    local[.inInterface] = space.noInterface(.inInterface)
    local[.mark] = space.atoms(.mark, marks: { $0 == 0 })
    local[.connmark] = space.atoms(.connmark, marks: { $0 == 0 })
    var inbound = local
    inbound[.inInterface] = space.noInterface(.inInterface).complement
    inbound[.outInterface] = space.noInterface(.outInterface)
    return [(local, .localOutput), (inbound, .inbound), (space.universe, .single(.nat, .output))]
}

/// A rule set's tables by family, for the families it has.
func tablesByFamily(_ ruleset: Ruleset) -> [(family: Family, tables: [Table])] {
    [Family.ipv4, .ipv6].compactMap { family in
        let tables = ruleset.tables.filter { $0.family == family }
        return tables.isEmpty ? nil : (family, tables)
    }
}
