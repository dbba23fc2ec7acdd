import IstioCapture
import NetfilterModel

/// Names each rule's role in Istio's capture scheme, for the `show --format list` annotations.
///
/// Roles are recognised by structure (targets, owner matches, ports, addresses, the chain a jump leads to), never by
/// the exact rule text, so the same rule reads the same in both families and in every istio-iptables version
/// (1.14's hook-level DNS rules as well as master's `ISTIO_OUTPUT_DNS`). A rule that plays no recognisable part
/// gets no annotation: a wrong guess would be worse than none.
public enum IstioRoles {
    /// The role of `rule` at `position` in `table`, or nil when it plays no recognisable part in Istio's capture.
    public static func annotate(table: Table, position: RulePosition, rule: Rule) -> String? {
        let facts = RuleFacts(rule)
        if IstioLayout.holdsAmbientRules(table) { return ambientRole(chain: position.chain, rule: rule, facts: facts) }
        let chain = position.chain
        let inIstioChain = IstioNames.isIstioChain(chain)
        // Hook-level rules only count as Istio's when the table carries Istio's chains (1.14 put its DNS rules in
        // the hooks, and interface exclusions always live there); a kube-proxy table gets nothing.
        let istioTable = table.hasIstioChains
        // 1.14 and older also wrote the DNS conntrack zones and the INVALID drop straight into the hooks.
        let dnsZone = if case .ct(let ct) = rule.target { ct.zone != 0 && (facts.destinationPorts + facts.sourcePorts).contains { $0 == IstioNames.dnsPort || $0 == IstioPort.dnsProxy.rawValue } } else { false }
        let invalidDrop = rule.target == .drop && facts.conntrackInvalid && table.name == .mangle && chain == .prerouting
        guard inIstioChain || istioTable || facts.targetsIstioChain || facts.ownerMentioned || facts.isEnvoyRedirect || dnsZone || invalidDrop
        else { return nil }

        switch rule.target {
        case .redirect(let r):
            guard let port = r.ports.flatMap({ $0.count == 1 ? $0.lowerBound : nil }) else { return nil }
            return redirectRole(port: port, facts: facts)
        case .tproxy(let t):
            return "TPROXY → \(t.port) with mark \(hex(t.markValue))"
        case .jump(let target), .goto(let target):
            return jumpRole(table: table, from: chain, to: target, facts: facts)
        case .return, .accept:
            return bypassRole(table: table, chain: chain, rule: rule, facts: facts)
        case .ct(let ct):
            return ctRole(ct, facts: facts)
        case .mark(let m):
            if chain == .istioDivert { return "mark diverted inbound \(hex(m.value))" }
            if facts.outLoopback, facts.uidOwners.count + facts.gidOwners.count > 0 {
                return "mark proxy self-call \(hex(m.value))"
            }
            return nil
        case .connmark(let c):
            switch c.mode {
            case .save: return facts.marks.isEmpty ? nil : "save TPROXY mark \(facts.marks.map(hex).joined(separator: ",")) to the connection"
            case .restore: return "restore the connection's TPROXY mark on replies"
            case .set: return nil
            }
        case .drop:
            if facts.conntrackInvalid || chain == .istioDrop { return "drop conntrack INVALID" }
            return nil
        case .nflog(let n):
            return inIstioChain || istioTable ? "trace log \(n.prefix.isEmpty ? "" : "\"\(n.prefix)\" ")(NFLOG group \(n.group))" : nil
        case .log(let l):
            return inIstioChain ? "trace log \"\(l.prefix)\"" : nil
        default:
            return nil
        }
    }


    /// Ambient's in-pod rules (docs/capture-model.md §11): ztunnel's ports and marks, not Envoy's.
    static func ambientRole(chain: ChainName, rule: Rule, facts: RuleFacts) -> String? {
        let ztunnelMark = facts.marks.contains(AmbientNames.ztunnelMark)
        let replyMark = facts.marks.contains(AmbientNames.replyMark)
        switch rule.target {
        case .jump(let target), .goto(let target):
            if target == .istioPrerouting || target == AmbientNames.nativePrerouting { return "jump to ambient's prerouting chain" }
            if target == .istioOutput || target == AmbientNames.nativeOutput { return "jump to ambient's output chain" }
            return nil
        case .redirect(let r):
            guard let port = r.ports.flatMap({ $0.count == 1 ? $0.lowerBound : nil }), let p = IstioPort(rawValue: port) else { return nil }
            if let i = facts.inInterface, !i.inverted { return "virtual interface \(i.text) → \(AmbientNames.role(p)) \(port)" }
            var exempt: [String] = []
            if facts.portsInverted, facts.destinationPorts.contains(IstioPort.tunnel.rawValue) { exempt.append("HBONE \(IstioPort.tunnel.rawValue)") }
            if ztunnelMark, facts.markInverted { exempt.append("ztunnel's mark") }
            let what = p == .inbound ? "inbound" : p == .dnsProxy ? "DNS" : "outbound"
            return "\(what) → \(AmbientNames.role(p)) \(port)" + (exempt.isEmpty ? "" : " (\(exempt.joined(separator: " and ")) exempt)")
        case .return:
            if let i = facts.inInterface, !i.inverted { return "virtual interface \(i.text) handled" }
            return nil
        case .accept:
            // The node agent's probe address is a setting; only its defaults are known to be it.
            let probes = [AmbientNames.defaultProbeSNATIPv4, AmbientNames.defaultProbeSNATIPv6].compactMap(IPAddress.init)
            if let s = rule.source, !s.inverted, s.mask.prefixLength == s.address.family.addressBits {
                return probes.contains(s.address) ? "kubelet probes (host-probe SNAT \(s.address)) bypass ztunnel" : "from \(s.address) bypasses ztunnel (the host-probe SNAT address?)"
            }
            if let d = rule.destination, !d.inverted, d.mask.prefixLength == d.address.family.addressBits {
                return probes.contains(d.address) ? "probe answers (to \(d.address)) bypass ztunnel" : "to \(d.address) bypasses ztunnel (the host-probe SNAT address?)"
            }
            if replyMark, !facts.markInverted { return "replies on ztunnel-delivered connections (mark 0x111) untouched" }
            if facts.outLoopback { return "to the pod's own addresses over lo untouched" }
            return nil
        case .connmark(let c):
            switch c.mode {
            case .set: return ztunnelMark ? "connections ztunnel opens into the pod get connmark 0x111" : nil
            case .restore: return "replies on ztunnel's connections get mark 0x111 (ip rule → table 100 → back to ztunnel)"
            case .save: return nil
            }
        case .ct(let ct) where ct.zone != 0:
            if ztunnelMark, !facts.markInverted { return "ztunnel's DNS queries in conntrack zone \(ct.zone)" }
            return "DNS answers in conntrack zone \(ct.zone)"
        default:
            return nil
        }
    }

    static func redirectRole(port: UInt16, facts: RuleFacts) -> String {
        switch IstioPort(rawValue: port) {
        case .outbound: return "outbound capture → \(port)" + facts.scopeSuffix
        case .inbound: return "inbound capture → \(port)" + facts.scopeSuffix
        case .dnsProxy: return "DNS → \(port)"
        default: return "redirect → \(port)" + facts.scopeSuffix
        }
    }

    static func jumpRole(table: Table, from chain: ChainName, to target: ChainName, facts: RuleFacts) -> String? {
        if target == .istioDrop, facts.conntrackInvalid { return "drop conntrack INVALID" }
        if target == .istioDivert { return "established inbound: keep its mark, skip TPROXY" }
        // A jump into a chain whose job is a single capture reads as the capture itself.
        if let capture = captureOf(table.chain(target)) {
            if facts.outLoopback, facts.uidOwners.count + facts.gidOwners.count > 0, capture.port == IstioPort.inbound.rawValue {
                return "proxy self-call → inbound listener"
            }
            if capture.port == IstioPort.dnsProxy.rawValue { return "jump to Istio's DNS chain (→ \(IstioPort.dnsProxy.rawValue))" }
            if chain == .prerouting, let i = facts.inInterface, !i.inverted {
                return "virtual interface \(i.text) → \(capture.text)" + facts.destinationSuffix
            }
            return capture.text + facts.scopeSuffix
        }
        guard IstioNames.isIstioChain(target) else { return nil }
        let what: String = switch target {
        case .istioOutput: "outbound"
        case .istioInbound: "inbound"
        case .istioOutputDNS: "DNS"
        case .istioPrerouting: "prerouting"
        default: target.rawValue
        }
        return "jump to Istio's \(what) chain"
    }

    static func bypassRole(table: Table, chain: ChainName, rule: Rule, facts: RuleFacts) -> String? {
        // The proxy's own identities: its traffic must never loop back into it.
        let positiveUIDs = facts.uidOwners.filter { !$0.inverted }
        let positiveGIDs = facts.gidOwners.filter { !$0.inverted }
        let negative = facts.uidOwners.filter(\.inverted) + facts.gidOwners.filter(\.inverted)
        if facts.outLoopback, !negative.isEmpty, positiveUIDs.isEmpty, positiveGIDs.isEmpty {
            return "app traffic over lo untouched"
        }
        if !positiveUIDs.isEmpty || !positiveGIDs.isEmpty {
            let ids = (positiveUIDs.map { "UID \(idText($0))" } + positiveGIDs.map { "GID \(idText($0))" }).joined(separator: ", ")
            return "exempts proxy \(ids)" + (facts.destinationPorts == [IstioNames.dnsPort] ? " (DNS)" : "")
        }
        if !negative.isEmpty {
            let ids = facts.uidOwners.filter(\.inverted).map { "UID " + idText($0) } + facts.gidOwners.filter(\.inverted).map { "GID " + idText($0) }
            return "only \(ids.joined(separator: ", ")) captured" + (facts.destinationPorts == [IstioNames.dnsPort] ? " (DNS)" : "")
        }
        if let s = rule.source, !s.inverted, isEnvoyInboundSource(s) {
            return "Envoy's forward from \(s.address) untouched"
        }
        if !facts.marks.isEmpty, facts.marks.allSatisfy({ $0 == IstioNames.tproxyMark }) {
            return facts.markInverted ? nil : "already-diverted (mark \(hex(IstioNames.tproxyMark))) untouched"
        }
        if facts.markInverted, facts.inLoopback { return "lo traffic not marked as a proxy self-call untouched" }
        if let d = rule.destination, !d.isWildcard, !d.inverted {
            if isLoopback(d) { return "loopback destination untouched" }
            if facts.destinationPorts.isEmpty { return "excluded CIDR \(d.cidrText)" }
        }
        let ports = facts.destinationPorts
        if !ports.isEmpty, !facts.portsInverted {
            if ports == [IstioPort.tunnel.rawValue] { return "tunnel port \(IstioPort.tunnel.rawValue) not captured" }
            let list = ports.map(String.init).joined(separator: ",")
            let plural = ports.count == 1 ? "" : "s"
            switch chain {
            case .istioInbound: return "excluded inbound port\(plural) \(list)"
            case .istioOutput: return "excluded outbound port\(plural) \(list)"
            // Istio puts no port RETURN in a hook chain: such a rule skips everything after it, Istio's jump included.
            case .prerouting, .output: return "port\(plural) \(list) skip the rest of \(chain)"
            default: return nil
            }
        }
        if chain == .prerouting, let i = rule.inInterface, !i.inverted { return "excluded interface \(i.text)" }
        if chain == .output, let o = rule.outInterface, !o.inverted, o.text != "lo" { return "excluded interface \(o.text)" }
        if rule.target == .accept, chain == .istioDivert { return "accept (skips TPROXY)" }
        if rule == Rule(target: rule.target), IstioNames.isIstioChain(chain) {
            return chain == .istioOutput ? "other outbound untouched" : (rule.target == .accept ? "accept (skips later capture)" : "everything else untouched")
        }
        return nil
    }

    static func ctRole(_ ct: CTTarget, facts: RuleFacts) -> String? {
        guard ct.zone != 0 else { return ct.notrack ? "not tracked" : nil }
        let owned = !facts.uidOwners.isEmpty || !facts.gidOwners.isEmpty
        if owned, facts.destinationPorts == [IstioNames.dnsPort] { return "conntrack zone \(ct.zone) for the DNS agent's queries" }
        if owned, facts.sourcePorts == [IstioPort.dnsProxy.rawValue] { return "conntrack zone \(ct.zone) for the DNS agent's answers" }
        if facts.destinationPorts == [IstioNames.dnsPort] { return "conntrack zone \(ct.zone) for app queries to the DNS server" }
        if facts.sourcePorts == [53] { return "conntrack zone \(ct.zone) for DNS server answers" }
        return "conntrack zone \(ct.zone)"
    }

    /// What a chain does when it is a capture chain: a REDIRECT or TPROXY as its only deciding rule.
    static func captureOf(_ chain: Chain?) -> (port: UInt16, text: String)? {
        guard let chain else { return nil }
        for rule in chain.rules {
            switch rule.target {
            case .redirect(let r):
                guard let p = r.ports, p.count == 1 else { return nil }
                let port = p.lowerBound
                let what = switch IstioPort(rawValue: port) {
                case .outbound: "outbound capture"
                case .inbound: "inbound capture"
                case .dnsProxy: "DNS"
                default: "redirect"
                }
                return (port, "\(what) → \(port)")
            case .tproxy(let t):
                return (t.port, "inbound capture → TPROXY \(t.port)")
            case .nflog, .log, .continue, .mark: continue
            default: return nil
            }
        }
        return nil
    }

    static func isLoopback(_ a: AddressMatch) -> Bool {
        a.cidrText == "127.0.0.1/32" || a.cidrText == "::1/128" || a.cidrText == "127.0.0.0/8"
    }

    /// 127.0.0.6 / ::6: where Envoy's inbound forwards to the app come from.
    static func isEnvoyInboundSource(_ a: AddressMatch) -> Bool {
        a.cidrText == "127.0.0.6/32" || a.cidrText == "::6/128"
    }

    static func idText(_ m: IDRangeMatch) -> String {
        m.range.count == 1 ? "\(m.range.lowerBound)" : "\(m.range.lowerBound)-\(m.range.upperBound)"
    }

    static func hex(_ v: UInt32) -> String { "0x" + String(v, radix: 16) }
}

