import CaptureVerifier
import NetfilterModel

/// `iptaudit trace` for people: each outcome the packet allows, the condition that leads to it, every table
/// and chain entered and every rule evaluated with matched / not matched and why, and where it ends up.
public enum TraceText {
    public static func render(_ result: PacketTraceResult, source: String, style: VerificationText.Style = .init(color: false)) -> String {
        var out: [String] = []
        let q = result.query
        out.append(style.bold("iptaudit trace") + " — \(TraceText.describe(q)) — \(source)")
        // The hooks each outcome really passes (a packet out eth0 never comes back in on lo), not every hook the
        // query could reach.
        var walks: [(String, [Int])] = []
        for (i, o) in result.outcomes.enumerated() {
            let walk = o.steps.compactMap { s -> String? in
                switch s.kind {
                case .enter, .skipped: "\(s.table) \(s.chain)"
                case .loopback: "lo"
                default: nil
                }
            }.joined(separator: " → ")
            if let k = walks.firstIndex(where: { $0.0 == walk }) { walks[k].1.append(i + 1) } else { walks.append((walk, [i + 1])) }
        }
        if walks.count > 1 {
            out.append("  paths: " + walks.map { "\($0.0) (outcome\($0.1.count == 1 ? "" : "s") \($0.1.map(String.init).joined(separator: ", ")))" }
                .joined(separator: "; "))
        } else {
            out.append("  path: \(walks.first?.0 ?? result.pipeline.description)")
        }
        for a in result.assumedOrders { out.append("  assumed: \(a)") }
        let unknown = TraceText.unknownFields(q)
        if !unknown.isEmpty { out.append("  unknown: \(unknown.joined(separator: ", ")) — every outcome they allow is shown") }
        out.append("")
        guard !result.outcomes.isEmpty else {
            out.append("No packet matches this description (the given fields contradict each other).")
            return out.joined(separator: "\n") + "\n"
        }
        if result.outcomes.count > 1 {
            out.append(style.bold("\(result.outcomes.count) outcomes:"))
            for (i, o) in result.outcomes.enumerated() {
                out.append("  \(i + 1). \(o.conditionText) → \(headline(o))")
            }
            out.append("")
        }
        for (i, o) in result.outcomes.enumerated() {
            if result.outcomes.count > 1 {
                out.append(style.bold("Outcome \(i + 1)") + " — \(o.conditionText)")
            }
            out.append("  packet: \(o.packet)")
            var lastChain: (TableName, ChainName)?
            for s in o.steps {
                switch s.kind {
                case .enter:
                    out.append("  \(style.bold("\(s.table) \(s.chain)"))")
                    lastChain = (s.table, s.chain)
                case .skipped:
                    out.append("  \(s.table) \(s.chain): skipped — \(s.reason ?? "")")
                case .loopback:
                    out.append("  ↺ \(s.reason ?? "received on lo")")
                case .policy:
                    out.append("    → \(s.action ?? "policy") (\(s.table) \(s.chain))")
                case .fallOff:
                    out.append("    ← end of \(s.chain), back to the caller")
                case .matched, .notMatched:
                    if let last = lastChain, last != (s.table, s.chain) {
                        out.append("   \(s.table) \(s.chain)")
                    }
                    lastChain = (s.table, s.chain)
                    let number = s.ruleNumber.map { "#\($0)" } ?? ""
                    let text = s.ruleText ?? ""
                    if s.kind == .matched {
                        let reason = TraceWording.reason(s) ?? ""
                        let why = reason.isEmpty ? "" : " (\(reason))"
                        out.append("    \(style.paint("✓", "1;32")) \(number) \(text)")
                        out.append("        matched\(why) → \(s.action ?? "")")
                    } else {
                        out.append("    ✗ \(number) \(text)")
                        out.append("        not matched: \(TraceWording.reason(s) ?? "")")
                    }
                }
            }
            for a in o.assumptions { out.append("  assumption: \(a)") }
            out.append("  verdict: \(o.verdict)")
            out.append("  " + style.bold("ends up: ") + o.disposition.summary)
            out.append("")
        }
        return out.joined(separator: "\n")
    }

    static func headline(_ o: TracedOutcome) -> String {
        let d = o.disposition
        let action = d.action + (d.port.map { " \($0)" } ?? "")
        return "\(action): \(d.summary)"
    }

    /// `TCP out to 10.0.0.1:9080 (uid 1000)`.
    public static func describe(_ q: PacketQuery) -> String {
        let proto = SaveSyntax.protocolName(q.protocolNumber).uppercased()
        func endpoint(_ a: IPAddress, _ port: UInt16?) -> String {
            guard let port else { return a.description }
            return q.family == .ipv6 ? "[\(a)]:\(port)" : "\(a):\(port)"
        }
        var s = "\(proto) \(q.direction == .outbound ? "out" : "in") to \(endpoint(q.destination, q.destinationPort))"
        if let src = q.source { s += " from \(endpoint(src, q.sourcePort))" } else if let sp = q.sourcePort { s += " from port \(sp)" }
        var extra: [String] = []
        if let u = q.uid { extra.append("uid \(u)") }
        if let g = q.gid { extra.append("gid \(g)") }
        if let i = q.inInterface { extra.append("in \(i)") }
        if let o = q.outInterface { extra.append("out \(o)") }
        if q.mark != 0 { extra.append("mark 0x" + String(q.mark, radix: 16)) }
        if q.connmark != 0 { extra.append("connmark 0x" + String(q.connmark, radix: 16)) }
        if q.state != .new { extra.append(q.state.rawValue) }
        if !extra.isEmpty { s += " (" + extra.joined(separator: ", ") + ")" }
        return s
    }

