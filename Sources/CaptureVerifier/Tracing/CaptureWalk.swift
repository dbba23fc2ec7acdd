import IstioCapture
import NetfilterModel

/// The walk a reader of `iptables -t nat -L` makes by hand, done by the concrete evaluator on one packet: the rules
/// it takes from the hook to its verdict (outbound `OUTPUT → ISTIO_OUTPUT → ISTIO_REDIRECT → REDIRECT 15001`,
/// inbound `PREROUTING → ISTIO_INBOUND → ISTIO_IN_REDIRECT → REDIRECT 15006`, or whatever the rules really say),
/// with the rule where the proxy's own packet leaves that walk. Values only: the reporters print them.
public struct CaptureWalk: Hashable, Sendable, Codable {
    public enum Direction: String, Hashable, Sendable, Codable, CustomStringConvertible {
        case outbound, inbound
        /// Static, as `Family.description` explains.
        public var description: String { rawValue }
    }

    /// One rule on the walk.
    public struct Hop: Hashable, Sendable, Codable {
        public var table: TableName
        public var chain: ChainName
        public var ruleNumber: Int
        public var rule: Rule
        /// False for a rule the walked packet passes without matching, shown because the exempt packet (the
        /// proxy's, ztunnel's) leaves the walk there.
        public var taken: Bool
        /// Set where the exempt packet's walk parts from this one: at a rule it takes instead (`taken` false) or
        /// at the walked packet's rule that it does not match.
        public var exempt: Exempt?

        public var position: RulePosition { RulePosition(chain: chain, number: ruleNumber) }
    }

    /// The packet the capture must not take, and what happened to it where it parted.
    public struct Exempt: Hashable, Sendable, Codable {
        /// `UID 1337 GID 1337 (the proxy)`, `mark 0x539/0xfff (ztunnel)`.
        public var who: String
        /// Where it goes instead: `RETURN`, `nat OUTPUT policy ACCEPT`; empty when it does not part.
        public var action: String
        /// False when it follows the whole walk: capture takes it too.
        public var parts: Bool = true
    }

    public var family: Family
    public var direction: Direction
    /// The packet walked: a representative of the traffic this direction must capture, or, when an error finding
    /// shows such traffic escaping, that finding's witness.
    public var packet: Packet
    public var hops: [Hop]
    public var verdict: Verdict
    /// The chain whose policy (or end) decided, when no rule did.
    public var end: TraceStep?
    public var disposition: Disposition
    /// The same packet as the proxy (ztunnel in ambient) sends it, walked alongside: where it parts is shown as
    /// `Hop.exempt`; when it never parts, capture takes it too (a finding's witness, then).
    public var twin: Packet?
    /// Native nftables: the rules are nft's, and no `iptables -L` lists them.
    public var native: Bool
}

extension FamilyContext {
    /// The two walks of this family: application TCP leaving the pod, TCP arriving at a captured port.
    func walks(findings: [Finding]) -> [CaptureWalk] {
        guard hasIstioRules || layout.native && table(layout.nat) != nil else { return [] }
        let ambient = config.ambient != nil
        var inbound: PacketBox
        let outbound: PacketSet
        if ambient {
            outbound = PacketSet([ambientOutboundClass])
            inbound = ambientInboundNew.without(.destinationPort, ports([IstioPort.tunnel.rawValue]))
        } else {
            outbound = outboundCaptureClass
            inbound = inboundNew.with(.l4Protocol, tcp).without(.inInterface, into(config.excludeInterfaces + config.rerouteVirtualInterfaces))
            switch config.inboundPortsInclude {
            case .all: inbound = inbound.without(.destinationPort, ports(inboundExcluded + [config.inboundTunnelPort]))
            case .some(let listed): inbound = inbound.with(.destinationPort, ports(listed).subtracting(ports([config.inboundTunnelPort])))
            }
        }
        let fallbackOut = application(localNew).with(.l4Protocol, tcp).without(.outInterface, out(lo))
        return [
            walk(.outbound, representative(outbound, else: fallbackOut), pipeline: .localOutput, findings: findings),
            walk(.inbound, representative(PacketSet([inbound]), else: inboundNew.with(.l4Protocol, tcp)), pipeline: .inbound, findings: findings),
        ]
    }

    /// The most realistic member of the class (a whole-class fallback when the configuration leaves it empty).
    func representative(_ set: PacketSet, else fallback: PacketBox) -> Packet {
        let boxes = set.boxes.filter { !PacketSet([$0]).isEmpty }
        return (boxes.isEmpty ? [fallback] : boxes).map { space.representative(of: $0) }.max { realism($0) < realism($1) }
            ?? space.representative(of: fallback)
    }

