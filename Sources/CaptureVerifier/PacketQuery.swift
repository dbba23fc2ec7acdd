import NetfilterModel

/// A packet as `iptaudit trace` was told about it: the fields the user gave are fixed, the others are
/// unknown and every value they can take is followed. The conntrack state, mark and connmark default to
/// what the first packet of a new connection carries (NEW, 0, 0): they are set, not unknown.
public struct PacketQuery: Hashable, Sendable {
    /// Locally generated (raw → mangle → nat OUTPUT, then back in on `lo` when routed there) or arriving
    /// from the network (raw → mangle → nat PREROUTING).
    public enum Direction: String, Hashable, Sendable, Codable {
        case outbound = "out", inbound = "in"
    }

    public var direction: Direction
    public var family: Family
    public var protocolNumber: UInt16
    public var destination: IPAddress
    public var destinationPort: UInt16?
    public var source: IPAddress?
    public var sourcePort: UInt16?
    /// Socket owner; only locally generated packets have one.
    public var uid: UInt32?
    public var gid: UInt32?
    /// Inbound only. Unknown: any interface but `lo`.
    public var inInterface: String?
    /// Outbound only. Unknown: `lo` for a loopback destination (the kernel routes it there), else any other.
    public var outInterface: String?
    public var mark: UInt32
    public var connmark: UInt32
    public var state: ConntrackState

    public init(direction: Direction, family: Family, protocolNumber: UInt16, destination: IPAddress,
                destinationPort: UInt16? = nil, source: IPAddress? = nil, sourcePort: UInt16? = nil,
                uid: UInt32? = nil, gid: UInt32? = nil, inInterface: String? = nil, outInterface: String? = nil,
                mark: UInt32 = 0, connmark: UInt32 = 0, state: ConntrackState = .new) {
        self.direction = direction
        self.family = family
        self.protocolNumber = protocolNumber
        self.destination = destination
        self.destinationPort = destinationPort
        self.source = source
        self.sourcePort = sourcePort
        self.uid = uid
        self.gid = gid
        self.inInterface = inInterface
        self.outInterface = outInterface
        self.mark = mark
        self.connmark = connmark
        self.state = state
    }

    /// Every field fixed to the packet's values (a witness replayed). Outbound when the packet has an owner
    /// or no input interface.
    public init(packet p: Packet) {
        let outbound = p.uid != nil || p.gid != nil || p.inInterface == nil
        self.init(direction: outbound ? .outbound : .inbound, family: p.family, protocolNumber: p.protocolNumber,
                  destination: p.destination, destinationPort: p.destinationPort, source: p.source,
                  sourcePort: p.sourcePort, uid: p.uid, gid: p.gid,
                  inInterface: outbound ? nil : p.inInterface, outInterface: outbound ? p.outInterface : nil,
                  mark: p.mark, connmark: p.connmark, state: p.state)
        if outbound, p.outInterface == nil { unroutedOutput = true }
    }

    /// A locally generated packet with no output interface (only a replayed witness can be one).
    var unroutedOutput = false

    /// The tables this packet meets, as the kernel orders them.
    public var pipeline: Pipeline { direction == .outbound ? .localOutputThenLoopback : .inbound }

    var hasPorts: Bool { [6, 17, 33, 132, 136].contains(protocolNumber) }

    /// Loopback destinations are routed over `lo`.
    var loopbackDestination: Bool {
        family == .ipv4 ? destination.value >> 24 == 127 : destination.value == 1
    }

    /// Fields the user fixed (state, mark and connmark always are).
    public var givenFields: Set<PacketField> {
        var s: Set<PacketField> = [.l4Protocol, .destination, .mark, .connmark, .ctState]
        if destinationPort != nil || !hasPorts { s.insert(.destinationPort) }
        if source != nil { s.insert(.source) }
        if sourcePort != nil || !hasPorts { s.insert(.sourcePort) }
        if direction == .outbound {
            s.insert(.inInterface)
            if outInterface != nil || loopbackDestination || unroutedOutput { s.insert(.outInterface) }
            if uid != nil { s.insert(.uid) }
            if gid != nil { s.insert(.gid) }
        } else {
            s.formUnion([.outInterface, .uid, .gid])
            if inInterface != nil { s.insert(.inInterface) }
        }
        return s
    }
}

/// One condition of a rule checked against the traced packet.
public struct ConditionCheck: Hashable, Sendable, Codable {
    /// The condition as iptables-save spells it, e.g. `--dport 15008`.
    public var condition: String
    /// nil: iptaudit cannot evaluate it; the outcome's assumption decided.
    public var holds: Bool?
    /// Why, with the packet's value: `dport 9080 ≠ 15008`, `uid 1000 is not 1337`.
    public var reason: String
}

/// One line of a trace: a table entered, a rule evaluated (matched or not, and why), a chain left.
public struct ExplainedStep: Hashable, Sendable, Codable {
    public enum Kind: String, Hashable, Sendable, Codable {
        /// Entered a table at its hook chain.
        case enter
        /// A rule whose conditions held; `action` is what it did.
        case matched
        /// A rule whose conditions did not hold; `checks` say which failed.
        case notMatched
        /// Reached the end of a user chain: back to the caller.
        case fallOff
        /// The hook chain's policy decided.
        case policy
        /// Received back on `lo` (a locally generated packet routed to this host).
        case loopback
        /// A table the packet does not meet (nat after the first packet, or untracked).
        case skipped
    }
    public var kind: Kind
    public var table: TableName
    public var chain: ChainName
    public var ruleNumber: Int?
    /// The rule as iptables-save prints it.
    public var ruleText: String?
    /// What the step did: `-j ISTIO_OUTPUT`, `RETURN`, `REDIRECT --to-ports 15001`, `policy ACCEPT`.
    public var action: String?
    /// For rules: every condition and whether it held.
    public var checks: [ConditionCheck]
    /// A one-line why (the failing conditions for a rule that did not match).
    public var reason: String?
}