    static func unknownFields(_ q: PacketQuery) -> [String] {
        let given = q.givenFields
        var out: [String] = []
        if q.direction == .outbound {
            if !given.contains(.uid) { out.append("uid") }
            if !given.contains(.gid) { out.append("gid") }
            if !given.contains(.outInterface) { out.append("output interface (not lo)") }
        } else if !given.contains(.inInterface) {
            out.append("input interface (not lo)")
        }
        if !given.contains(.source) { out.append("source") }
        if !given.contains(.sourcePort) { out.append("sport") }
        if !given.contains(.destinationPort) { out.append("dport") }
        return out
    }
}

/// `iptaudit trace --format json`: a private schema with explicit keys. `verdict` and `steps` describe the
/// first (or only) outcome; `outcomes` lists every one with its condition.
public enum TraceJSON {
    public static let schemaVersion = 1

    public static func render(_ result: PacketTraceResult, source: String) -> String {
        RulesetJSON.encode(Document(result, source: source))
    }

    struct Document: Encodable {
        var schemaVersion = TraceJSON.schemaVersion
        var source: String
        var query: QueryDoc
        var pipeline: [String]
        var unknown: [String]
        /// The order assumed for base chains of one hook and priority (`PacketTraceResult.assumedOrders`); absent
        /// when there is no such tie on the walk.
        var assumed: [AssumedOrder]?
        var verdict: VerdictDoc?
        var steps: [StepDoc]
        var outcomes: [OutcomeDoc]

        init(_ r: PacketTraceResult, source: String) {
            self.source = source
            query = QueryDoc(r.query)
            pipeline = r.pipeline.stages.map { Pipeline([$0]).description }
            unknown = TraceText.unknownFields(r.query)
            assumed = r.assumedOrders.isEmpty ? nil : r.assumedOrders
            outcomes = r.outcomes.map(OutcomeDoc.init)
            verdict = outcomes.first?.verdict
            steps = outcomes.first?.steps ?? []
        }
    }

    struct QueryDoc: Encodable {
        var direction: String
        var family: String
        var `protocol`: String
        var destination: String
        var destinationPort: UInt16?
        var source: String?
        var sourcePort: UInt16?
        var uid: UInt32?
        var gid: UInt32?
        var inInterface: String?
        var outInterface: String?
        var mark: UInt32
        var connmark: UInt32
        var ctstate: String

        init(_ q: PacketQuery) {
            direction = q.direction.rawValue
            family = q.family.rawValue
            `protocol` = SaveSyntax.protocolName(q.protocolNumber)
            destination = q.destination.description
            destinationPort = q.destinationPort
            source = q.source?.description
            sourcePort = q.sourcePort
            uid = q.uid
            gid = q.gid
            inInterface = q.inInterface
            outInterface = q.outInterface
            mark = q.mark
            connmark = q.connmark
            ctstate = q.state.rawValue
        }
    }

    struct VerdictDoc: Encodable {
        /// REDIRECT, TPROXY, DNAT, DROP, ACCEPT (left untouched), …
        var action: String
        var port: UInt16?
        /// As iptaudit prints the verdict: `REDIRECT --to-ports 15001`, `policy ACCEPT`.
        var target: String
        var summary: String
    }

    struct CheckDoc: Encodable {
        var condition: String
        /// null: not evaluated (the outcome's assumption decided).
        var holds: Bool?
        var reason: String
    }

    struct StepDoc: Encodable {
        var kind: String
        var table: String
        var chain: String
        var rule: Int?
        var ruleText: String?
        var matched: Bool?
        var action: String?
        var reason: String?
        var checks: [CheckDoc]?

        init(_ s: ExplainedStep) {
            kind = s.kind.rawValue
            table = s.table.rawValue
            chain = s.chain.rawValue
            rule = s.ruleNumber
            ruleText = s.ruleText
            switch s.kind {
            case .matched: matched = true
            case .notMatched: matched = false
            default: matched = nil
            }
            action = s.action
            reason = TraceWording.reason(s)
            checks = s.checks.isEmpty ? nil : s.checks.map { CheckDoc(condition: $0.condition, holds: $0.holds, reason: TraceWording.reason($0)) }
        }
    }

    struct OutcomeDoc: Encodable {
        var condition: [String]
        var conditionText: String
        var packet: String
        var verdict: VerdictDoc
        var path: [String]
        var steps: [StepDoc]
        var assumptions: [String]

        init(_ o: TracedOutcome) {
            condition = o.condition
            conditionText = o.conditionText
            packet = o.packet.description
            verdict = VerdictDoc(action: o.disposition.action, port: o.disposition.port, target: o.verdict.description,
                                 summary: o.disposition.summary)
            path = o.path.map(\.description)
            steps = o.steps.map(StepDoc.init)
            assumptions = o.assumptions.map(\.description)
        }
    }
}