    func walk(_ direction: CaptureWalk.Direction, _ representative: Packet, pipeline: Pipeline, findings: [Finding]) -> CaptureWalk {
        // Where capture breaks, walk the packet that shows it, through the tables and assumptions it was judged with.
        let witness = findings.first { f in
            guard f.family == family, f.severity == .error, [.missingRedirect, .foreignRule, .wrongPort].contains(f.kind),
                  let w = f.witness?.packet, w.protocolNumber == ProtocolMatch.tcp, !isExempt(w) else { return false }
            return (PacketQuery(packet: w).direction == .outbound) == (direction == .outbound)
        }?.witness
        let packet = witness?.packet ?? representative
        let pipeline = witness?.pipeline ?? pipeline
        // The exempt twin: the same packet from the proxy (ztunnel's mark in ambient), walked with it.
        let twin = direction == .outbound ? exemptTwin(of: packet) : nil
        let traces = ConcreteEvaluator(family: family, tables: tables)
            .trace([packet] + (twin.map { [$0.0] } ?? []), pipeline: pipeline, assumptions: witness?.assumptions ?? [], compiledBy: evaluator)
        let trace = traces[0]
        var hops = trace.path.compactMap(hop)

        // Where the twin's walk parts from this one.
        if let (_, who) = twin, let twinTrace = traces.last {
            let theirs = twinTrace.path.compactMap(hop)
            let k = zip(hops, theirs).prefix { $0.position == $1.position && $0.table == $1.table }.count
            if k < theirs.count, k >= hops.count || (theirs[k].table == hops[k].table && theirs[k].chain == hops[k].chain
                                                     && theirs[k].ruleNumber < hops[k].ruleNumber) {
                var passed = theirs[k]
                passed.taken = false
                passed.exempt = CaptureWalk.Exempt(who: who, action: action(twinTrace.path, at: passed))
                hops.insert(passed, at: k)
            } else if k < hops.count {
                // It does not match the rule this packet takes: say where it goes instead.
                let elsewhere = k < theirs.count ? "\(theirs[k].table) \(theirs[k].chain)#\(theirs[k].ruleNumber) " + action(twinTrace.path, at: theirs[k])
                    : twinTrace.path.last.map(\.description) ?? twinTrace.verdict.description
                hops[k].exempt = CaptureWalk.Exempt(who: who, action: elsewhere)
            } else if let last = hops.indices.last, twinTrace.verdict == trace.verdict, trace.verdict.capturePort != nil {
                hops[last].exempt = CaptureWalk.Exempt(who: who, action: "", parts: false)
            }
        }
        let end = trace.path.last.flatMap { s -> TraceStep? in
            if case .policy = s.action { return s }
            return nil
        }
        let query: PacketQuery.Direction = direction == .outbound ? .outbound : .inbound
        return CaptureWalk(family: family, direction: direction, packet: packet, hops: hops, verdict: trace.verdict, end: end,
                           disposition: PacketTracer.disposition(trace.verdict, packet: packet, direction: query, ambient: config.ambient != nil),
                           twin: twin?.0, native: layout.native)
    }

    /// A step that a rule decided, as a hop.
    func hop(_ step: TraceStep) -> CaptureWalk.Hop? {
        guard let n = step.ruleNumber, let rule = rule(at: step) else { return nil }
        switch step.action {
        case .jump, .goto, .return, .effect, .verdict, .danglingJump: break
        default: return nil
        }
        return CaptureWalk.Hop(table: step.table, chain: step.chain, ruleNumber: n, rule: rule, taken: true, exempt: nil)
    }

    func action(_ path: [TraceStep], at hop: CaptureWalk.Hop) -> String {
        guard let step = path.first(where: { $0.table == hop.table && $0.position == hop.position }) else { return "" }
        switch step.action {
        case .jump(let c): return "-j \(c)"
        case .goto(let c): return "-g \(c)"
        case .return: return "RETURN"
        case .effect(let e): return e
        case .verdict(let v): return v.description
        default: return step.description
        }
    }

    /// Owned by the proxy (sidecar) or carrying ztunnel's mark (ambient): traffic capture must leave alone.
    func isExempt(_ p: Packet) -> Bool {
        if config.ambient != nil { return p.mark & AmbientNames.markMask == AmbientNames.ztunnelMark }
        return p.uid.map(proxyUIDs.contains) == true || p.gid.map(proxyGIDs.contains) == true
    }

    /// The packet with the identity the owner rules (sidecar) or the mark rules (ambient) exempt.
    func exemptTwin(of p: Packet) -> (Packet, String)? {
        var twin = p
        if config.ambient != nil {
            twin.mark = AmbientNames.ztunnelMark
            return (twin, "mark \(AmbientNames.markText(AmbientNames.ztunnelMark)) (ztunnel)")
        }
        guard let uid = realIdentity?.uid ?? proxyUIDs.first else { return nil }
        twin.uid = uid
        twin.gid = realIdentity?.gid ?? proxyGIDs.first ?? uid
        return (twin, "UID \(uid) GID \(twin.gid ?? uid) (the proxy)")
    }
}
