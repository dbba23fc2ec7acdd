import CaptureVerifier
import NetfilterModel

/// `verify --format json`: a private, explicit schema (docs/json-schema.md) with a `schemaVersion`,
/// so the report's shape does not change when the internal types do.
public enum VerificationJSON {
    public static let schemaVersion = 1

    public static func render(_ report: VerificationReport, ruleset: Ruleset, source: String) -> String {
        RulesetJSON.encode(Document(report, ruleset: ruleset, source: source))
    }

    /// `observe --format json`: the same document, with `connections` and `samples` added (the rules' fields
    /// empty where the rules were not readable).
    public static func render(_ report: ObservationReport, ruleset: Ruleset?, source: String) -> String {
        var document = Document(report.verification, ruleset: ruleset ?? Ruleset(tables: []), source: source)
        document.connections = report.connections.map(ConnectionDoc.init)
        document.samples = report.samples
        return RulesetJSON.encode(document)
    }

    struct Document: Encodable {
        var schemaVersion = VerificationJSON.schemaVersion
        var ok: Bool
        var source: String
        var backends: [String: String]
        var configuration: [String]
        var families: [String]
        var summary: Summary
        var findings: [FindingDoc]
        var obligations: [ObligationDoc]
        var proven: [String]
        var assumptions: [String]
        /// `observe` only.
        var connections: [ConnectionDoc]?
        var samples: Int?
        var walks: [WalkDoc]

        init(_ r: VerificationReport, ruleset: Ruleset, source: String) {
            ok = r.ok
            self.source = source
            backends = Dictionary(uniqueKeysWithValues: ruleset.backends.map { ($0.key.rawValue, $0.value.rawValue) })
            configuration = r.configuration
            families = r.families.map(\.rawValue)
            summary = Summary(
                errors: r.findings.filter { $0.severity == .error }.count,
                warnings: r.findings.filter { $0.severity == .warning }.count,
                info: r.findings.filter { $0.severity == .info }.count,
                obligationsPassed: r.obligations.filter { $0.status == .passed }.count,
                obligationsFailed: r.obligations.filter { $0.status == .failed }.count,
                obligationsNotApplicable: r.obligations.filter { $0.status == .notApplicable }.count)
            findings = r.findings.map(FindingDoc.init)
            obligations = r.obligations.map(ObligationDoc.init)
            proven = r.proven
            assumptions = r.assumptions
            walks = r.walks.map(WalkDoc.init)
        }
    }

    /// One walk of the text report: the packet, each rule it took (as iptables-save, or nft, prints it), where
    /// the proxy's own packet parts from it, and the verdict.
    struct WalkDoc: Encodable {
        var family: String
        var direction: String
        var packet: PacketDoc
        var hops: [HopDoc]
        var verdict: String
        /// The hook chain whose policy decided, when no rule did.
        var policyOf: String?
        var disposition: String
        init(_ w: CaptureWalk) {
            family = w.family.rawValue
            direction = w.direction.rawValue
            packet = PacketDoc(w.packet)
            hops = w.hops.map { HopDoc($0, family: w.family) }
            verdict = w.verdict.description
            policyOf = w.end.map { "\($0.table) \($0.chain)" }
            disposition = w.disposition.summary
        }
    }

    struct HopDoc: Encodable {
        var table: String
        var chain: String
        var ruleNumber: Int
        var ruleText: String
        var taken: Bool
        var exempt: ExemptDoc?
        init(_ h: CaptureWalk.Hop, family: Family) {
            table = h.table.rawValue
            chain = h.chain.rawValue
            ruleNumber = h.ruleNumber
            ruleText = h.rule.native?.text ?? SaveSyntax.render(h.rule, in: h.chain, family: family)
            taken = h.taken
            exempt = h.exempt.map { ExemptDoc(who: $0.who, action: $0.parts ? $0.action : nil, parts: $0.parts) }
        }
    }

    struct ExemptDoc: Encodable {
        var who: String
        var action: String?
        var parts: Bool
    }

    struct Summary: Encodable {
        var errors: Int
        var warnings: Int
        var info: Int
        var obligationsPassed: Int
        var obligationsFailed: Int
        var obligationsNotApplicable: Int
    }