/// Where the connection ends up, in netfilter's terms and in plain words.
public struct Disposition: Hashable, Sendable, Codable {
    /// The netfilter outcome: REDIRECT, TPROXY, DNAT, SNAT, MASQUERADE, DROP, REJECT, QUEUE, ACCEPT (left
    /// untouched), LOOP, UNKNOWN (a target iptaudit does not decode).
    public var action: String
    /// The local port it is redirected to (REDIRECT, TPROXY, DNAT with a port).
    public var port: UInt16?
    /// "Envoy outbound listener 15001", "application port 8080 directly — bypasses the mesh", "dropped".
    public var summary: String

    public init(action: String, port: UInt16?, summary: String) {
        self.action = action
        self.port = port
        self.summary = summary
    }
}

/// One way the queried packet can go: the condition on the unknown fields that leads here, and the walk.
public struct TracedOutcome: Hashable, Sendable {
    /// Clauses that all hold for this outcome, e.g. ["uid is not 1337", "gid is not 1337"]; empty when the
    /// given fields decide alone. An outcome reached in several ways has one clause joining them with ", or".
    public var condition: [String]
    /// A packet that takes this path (the given fields, realistic values for the others).
    public var packet: Packet
    public var verdict: Verdict
    /// The same steps the evaluators report (comparable with a finding's path).
    public var path: [TraceStep]
    public var steps: [ExplainedStep]
    public var assumptions: [Assumption]
    public var disposition: Disposition

    /// "when uid is 1337", or "always".
    public var conditionText: String {
        condition.isEmpty ? "always" : "when " + condition.joined(separator: " and ")
    }
}

/// What `iptaudit trace` prints: the query and each outcome it allows.
public struct PacketTraceResult: Hashable, Sendable {
    public var query: PacketQuery
    public var pipeline: Pipeline
    public var outcomes: [TracedOutcome]
}

/// Follows a packet through one family's tables, rule by rule, as the kernel would, and says why each rule
/// did or did not match. Unknown fields are followed symbolically (every outcome they allow); each outcome is
/// then replayed with the concrete evaluator on a member packet to explain it.
public struct PacketTracer: Sendable {
    public let family: Family
    let tables: [Table]

    public init(family: Family, tables: [Table]) {
        self.family = family
        self.tables = tables.filter { $0.family == family }
    }

    /// Every outcome of a partially specified packet. `pipeline` overrides the query's (to replay a witness).
    public func trace(_ query: PacketQuery, pipeline: Pipeline? = nil) -> PacketTraceResult {
        let pipeline = pipeline ?? query.pipeline
        let space = PacketSpace(family: family, tables: tables, hints: hints(query))
        let set = PacketSet([box(query, space)])
        let symbolic = SymbolicEvaluator(space: space, tables: tables).evaluate(set, pipeline: pipeline)

        // One outcome per distinct walk (the evaluator may split one walk into several pieces).
        struct Key: Hashable { var path: [TraceStep]; var verdict: Verdict; var assumptions: [Assumption] }
        var merged: [Key: Outcome] = [:]
        var order: [Key] = []
        for o in symbolic {
            let k = Key(path: o.path, verdict: o.verdict, assumptions: o.assumptions)
            if var m = merged[k] {
                m.packets = PacketSet(m.packets.boxes + o.packets.boxes)
                merged[k] = m
            } else {
                merged[k] = o
                order.append(k)
            }
        }
        let given = query.givenFields
        let concrete = ConcreteEvaluator(family: family, tables: tables)
        var outcomes: [TracedOutcome] = []
        for k in order {
            guard let o = merged[k], let b = o.packets.boxes.first else { continue }
            var packet = space.representative(of: b)
            if query.direction == .inbound { packet.uid = nil; packet.gid = nil }
            if query.unroutedOutput { packet.outInterface = nil }
            let replay = concrete.trace(packet, pipeline: pipeline, assumptions: o.assumptions)
            var t = explain(replay, pipeline: pipeline, given: given, outcomeSet: o.packets, space: space)
            t.condition = conditionClauses(o.packets, query: set, given: given, space: space)
            // The symbolic walk is the authority on the path; the replay explains it (they agree by construction).
            t.path = o.path
            t.verdict = o.verdict
            t.assumptions = o.assumptions
            t.disposition = PacketTracer.disposition(o.verdict, packet: packet, direction: query.direction)
            if query.state != .new, o.verdict.continues, pipeline.stages.contains(where: { if case .table(.nat, _) = $0 { true } else { false } }) {
                // nat decided on the connection's first packet; this one just follows it.
                t.disposition.summary = "wherever its connection's first packet went: nat sees only that one (trace it with --ctstate NEW)"
            }
            outcomes.append(t)
        }
        // Outcomes that differ only in how a match iptaudit cannot evaluate was decided say so in their condition.
        let shared = outcomes.dropFirst().reduce(Set(outcomes.first?.assumptions ?? [])) { $0.intersection($1.assumptions) }
        for i in outcomes.indices {
            outcomes[i].condition += outcomes[i].assumptions.filter { !shared.contains($0) }.map { a in
                "\(a.table) \(a.position) (\(a.what.joined(separator: ", "))) \(a.matched ? "matches" : "does not match")"
            }
        }
        return PacketTraceResult(query: query, pipeline: pipeline, outcomes: outcomes)
    }