/// The parts of a rule the role recognizer looks at, gathered once from its matches.
struct RuleFacts {
    var uidOwners: [IDRangeMatch] = []
    var gidOwners: [IDRangeMatch] = []
    var destinationPorts: [UInt16] = []
    var sourcePorts: [UInt16] = []
    var portsInverted = false
    var marks: [UInt32] = []
    var markInverted = false
    var conntrackInvalid = false
    var inInterface: InterfaceMatch?
    var outLoopback = false
    var inLoopback = false
    var destination: AddressMatch?
    var targetsIstioChain = false
    var isEnvoyRedirect = false

    var ownerMentioned: Bool { !uidOwners.isEmpty || !gidOwners.isEmpty }

    init(_ rule: Rule) {
        inInterface = rule.inInterface
        outLoopback = rule.outInterface.map { $0.text == "lo" && !$0.inverted } ?? false
        inLoopback = rule.inInterface.map { $0.text == "lo" && !$0.inverted } ?? false
        destination = rule.destination
        for m in rule.matches {
            switch m {
            case .owner(let o):
                if let u = o.uid { uidOwners.append(u) }
                if let g = o.gid { gidOwners.append(g) }
            case .tcp(let t): add(t.destinationPort, t.sourcePort)
            case .udp(let u): add(u.destinationPort, u.sourcePort)
            case .multiport(let mp):
                let ports = mp.ports.flatMap { $0.count <= 16 ? Array($0) : [$0.lowerBound] }
                if mp.direction == .source { sourcePorts += ports } else { destinationPorts += ports }
                portsInverted = portsInverted || mp.inverted
            case .mark(let mk), .connmark(let mk):
                marks.append(mk.value)
                markInverted = markInverted || mk.inverted
            case .conntrack(let c):
                if let s = c.states, !s.inverted, s.value == .invalid { conntrackInvalid = true }
            case .state(let s):
                if !s.inverted, s.states == .invalid { conntrackInvalid = true }
            default: break
            }
        }
        targetsIstioChain = rule.target.chainReference.map(IstioNames.isIstioChain) ?? false
        if case .redirect(let r) = rule.target, let p = r.ports,
           [IstioPort.outbound, .inbound, .dnsProxy].map(\.rawValue).contains(p.lowerBound) {
            isEnvoyRedirect = true
        }
    }

    private mutating func add(_ d: PortMatch?, _ s: PortMatch?) {
        if let d {
            destinationPorts += d.range.count <= 16 ? Array(d.range) : [d.range.lowerBound]
            portsInverted = portsInverted || d.inverted
        }
        if let s {
            sourcePorts += s.range.count <= 16 ? Array(s.range) : [s.range.lowerBound]
            portsInverted = portsInverted || s.inverted
        }
    }

    /// ` for port 32000` / ` for 9.9.0.0/16`: what narrows a capture, when something does.
    var scopeSuffix: String {
        var parts: [String] = []
        if !destinationPorts.isEmpty, !portsInverted {
            parts.append((destinationPorts.count == 1 ? "port " : "ports ") + destinationPorts.map(String.init).joined(separator: ","))
        }
        if let d = destination, !d.isWildcard, !d.inverted, !IstioRoles.isLoopback(d) { parts.append(d.cidrText) }
        return parts.isEmpty ? "" : " for " + parts.joined(separator: " ")
    }

    var destinationSuffix: String {
        guard let d = destination, !d.isWildcard, !d.inverted else { return "" }
        return " for " + d.cidrText
    }
}
