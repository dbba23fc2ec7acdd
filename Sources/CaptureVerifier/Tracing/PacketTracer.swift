import IstioCapture
import NetfilterModel

/// Follows a packet through one family's tables, rule by rule, as the kernel would, and says why each rule
/// did or did not match. Unknown fields are followed symbolically (every outcome they allow); each outcome is
/// then replayed with the concrete evaluator on a member packet to explain it.
public struct PacketTracer: Sendable {
    public let family: Family
    let tables: [Table]

    /// The tables hold ambient's in-pod rules: captured traffic goes to ztunnel, not Envoy.
    let ambient: Bool

    public init(family: Family, tables: [Table]) {
        self.family = family
        self.tables = tables.filter { $0.family == family }
        ambient = self.tables.contains(where: IstioLayout.holdsAmbientRules)
    }

    /// Every outcome of a partially specified packet. `pipeline` overrides the query's (to replay a witness).
    public func trace(_ query: PacketQuery, pipeline: Pipeline? = nil) -> PacketTraceResult {
        let space = PacketSpace(family: family, tables: tables, hints: hints(query))
        let set = PacketSet([box(query, space)])
        let evaluator = SymbolicEvaluator(space: space, tables: tables)
        let assumed = evaluator.orderAssumptions(pipeline ?? query.pipeline)
        let pipeline = evaluator.resolve(pipeline ?? query.pipeline)
        let symbolic = evaluator.evaluate(set, pipeline: pipeline)

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
        var outcomes: [TracedOutcome] = []
        for k in order {
            guard let o = merged[k], let b = o.packets.boxes.first else { continue }
            var packet = space.representative(of: b)
            if query.direction == .inbound { packet.uid = nil; packet.gid = nil }
            if query.unroutedOutput { packet.outInterface = nil }
            var t = explain(packet, pipeline: pipeline, assumptions: o.assumptions, given: given, outcomeSet: o.packets, space: space)
            t.condition = conditionClauses(o.packets, query: set, given: given, space: space)
            // The symbolic walk is the authority on the path; the replay explains it (they agree by construction).
            t.path = o.path
            t.verdict = o.verdict
            t.assumptions = o.assumptions
            t.disposition = PacketTracer.disposition(o.verdict, packet: packet, direction: query.direction, ambient: ambient)
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
        // Only ties at a hook some outcome reached (a packet out eth0 never meets PREROUTING). Reaching one of the
        // tied chains is enough: the one walked first may have decided, which is the order's whole consequence.
        let entered = Set(outcomes.flatMap { $0.steps.filter { $0.kind == .enter || $0.kind == .skipped }.map { "\($0.table) \($0.chain)" } })
        let orders = assumed.filter { $0.order.contains(where: entered.contains) }
        return PacketTraceResult(query: query, pipeline: pipeline, outcomes: outcomes, assumedOrders: orders)
    }

    /// One fully specified packet, concretely.
    public func trace(_ packet: Packet, pipeline: Pipeline, assumptions: [Assumption] = []) -> TracedOutcome {
        var t = explain(packet, pipeline: pipeline, assumptions: assumptions, given: Set(PacketField.allCases), outcomeSet: nil, space: nil)
        t.disposition = PacketTracer.disposition(t.verdict, packet: packet,
                                                 direction: packet.uid != nil || packet.inInterface == nil ? .outbound : .inbound,
                                                 ambient: ambient)
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
        let name = f.traceName
        let missing = all.subtracting(set)
        // "not eth+" or "not another name" would read as one name: an interface class is negated only when
        // every atom left out is an exact name (`not lo`).
        let classes = (f == .inInterface || f == .outInterface)
            && missing.atoms.contains { a in space.name(f, a).map { !$0.isEmpty && !space.interfaceNames.contains($0) } ?? false }
        let (shown, negated) = set.count <= missing.count || classes ? (set, false) : (missing, true)
        let values = shown.atoms.map { atomText(f, $0, space: space) }
        let list = values.count <= 4 ? values.joined(separator: ", ") : values.prefix(4).joined(separator: ", ") + ", …"
        if values.count == 1 { return "\(name) is \(negated ? "not " : "")\(list)" }
        return "\(name) is \(negated ? "not " : "")one of \(list)"
    }

    func atomText(_ f: PacketField, _ atom: Int, space: PacketSpace) -> String {
        switch f {
        case .inInterface, .outInterface:
            return space.interfaceClass(f, atom) ?? "?"
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


    // MARK: where it ends up

    /// What a verdict means for the connection, in plain words (Istio's default ports named).
    public static func disposition(_ verdict: Verdict, packet: Packet, direction: PacketQuery.Direction, ambient: Bool = false) -> Disposition {
        func listener(_ port: UInt16) -> String {
            guard let known = IstioPort(rawValue: port), known.carriesTraffic else { return "local port \(port)" }
            return "\(ambient ? AmbientNames.role(known) : known.name) \(port)"
        }
        let hasPorts = packet.hasPorts
        let dst = hasPorts ? (packet.family == .ipv6 ? "[\(packet.destination)]:\(packet.destinationPort)" : "\(packet.destination):\(packet.destinationPort)")
            : packet.destination.description
        let untouched = direction == .inbound
            ? (hasPorts ? "application port \(packet.destinationPort) directly — bypasses the mesh" : "the pod directly — bypasses the mesh")
            : "\(dst) directly — not through \(ambient ? "ztunnel" : "Envoy")"
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
            return Disposition(action: "LOOP", port: nil, summary: "a jump loop the kernel would refuse, or jumps nested more than \(EvaluationLimits.maxCallDepth) deep, further than iptaudit follows")
        }
    }
}