    /// One fully specified packet, concretely.
    public func trace(_ packet: Packet, pipeline: Pipeline, assumptions: [Assumption] = []) -> TracedOutcome {
        let replay = ConcreteEvaluator(family: family, tables: tables).trace(packet, pipeline: pipeline, assumptions: assumptions)
        var t = explain(replay, pipeline: pipeline, given: Set(PacketField.allCases), outcomeSet: nil, space: nil)
        t.disposition = PacketTracer.disposition(replay.verdict, packet: packet,
                                                 direction: packet.uid != nil || packet.inInterface == nil ? .outbound : .inbound)
        return t
    }

    // MARK: the packet set of a query

    func hints(_ q: PacketQuery) -> SpaceHints {
        var h = SpaceHints()
        let bits = family.addressBits
        h.addresses = [AddressMatch(address: q.destination, prefixLength: bits)]
        if let s = q.source { h.addresses.append(AddressMatch(address: s, prefixLength: bits)) }
        h.addresses += family == .ipv4 ? [AddressMatch("127.0.0.0/8")!] : [AddressMatch("::1/128")!]
        h.ports = [q.destinationPort, q.sourcePort, Packet.ephemeralPort].compactMap { $0 }
        h.ids = [q.uid, q.gid, 1000].compactMap { $0 }
        h.interfaces = [q.inInterface, q.outInterface, "lo", "eth0"].compactMap { $0 }
        h.marks = [q.mark, q.connmark]
        h.protocols = [q.protocolNumber]
        return h
    }

    func box(_ q: PacketQuery, _ space: PacketSpace) -> PacketBox {
        var b = space.universe
        func fix(_ f: PacketField, _ v: UInt128) { b[f] = space.atoms(f, values: [v]) }
        fix(.l4Protocol, UInt128(q.protocolNumber))
        fix(.destination, q.destination.value)
        if let p = q.destinationPort { fix(.destinationPort, UInt128(p)) } else if !q.hasPorts { fix(.destinationPort, 0) }
        if let p = q.sourcePort { fix(.sourcePort, UInt128(p)) } else if !q.hasPorts { fix(.sourcePort, 0) }
        b[.mark] = space.atoms(.mark, marks: { $0 == q.mark })
        b[.connmark] = space.atoms(.connmark, marks: { $0 == q.connmark })
        b[.ctState] = space.atoms(states: [q.state])
        let loopbackNet = family == .ipv4 ? AddressMatch("127.0.0.0/8")! : AddressMatch("::1/128")!
        let lo = space.atoms(.outInterface, interfaceNamed: "lo")
        switch q.direction {
        case .outbound:
            b[.inInterface] = space.noInterface(.inInterface)
            if let o = q.outInterface {
                b[.outInterface] = space.atoms(.outInterface, interfaceNamed: o)
            } else if q.unroutedOutput {
                b[.outInterface] = space.noInterface(.outInterface)
            } else if q.loopbackDestination {
                b[.outInterface] = lo
            } else {
                // Routed off the host: the pod's own addresses (routed over lo) need --oif lo.
                b[.outInterface] = space.full(.outInterface).subtracting(space.noInterface(.outInterface)).subtracting(lo)
            }
            if let u = q.uid { fix(.uid, UInt128(u)) }
            if let g = q.gid { fix(.gid, UInt128(g)) }
            if let s = q.source {
                fix(.source, s.value)
            } else if q.outInterface != nil && q.outInterface != "lo" || q.outInterface == nil && !q.loopbackDestination {
                // Off `lo` the kernel never picks a loopback source.
                b[.source] = space.atoms(.source, inside: [loopbackNet]).complement
            }
        case .inbound:
            b[.outInterface] = space.noInterface(.outInterface)
            if let i = q.inInterface {
                b[.inInterface] = space.atoms(.inInterface, interfaceNamed: i)
            } else {
                b[.inInterface] = space.full(.inInterface).subtracting(space.noInterface(.inInterface))
                    .subtracting(space.atoms(.inInterface, interfaceNamed: "lo"))
            }
            if let s = q.source {
                fix(.source, s.value)
            } else if q.inInterface != "lo" {
                // From the network: never a loopback source (the kernel drops such martians).
                b[.source] = space.atoms(.source, inside: [loopbackNet]).complement
            }
        }
        return b
    }

    // MARK: conditions

    /// The clauses on unknown fields that separate this outcome from the query's other packets.
    func conditionClauses(_ outcome: PacketSet, query: PacketSet, given: Set<PacketField>, space: PacketSpace) -> [String] {
        guard let all = query.boxes.first else { return [] }
        let boxes = outcome.compacted().boxes
        func clauses(_ b: PacketBox) -> [String] {
            PacketField.allCases.compactMap { f -> String? in
                guard !given.contains(f) else { return nil }
                let own = b.input(f)
                let everything = all[f]
                guard own != everything else { return nil }
                return describe(f, own, within: everything, space: space)
            }
        }
        if boxes.count == 1, let b = boxes.first { return clauses(b) }
        let alternatives = boxes.map { clauses($0).joined(separator: " and ") }.filter { !$0.isEmpty }
        guard !alternatives.isEmpty else { return [] }
        return [Array(Set(alternatives)).sorted().joined(separator: ", or ")]
    }