    struct FindingDoc: Encodable {
        var kind: String
        var severity: String
        var family: String
        var table: String?
        var chain: String?
        var ruleNumber: Int?
        var ruleText: String?
        var ruleHandle: UInt64?
        var witness: WitnessDoc?
        var path: [String]
        var message: String
        var fix: String?
        var obligation: String
        /// Where the rule was read from (`--input` text): file and 1-based line.
        var file: String?
        var line: Int?
        /// The kind's section of the docs, relative to the repository root.
        var documentation: String
        init(_ f: Finding) {
            kind = f.kind.rawValue
            severity = f.severity.rawValue
            family = f.family.rawValue
            table = f.table?.rawValue
            chain = f.chain?.rawValue
            ruleNumber = f.ruleNumber
            ruleText = f.ruleText
            ruleHandle = f.ruleHandle
            witness = f.witness.map(WitnessDoc.init)
            path = f.path.map(\.description)
            message = f.message
            fix = f.fix
            obligation = f.obligation.rawValue
            file = f.ruleOrigin?.file
            line = f.ruleOrigin?.line
            documentation = f.kind.documentation
        }
    }

    struct WitnessDoc: Encodable {
        var text: String
        var verdict: String
        var packet: PacketDoc
        init(_ w: Witness) {
            text = w.text
            verdict = w.verdict.description
            packet = PacketDoc(w.packet)
        }
    }

    struct PacketDoc: Encodable {
        var family: String
        var `protocol`: String
        var source: String
        var destination: String
        var sourcePort: Int
        var destinationPort: Int
        var inInterface: String?
        var outInterface: String?
        var uid: UInt32?
        var gid: UInt32?
        var mark: String
        init(_ p: Packet) {
            family = p.family.rawValue
            self.protocol = SaveSyntax.protocolName(p.protocolNumber)
            source = p.source.description
            destination = p.destination.description
            sourcePort = Int(p.sourcePort)
            destinationPort = Int(p.destinationPort)
            inInterface = p.inInterface
            outInterface = p.outInterface
            uid = p.uid
            gid = p.gid
            mark = "0x" + String(p.mark, radix: 16)
        }
    }

    struct SocketDoc: Encodable {
        var local: String
        var remote: String
        var uid: UInt32
        init(_ s: ObservedSocket) {
            local = s.local.description
            remote = s.remote.description
            uid = s.uid
        }
    }

    struct FateDoc: Encodable {
        var action: String
        var port: UInt16?
        var summary: String
        var toProxy: Bool
        var path: [String]
        init(_ f: RuleFate) {
            action = f.disposition.action
            port = f.disposition.port
            summary = f.disposition.summary
            toProxy = f.toProxy
            path = f.path.map(\.description)
        }
    }

    struct ConnectionDoc: Encodable {
        var direction: String
        var `protocol`: String
        var family: String
        var socket: SocketDoc
        var proxySocket: SocketDoc?
        var evidence: String
        var classification: String
        var packet: PacketDoc
        var expected: FateDoc?
        var live: FateDoc?
        init(_ c: ObservedConnection) {
            direction = c.direction.rawValue
            self.protocol = c.socket.transport.rawValue
            family = c.socket.family.rawValue
            socket = SocketDoc(c.socket)
            proxySocket = c.proxySocket.map(SocketDoc.init)
            evidence = c.evidence.rawValue
            classification = c.classification.rawValue
            packet = PacketDoc(c.packet)
            expected = c.expected.map(FateDoc.init)
            live = c.live.map(FateDoc.init)
        }
    }

    struct ObligationDoc: Encodable {
        var id: String
        var title: String
        var invariant: Int
        var status: String
        var findings: Int
        var proven: [String]
        var notes: [String]
        var assuming: [String]
        init(_ o: ObligationResult) {
            id = o.id.rawValue
            title = o.title
            invariant = o.invariant
            status = o.status.rawValue
            findings = o.findings.count
            proven = o.proven
            notes = o.notes
            assuming = o.assuming
        }
    }
}