    /// "uid is 1337", "uid is not 1337", "output interface is lo", "source is in 127.0.0.6/32".
    func describe(_ f: PacketField, _ set: AtomSet, within all: AtomSet, space: PacketSpace) -> String {
        let name = PacketTracer.fieldName(f)
        let missing = all.subtracting(set)
        let (shown, negated) = set.count <= missing.count ? (set, false) : (missing, true)
        let values = shown.atoms.map { atomText(f, $0, space: space) }
        let list = values.count <= 4 ? values.joined(separator: ", ") : values.prefix(4).joined(separator: ", ") + ", …"
        if values.count == 1 { return "\(name) is \(negated ? "not " : "")\(list)" }
        return "\(name) is \(negated ? "not " : "")one of \(list)"
    }

    func atomText(_ f: PacketField, _ atom: Int, space: PacketSpace) -> String {
        switch f {
        case .inInterface, .outInterface:
            let n = space.name(f, atom) ?? "?"
            return n.isEmpty ? "none" : n
        case .mark, .connmark:
            return space.value(f, atom).map { "0x" + String($0, radix: 16) } ?? "?"
        case .ctState:
            return space.state(atom)?.rawValue ?? "?"
        case .l4Protocol:
            guard let r = space.interval(f, atom) else { return "?" }
            return r.lowerBound == r.upperBound ? SaveSyntax.protocolName(UInt16(r.lowerBound)) : "\(r.lowerBound)-\(r.upperBound)"
        case .source, .destination:
            guard let r = space.interval(f, atom) else { return "?" }
            return PacketTracer.cidrs(r, family: family).joined(separator: ", ")
        default:
            guard let r = space.interval(f, atom) else { return "?" }
            return r.lowerBound == r.upperBound ? "\(r.lowerBound)" : "\(r.lowerBound)-\(r.upperBound)"
        }
    }

    /// An address interval as the fewest CIDRs (at most 3 shown).
    static func cidrs(_ r: ClosedRange<UInt128>, family: Family) -> [String] {
        let bits = family.addressBits
        var out: [String] = []
        var lo = r.lowerBound
        while lo <= r.upperBound {
            var size = 0
            while size < bits {
                let next = size + 1
                let block: UInt128 = next >= 128 ? UInt128.max : (UInt128(1) << UInt128(next)) - 1
                if lo & block != 0 || lo + block > r.upperBound || lo + block < lo { break }
                size = next
            }
            let blockEnd: UInt128 = size >= 128 ? UInt128.max : lo + ((UInt128(1) << UInt128(size)) - 1)
            out.append("\(IPAddress(family: family, value: lo))/\(bits - size)")
            if out.count > 3 { return Array(out.prefix(3)) + ["…"] }
            if blockEnd == UInt128.max || blockEnd >= r.upperBound { break }
            lo = blockEnd + 1
        }
        return out
    }

    static func fieldName(_ f: PacketField) -> String {
        switch f {
        case .l4Protocol: "protocol"
        case .source: "source"
        case .destination: "destination"
        case .sourcePort: "sport"
        case .destinationPort: "dport"
        case .inInterface: "input interface"
        case .outInterface: "output interface"
        case .uid: "uid"
        case .gid: "gid"
        case .mark: "mark"
        case .connmark: "connmark"
        case .ctState: "ctstate"
        }
    }

    // MARK: where it ends up

    /// What a verdict means for the connection, in plain words (Istio's default ports named).
    public static func disposition(_ verdict: Verdict, packet: Packet, direction: PacketQuery.Direction) -> Disposition {
        func listener(_ port: UInt16) -> String {
            switch port {
            case 15001: "Envoy outbound listener 15001"
            case 15006: "Envoy inbound listener 15006"
            case 15053: "DNS proxy 15053"
            case 15008: "HBONE tunnel port 15008"
            default: "local port \(port)"
            }
        }
        let hasPorts = packet.hasPorts
        let dst = hasPorts ? (packet.family == .ipv6 ? "[\(packet.destination)]:\(packet.destinationPort)" : "\(packet.destination):\(packet.destinationPort)")
            : packet.destination.description
        let untouched = direction == .inbound
            ? (hasPorts ? "application port \(packet.destinationPort) directly — bypasses the mesh" : "the pod directly — bypasses the mesh")
            : "\(dst) directly — not through Envoy"
        switch verdict {
        case .accept, .policy(.accept):
            return Disposition(action: "ACCEPT", port: nil, summary: untouched)
        case .untracked:
            return Disposition(action: "ACCEPT", port: nil, summary: untouched + " (untracked: never NATed)")
        case .policy(let p):
            let action = p.rawValue
            return Disposition(action: action, port: nil, summary: action == "DROP" ? "dropped (chain policy)" : "policy \(action)")
        case .drop: return Disposition(action: "DROP", port: nil, summary: "dropped")
        case .reject: return Disposition(action: "REJECT", port: nil, summary: "rejected")
        case .queue: return Disposition(action: "QUEUE", port: nil, summary: "queued to user space")
        case .redirect(let ports):
            let port = ports?.lowerBound ?? (hasPorts ? packet.destinationPort : nil)
            return Disposition(action: "REDIRECT", port: port, summary: port.map(listener) ?? "redirected to this host")
        case .tproxy(let port, _, _):
            return Disposition(action: "TPROXY", port: port, summary: listener(port) + " (TPROXY)")
        case .nat(let text):
            let action = String(text.prefix { $0 != " " })
            var port: UInt16?
            if action == "DNAT", let colon = text.lastIndex(of: ":") {
                port = UInt16(text[text.index(after: colon)...].prefix { $0.isNumber })
            }
            let detail = text.dropFirst(action.count).trimmingWhitespace
            return Disposition(action: action, port: port, summary: "\(action) \(detail)".trimmingWhitespace)
        case .unrecognized(let n):
            return Disposition(action: "UNKNOWN", port: nil, summary: "target \(n), which iptaudit does not decode")
        case .loop:
            return Disposition(action: "LOOP", port: nil, summary: "a jump loop the kernel would refuse")
        }
    }

    // MARK: explaining a concrete walk

    /// Rebuilds the rule-by-rule walk behind a concrete trace's path: the rules between two steps of a chain
    /// were evaluated and did not match; the packet is updated with the effects on the way.
    func explain(_ replay: Trace, pipeline: Pipeline, given: Set<PacketField>, outcomeSet: PacketSet?, space: PacketSpace?) -> TracedOutcome {
        var steps: [ExplainedStep] = []
        var packet = replay.packet
        var path = replay.path[...]
        var notrack = false
        var ctTemplate = false
        var afterLoopback = false
        var verdict: Verdict = .policy(.accept)
        let byName = Dictionary(tables.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func finish() -> TracedOutcome {
            TracedOutcome(condition: [], packet: replay.packet, verdict: replay.verdict, path: replay.path, steps: steps,
                          assumptions: replay.assumptions,
                          disposition: Disposition(action: "", port: nil, summary: ""))
        }

        for (i, stage) in pipeline.stages.enumerated() {
            if i > 0, !verdict.continues { break }
            switch stage {
            case .loopback:
                guard path.first?.action == .loopback else {
                    // Not routed over lo: the walk ends before the receive side.
                    return finish()
                }
                path.removeFirst()
                steps.append(ExplainedStep(kind: .loopback, table: .raw, chain: .prerouting, action: nil, checks: [],
                                           reason: "routed over lo: received back by this host"))
                packet.inInterface = "lo"
                packet.outInterface = nil
                afterLoopback = true
            case .table(let name, let hook):
                if name == .nat {
                    if notrack {
                        steps.append(ExplainedStep(kind: .skipped, table: name, chain: hook, checks: [],
                                                   reason: "untracked (CT --notrack in raw): nat never sees it"))
                        verdict = .untracked
                        continue
                    }
                    if packet.state != .new {
                        steps.append(ExplainedStep(kind: .skipped, table: name, chain: hook, checks: [],
                                                   reason: "ctstate \(packet.state.rawValue): nat sees only the first packet of a connection"))
                        continue
                    }
                }
                guard let table = byName[name] else {
                    steps.append(ExplainedStep(kind: .skipped, table: name, chain: hook, checks: [],
                                               reason: "no \(name) table is loaded: nothing to evaluate"))
                    verdict = .policy(.accept)
                    continue
                }
                // Back on lo the interfaces are known (in lo, no output interface) whatever the input had.
                verdict = walk(table, hook, &path, &packet, &steps, &notrack, &ctTemplate,
                               given: afterLoopback ? given.union([.inInterface, .outInterface]) : given,
                               outcomeSet: outcomeSet, space: space)
            }
        }
        return finish()
    }

    private func walk(_ table: Table, _ hook: ChainName, _ path: inout ArraySlice<TraceStep>, _ packet: inout Packet,
                      _ steps: inout [ExplainedStep], _ notrack: inout Bool, _ ctTemplate: inout Bool,
                      given: Set<PacketField>, outcomeSet: PacketSet?, space: PacketSpace?) -> Verdict {
        let name = table.name
        if path.first?.action == .enter, path.first?.table == name { path.removeFirst() }
        steps.append(ExplainedStep(kind: .enter, table: name, chain: hook, checks: []))
        guard let hookChain = table.chain(hook) else {
            if case .policy = path.first?.action { path.removeFirst() }
            steps.append(ExplainedStep(kind: .policy, table: name, chain: hook, action: "policy ACCEPT", checks: [],
                                       reason: "no \(hook) chain in \(name)"))
            return .policy(.accept)
        }
        let policy = hookChain.policy ?? .accept
        var stack: [(ChainName, Int)] = []
        var chain = hook
        var index = 0
        let explainer = ConditionExplainer(family: family, given: given, outcomeSet: outcomeSet, space: space)

        func notMatched(upTo end: Int) {
            let rules = table.chain(chain)?.rules ?? []
            while index < min(end, rules.count) {
                let rule = rules[index]
                let checks = explainer.checks(rule, packet)
                let failing = checks.filter { $0.holds == false }
                let reason = failing.isEmpty
                    ? (checks.contains { $0.holds == nil } ? "assumed not to match (\(checks.filter { $0.holds == nil }.map(\.condition).joined(separator: ", ")) not evaluated)" : "does not match")
                    : failing.map(\.reason).joined(separator: "; ")
                steps.append(ExplainedStep(kind: .notMatched, table: name, chain: chain, ruleNumber: index + 1,
                                           ruleText: SaveSyntax.render(rule, in: chain, family: family), checks: checks, reason: reason))
                index += 1
            }
        }
        func policyStep() -> Verdict {
            if path.first?.table == name, case .policy = path.first?.action { path.removeFirst() }
            steps.append(ExplainedStep(kind: .policy, table: name, chain: hook, action: "policy \(policy.rawValue)", checks: [],
                                       reason: "end of the built-in chain"))
            return .policy(policy)
        }

        while let step = path.first, step.table == name {
            switch step.action {
            case .enter, .loopback:
                return .policy(policy)
            case .policy:
                notMatched(upTo: Int.max)
                return policyStep()
            case .fallOff:
                path.removeFirst()
                notMatched(upTo: Int.max)
                steps.append(ExplainedStep(kind: .fallOff, table: name, chain: chain, action: "back to the caller", checks: [],
                                           reason: "end of \(chain)"))
                guard let (c, i) = stack.popLast() else { return policyStep() }
                chain = c
                index = i
            default:
                guard let n = step.ruleNumber, step.chain == chain, let rules = table.chain(chain)?.rules, n >= 1, n <= rules.count else {
                    // The path disagrees with the tables (cannot happen for a trace of these tables): stop explaining.
                    path.removeFirst()
                    continue
                }
                path.removeFirst()
                notMatched(upTo: n - 1)
                let rule = rules[n - 1]
                let checks = explainer.checks(rule, packet)
                var action = ""
                var verdict: Verdict?
                switch step.action {
                case .jump(let c):
                    action = "-j \(c)"
                    stack.append((chain, n))
                    chain = c
                    index = 0
                case .goto(let c):
                    action = "-g \(c)"
                    chain = c
                    index = 0
                case .return:
                    action = "RETURN"
                case .effect(let e):
                    action = e
                    index = n
                    switch rule.target {
                    case .mark(let m): packet.mark = m.apply(to: packet.mark)
                    case .connmark(let c): (packet.mark, packet.connmark) = ConnmarkEffect.apply(c, mark: packet.mark, connmark: packet.connmark)
                    case .ct(let ct):
                        if !ctTemplate {
                            ctTemplate = true
                            if ct.notrack { notrack = true }
                        }
                    default: break
                    }
                case .verdict(let v):
                    action = v.description
                    verdict = v
                    if case .tproxy(_, let value, let mask) = v { packet.mark = (packet.mark & ~mask) ^ value }
                case .danglingJump(let c):
                    action = "-j \(c) (no such chain: ignored)"
                    index = n
                default:
                    break
                }
                steps.append(ExplainedStep(kind: .matched, table: name, chain: step.chain, ruleNumber: n,
                                           ruleText: SaveSyntax.render(rule, in: step.chain, family: family), action: action,
                                           checks: checks, reason: checks.filter { $0.holds != false }.map(\.reason).joined(separator: "; ")))
                if let verdict { return verdict }
                if case .return = step.action {
                    guard let (c, i) = stack.popLast() else { return policyStep() }
                    chain = c
                    index = i
                }
            }
        }
        // The path ended inside this table (a jump loop): nothing more to explain.
        return .loop
    }
}

/// Each condition of a rule checked against a packet, with the reason in the packet's values. For a field the
/// user left unknown the value is only shown as an example, unless every packet of the outcome agrees.
struct ConditionExplainer {
    let family: Family
    let given: Set<PacketField>
    let outcomeSet: PacketSet?
    let space: PacketSpace?

    /// Whether the value of an unknown field is the same for the whole outcome (then it can be stated).
    func known(_ f: PacketField) -> Bool {
        if given.contains(f) { return true }
        guard let outcomeSet, let space else { return false }
        let atoms = outcomeSet.boxes.reduce(space.empty(f)) { $0 | $1.input(f) }
        guard atoms.count == 1, let a = atoms.first else { return false }
        if let r = space.interval(f, a) { return r.lowerBound == r.upperBound }
        return true
    }

    /// Whether every packet of the outcome is inside (true) or outside (false) the ranges of a numeric field;
    /// nil when they differ or the field is given.
    func uniform(_ f: PacketField, _ ranges: [ClosedRange<UInt128>]) -> Bool? {
        guard !given.contains(f), let outcomeSet, let space else { return nil }
        let atoms = outcomeSet.boxes.reduce(space.empty(f)) { $0 | $1.input(f) }
        let inside = space.atoms(f, inRanges: ranges)
        if (atoms & inside) == atoms { return true }
        if (atoms & inside).isEmpty { return false }
        return nil
    }

    /// Whether every packet of the outcome has an interface the match accepts (true) or none does (false).
    func uniformInterface(_ f: PacketField, _ m: InterfaceMatch) -> Bool? {
        guard !given.contains(f), let outcomeSet, let space else { return nil }
        let atoms = outcomeSet.boxes.reduce(space.empty(f)) { $0 | $1.input(f) }
        let inside = space.atoms(f, interfaces: m.matches)
        if (atoms & inside) == atoms { return true }
        if (atoms & inside).isEmpty { return false }
        return nil
    }

    /// How to name a field's value in a reason: `dport 9080`, `dport` (all of the outcome agrees),
    /// `dport (e.g. 9080)`.
    func subject(_ f: PacketField, _ text: String, _ ranges: [ClosedRange<UInt128>]) -> String {
        let name = PacketTracer.fieldName(f)
        if known(f) { return "\(name) \(text)" }
        if uniform(f, ranges) != nil { return name }
        return "\(name) (e.g. \(text))"
    }

    func value(_ f: PacketField, _ text: String) -> String {
        known(f) ? "\(PacketTracer.fieldName(f)) \(text)" : "\(PacketTracer.fieldName(f)) (e.g. \(text))"
    }

    func checks(_ rule: Rule, _ p: Packet) -> [ConditionCheck] {
        var out: [ConditionCheck] = []
        func add(_ condition: String, _ holds: Bool?, _ reason: String) {
            out.append(ConditionCheck(condition: condition, holds: holds, reason: reason))
        }
        func address(_ a: AddressMatch?, _ v: IPAddress, _ f: PacketField, option: String) {
            guard let a, !a.isWildcard else { return }
            let cond = (a.inverted ? "! " : "") + "\(option) \(a.cidrText)"
            guard a.address.family == p.family, a.mask.prefixLength != nil else {
                add(cond, nil, "\(option) \(a.cidrText) not evaluated")
                return
            }
            let inside = a.contains(v)
            let holds = inside != a.inverted
            let who = subject(f, v.description, a.interval.map { [$0] } ?? [])
            add(cond, holds, "\(who) is \(inside ? "in" : "not in") \(a.cidrText)" + (a.inverted && !holds ? " (rule wants not in)" : ""))
        }
        func interface(_ m: InterfaceMatch?, _ v: String?, _ f: PacketField, option: String) {
            guard let m else { return }
            let cond = (m.inverted ? "! " : "") + "\(option) \(m.text)"
            let holds = m.matches(v ?? "")
            let actual = v ?? "none"
            let subject = f == .outInterface ? "out" : "in"
            let shown: String
            if known(f) {
                shown = "\(subject) \(actual)"
            } else if let all = uniformInterface(f, m) {
                // Every packet of this outcome agrees: say so without an example name.
                let name = f == .outInterface ? "output interface" : "input interface"
                add(cond, all, all ? "\(name) is \(m.inverted ? "not " : "")\(m.text)" : "\(name) is \(m.inverted ? "" : "not ")\(m.text)")
                return
            } else {
                shown = "\(subject) (e.g. \(actual))"
            }
            if m.inverted {
                add(cond, holds, holds ? "\(shown), not \(m.text)" : "\(shown), rule wants not \(m.text)")
            } else {
                add(cond, holds, holds ? "\(shown)" : "\(shown) ≠ \(m.text)")
            }
        }
        func port(_ m: PortMatch?, _ v: UInt16, _ f: PacketField, option: String) {
            guard let m, !m.isFullRange || m.inverted else { return }
            let range = m.range.lowerBound == m.range.upperBound ? "\(m.range.lowerBound)" : "\(m.range.lowerBound):\(m.range.upperBound)"
            let cond = (m.inverted ? "! " : "") + "\(option) \(range)"
            let inside = m.range.contains(v)
            let who = subject(f, "\(v)", [UInt128(m.range.lowerBound)...UInt128(m.range.upperBound)])
            let single = m.range.lowerBound == m.range.upperBound
            let rel = single ? (inside ? "=" : "≠") : (inside ? "in" : "not in")
            let holds = inside != m.inverted
            add(cond, holds, "\(who) \(rel) \(range)" + (m.inverted && !holds ? " (rule wants \(single ? "≠" : "not in") \(range))" : ""))
        }
        func id(_ m: IDRangeMatch?, _ v: UInt32?, _ f: PacketField, option: String) {
            guard let m else { return }
            let range = m.range.lowerBound == m.range.upperBound ? "\(m.range.lowerBound)" : "\(m.range.lowerBound)-\(m.range.upperBound)"
            let cond = (m.inverted ? "! " : "") + "\(option) \(range)"
            guard let v else {
                add(cond, false, "\(PacketTracer.fieldName(f)): no socket owner (not locally generated)")
                return
            }
            let inside = m.range.contains(v)
            let name = PacketTracer.fieldName(f)
            let verb = inside ? "is" : "is not"
            let text: String
            if known(f) {
                text = "\(name) \(v) \(verb) \(range)"
            } else if uniform(f, [UInt128(m.range.lowerBound)...UInt128(m.range.upperBound)]) != nil {
                text = "\(name) \(verb) \(range)"
            } else {
                text = "\(name) (e.g. \(v)) \(verb) \(range)"
            }
            let holds = inside != m.inverted
            add(cond, holds, text + (m.inverted && !holds ? " (rule wants not \(range))" : ""))
        }
        func mark(_ m: MarkMatch, _ v: UInt32, _ f: PacketField, option: String) {
            let want = "0x" + String(m.value, radix: 16) + (m.mask == 0xFFFF_FFFF ? "" : "/0x" + String(m.mask, radix: 16))
            let cond = (m.inverted ? "! " : "") + "\(option) \(want)"
            let eq = (v & m.mask) == m.value
            add(cond, m.matches(v), value(f, "0x" + String(v, radix: 16)) + " \(eq ? "=" : "≠") \(want)" + (m.inverted && eq ? " (rule wants ≠)" : ""))
        }
        func states(_ s: ConntrackStates, inverted: Bool, option: String) {
            let names = ConntrackState.allCases.filter { s.contains($0.bit) }.map(\.rawValue)
            let cond = (inverted ? "! " : "") + "\(option) \(names.joined(separator: ","))"
            let modelled: ConntrackStates = [.new, .established, .related, .invalid, .untracked]
            let inside = s.contains(p.state.bit)
            if !s.subtracting(modelled).isEmpty, !inside {
                add(cond, nil, "SNAT/DNAT states not evaluated")
                return
            }
            add(cond, inside != inverted, value(.ctState, p.state.rawValue) + " \(inside ? "in" : "not in") \(names.joined(separator: ","))"
                + (inverted && inside ? " (rule wants not in)" : ""))
        }

        address(rule.source, p.source, .source, option: "-s")
        address(rule.destination, p.destination, .destination, option: "-d")
        interface(rule.inInterface, p.inInterface, .inInterface, option: "-i")
        interface(rule.outInterface, p.outInterface, .outInterface, option: "-o")
        if let pr = rule.protocol, pr.number != 0 {
            let name = SaveSyntax.protocolName(pr.number)
            let actual = SaveSyntax.protocolName(p.protocolNumber)
            add((pr.inverted ? "! " : "") + "-p \(name)", pr.matches(p.protocolNumber),
                pr.matches(p.protocolNumber) ? "protocol \(actual)" : "protocol \(actual)" + (pr.inverted ? ", rule wants not \(name)" : " ≠ \(name)"))
        }
        if rule.fragment != nil { add("-f", nil, "-f not evaluated") }
        for m in rule.matches {
            switch m {
            case .tcp(let t):
                if p.protocolNumber != ProtocolMatch.tcp, rule.protocol?.number != ProtocolMatch.tcp {
                    add("-m tcp", false, "protocol \(SaveSyntax.protocolName(p.protocolNumber)) ≠ tcp")
                }
                port(t.sourcePort, p.sourcePort, .sourcePort, option: "--sport")
                port(t.destinationPort, p.destinationPort, .destinationPort, option: "--dport")
                if t.flags != nil { add("--tcp-flags", nil, "--tcp-flags not evaluated") }
                if t.option != nil { add("--tcp-option", nil, "--tcp-option not evaluated") }
            case .udp(let u):
                if p.protocolNumber != ProtocolMatch.udp, rule.protocol?.number != ProtocolMatch.udp {
                    add("-m udp", false, "protocol \(SaveSyntax.protocolName(p.protocolNumber)) ≠ udp")
                }
                port(u.sourcePort, p.sourcePort, .sourcePort, option: "--sport")
                port(u.destinationPort, p.destinationPort, .destinationPort, option: "--dport")
            case .multiport(let mp):
                let list = mp.ports.map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound):\($0.upperBound)" }.joined(separator: ",")
                let option: String
                let hit: Bool
                let subject: String
                switch mp.direction {
                case .source:
                    option = "--sports"; hit = mp.contains(p.sourcePort); subject = value(.sourcePort, "\(p.sourcePort)")
                case .destination:
                    option = "--dports"; hit = mp.contains(p.destinationPort); subject = value(.destinationPort, "\(p.destinationPort)")
                case .either:
                    option = "--ports"; hit = mp.contains(p.sourcePort) || mp.contains(p.destinationPort)
                    subject = value(.sourcePort, "\(p.sourcePort)") + "/" + value(.destinationPort, "\(p.destinationPort)")
                }
                add((mp.inverted ? "! " : "") + "\(option) \(list)", hit != mp.inverted,
                    "\(subject) \(hit ? "in" : "not in") \(list)" + (mp.inverted && hit ? " (rule wants not in)" : ""))
            case .owner(let o):
                id(o.uid, p.uid, .uid, option: "--uid-owner")
                id(o.gid, p.gid, .gid, option: "--gid-owner")
                if o.gid != nil, o.supplementaryGroups { add("--suppl-groups", nil, "--suppl-groups not evaluated") }
                if o.socketExists != nil { add("--socket-exists", nil, "--socket-exists not evaluated") }
            case .mark(let mm): mark(mm, p.mark, .mark, option: "--mark")
            case .connmark(let mm): mark(mm, p.connmark, .connmark, option: "--connmark")
            case .conntrack(let c):
                if let s = c.states { states(s.value, inverted: s.inverted, option: "--ctstate") }
                if let l4 = c.l4Protocol {
                    let hit = p.protocolNumber == l4.value
                    add((l4.inverted ? "! " : "") + "--ctproto \(SaveSyntax.protocolName(l4.value))", hit != l4.inverted,
                        "protocol \(SaveSyntax.protocolName(p.protocolNumber))\(hit ? "" : " ≠ \(SaveSyntax.protocolName(l4.value))")")
                }
                let other = c.originalSource != nil || c.originalDestination != nil || c.replySource != nil
                    || c.replyDestination != nil || c.originalSourcePort != nil || c.originalDestinationPort != nil
                    || c.replySourcePort != nil || c.replyDestinationPort != nil || c.status != nil
                    || c.expires != nil || c.direction != nil
                if other { add("conntrack", nil, "conntrack tuple/status conditions not evaluated") }
            case .state(let s): states(s.states, inverted: s.inverted, option: "--state")
            case .comment: break
            case .addrtype, .statistic, .set, .socket, .mac, .unrecognized:
                add("-m \(m.name)", nil, "-m \(m.name) not evaluated")
            }
        }
        return out
    }
}
