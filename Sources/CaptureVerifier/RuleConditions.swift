import NetfilterModel

/// A rule's conditions as cubes over the packet space: the rule matches the union of `cubes` (disjoint),
/// and, when `unknown` is not empty, only if the conditions iptaudit cannot evaluate also hold.
struct CompiledRule: Sendable {
    var cubes: [Cube]
    var unknown: [String]
    /// The target as the trace names an effect or NAT verdict ("DNAT --to-destination ..."), when it has one.
    var effect: String? = nil
}

extension PacketSpace {
    func compile(_ rule: Rule) -> CompiledRule {
        var cubes = [universe]
        var unknown: [String] = []
        func restrict(_ f: PacketField, _ atoms: AtomSet) {
            for i in cubes.indices { cubes[i][f] = cubes[i][f] & atoms }
        }
        func maybeInvert(_ set: AtomSet, _ inverted: Bool) -> AtomSet { inverted ? set.complement : set }
        func address(_ f: PacketField, _ a: AddressMatch?, option: String) {
            guard let a, !a.isWildcard else { return }
            guard a.address.family == family, a.interval != nil else {
                unknown.append("\(option) \(a.cidrText)")
                return
            }
            restrict(f, maybeInvert(atoms(f, inside: [a]), a.inverted))
        }
        func ports(_ f: PacketField, _ p: PortMatch?) {
            guard let p else { return }
            let inside = atoms(f, inRanges: [UInt128(p.range.lowerBound)...UInt128(p.range.upperBound)])
            restrict(f, maybeInvert(inside, p.inverted))
        }
        func ids(_ f: PacketField, _ r: IDRangeMatch?) {
            guard let r else { return }
            let inside = atoms(f, inRanges: [UInt128(r.range.lowerBound)...UInt128(r.range.upperBound)])
            restrict(f, maybeInvert(inside, r.inverted))
        }
        func states(_ s: ConntrackStates, inverted: Bool, option: String) {
            let modelled: ConntrackStates = [.new, .established, .related, .invalid, .untracked]
            if !s.subtracting(modelled).isEmpty { unknown.append(option) }
            let inside = atoms(states: ConntrackState.allCases.filter { s.contains($0.bit) })
            restrict(.ctState, maybeInvert(inside, inverted))
        }

        address(.source, rule.source, option: "-s")
        address(.destination, rule.destination, option: "-d")
        if let i = rule.inInterface { restrict(.inInterface, atoms(.inInterface, interfaces: i.matches)) }
        if let o = rule.outInterface { restrict(.outInterface, atoms(.outInterface, interfaces: o.matches)) }
        if let p = rule.protocol, p.number != 0 { restrict(.l4Protocol, maybeInvert(atoms(protocols: [p.number]), p.inverted)) }
        if rule.fragment != nil { unknown.append("-f") }

        for m in rule.matches {
            switch m {
            case .tcp(let t):
                restrict(.l4Protocol, atoms(protocols: [ProtocolMatch.tcp]))
                ports(.sourcePort, t.sourcePort)
                ports(.destinationPort, t.destinationPort)
                if t.flags != nil { unknown.append("tcp --tcp-flags") }
                if t.option != nil { unknown.append("tcp --tcp-option") }
            case .udp(let u):
                restrict(.l4Protocol, atoms(protocols: [ProtocolMatch.udp]))
                ports(.sourcePort, u.sourcePort)
                ports(.destinationPort, u.destinationPort)
            case .multiport(let mp):
                let ranges = mp.ports.map { UInt128($0.lowerBound)...UInt128($0.upperBound) }
                let sp = atoms(.sourcePort, inRanges: ranges)
                let dp = atoms(.destinationPort, inRanges: ranges)
                switch (mp.direction, mp.inverted) {
                case (.source, let inv): restrict(.sourcePort, maybeInvert(sp, inv))
                case (.destination, let inv): restrict(.destinationPort, maybeInvert(dp, inv))
                case (.either, true):
                    restrict(.sourcePort, sp.complement)
                    restrict(.destinationPort, dp.complement)
                case (.either, false):
                    // Either side in the list: two disjoint cubes.
                    cubes = cubes.flatMap { c -> [PacketBox] in
                        var a = c, b = c
                        a[.sourcePort] = c[.sourcePort] & sp
                        b[.sourcePort] = c[.sourcePort].subtracting(sp)
                        b[.destinationPort] = c[.destinationPort] & dp
                        return [a, b]
                    }
                }
            case .owner(let o):
                ids(.uid, o.uid)
                ids(.gid, o.gid)
                if o.gid != nil, o.supplementaryGroups { unknown.append("owner --suppl-groups") }
                if o.socketExists != nil { unknown.append("owner --socket-exists") }
            case .mark(let mm):
                restrict(.mark, atoms(.mark, marks: mm.matches))
            case .connmark(let mm):
                restrict(.connmark, atoms(.connmark, marks: mm.matches))
            case .conntrack(let c):
                if let s = c.states { states(s.value, inverted: s.inverted, option: "conntrack --ctstate SNAT/DNAT") }
                if let l4 = c.l4Protocol { restrict(.l4Protocol, maybeInvert(atoms(protocols: [l4.value]), l4.inverted)) }
                var other: [String] = []
                if c.originalSource != nil { other.append("--ctorigsrc") }
                if c.originalDestination != nil { other.append("--ctorigdst") }
                if c.replySource != nil { other.append("--ctreplsrc") }
                if c.replyDestination != nil { other.append("--ctrepldst") }
                if c.originalSourcePort != nil { other.append("--ctorigsrcport") }
                if c.originalDestinationPort != nil { other.append("--ctorigdstport") }
                if c.replySourcePort != nil { other.append("--ctreplsrcport") }
                if c.replyDestinationPort != nil { other.append("--ctrepldstport") }
                if c.status != nil { other.append("--ctstatus") }
                if c.expires != nil { other.append("--ctexpire") }
                if c.direction != nil { other.append("--ctdir") }
                if !other.isEmpty { unknown.append("conntrack " + other.joined(separator: " ")) }
            case .state(let s):
                states(s.states, inverted: s.inverted, option: "state SNAT/DNAT")
            case .comment:
                break
            case .addrtype, .statistic, .set, .socket, .mac, .unrecognized:
                unknown.append(m.name)
            }
        }
        return CompiledRule(cubes: cubes.filter { !$0.isEmpty }.map(Cube.init), unknown: unknown)
    }
}

/// The same conditions on one concrete packet. Kept separate from the cube compiler on purpose: the concrete
/// tracer is the independent check of the symbolic evaluator. Returns nil when an unknown match decides.
enum ConcreteMatch {
    static func matches(_ rule: Rule, _ p: Packet) -> (known: Bool, unknown: [String]) {
        var unknown: [String] = []
        func address(_ a: AddressMatch?, _ value: IPAddress, option: String) -> Bool {
            guard let a, !a.isWildcard else { return true }
            guard a.address.family == p.family, a.mask.prefixLength != nil else {
                unknown.append("\(option) \(a.cidrText)")
                return true
            }
            return a.contains(value) != a.inverted
        }
        func port(_ m: PortMatch?, _ v: UInt16) -> Bool { m.map { $0.matches(v) } ?? true }
        func id(_ m: IDRangeMatch?, _ v: UInt32?) -> Bool {
            guard let m else { return true }
            guard let v else { return false }
            return m.range.contains(v) != m.inverted
        }
        func states(_ s: ConntrackStates, inverted: Bool, option: String) -> Bool {
            let modelled: ConntrackStates = [.new, .established, .related, .invalid, .untracked]
            if !s.subtracting(modelled).isEmpty { unknown.append(option) }
            return s.contains(p.state.bit) != inverted
        }
        var ok = address(rule.source, p.source, option: "-s") && address(rule.destination, p.destination, option: "-d")
        if let i = rule.inInterface { ok = ok && i.matches(p.inInterface ?? "") }
        if let o = rule.outInterface { ok = ok && o.matches(p.outInterface ?? "") }
        if let pr = rule.protocol, pr.number != 0 { ok = ok && pr.matches(p.protocolNumber) }
        if rule.fragment != nil { unknown.append("-f") }
        for m in rule.matches {
            switch m {
            case .tcp(let t):
                ok = ok && p.protocolNumber == ProtocolMatch.tcp && port(t.sourcePort, p.sourcePort) && port(t.destinationPort, p.destinationPort)
                if t.flags != nil { unknown.append("tcp --tcp-flags") }
                if t.option != nil { unknown.append("tcp --tcp-option") }
            case .udp(let u):
                ok = ok && p.protocolNumber == ProtocolMatch.udp && port(u.sourcePort, p.sourcePort) && port(u.destinationPort, p.destinationPort)
            case .multiport(let mp):
                let hit: Bool
                switch mp.direction {
                case .source: hit = mp.contains(p.sourcePort)
                case .destination: hit = mp.contains(p.destinationPort)
                case .either: hit = mp.contains(p.sourcePort) || mp.contains(p.destinationPort)
                }
                ok = ok && hit != mp.inverted
            case .owner(let o):
                ok = ok && id(o.uid, p.uid) && id(o.gid, p.gid)
                if o.gid != nil, o.supplementaryGroups { unknown.append("owner --suppl-groups") }
                if o.socketExists != nil { unknown.append("owner --socket-exists") }
            case .mark(let mm): ok = ok && mm.matches(p.mark)
            case .connmark(let mm): ok = ok && mm.matches(p.connmark)
            case .conntrack(let c):
                if let s = c.states { ok = ok && states(s.value, inverted: s.inverted, option: "conntrack --ctstate SNAT/DNAT") }
                if let l4 = c.l4Protocol { ok = ok && (p.protocolNumber == l4.value) != l4.inverted }
                let other = c.originalSource != nil || c.originalDestination != nil || c.replySource != nil
                    || c.replyDestination != nil || c.originalSourcePort != nil || c.originalDestinationPort != nil
                    || c.replySourcePort != nil || c.replyDestinationPort != nil || c.status != nil
                    || c.expires != nil || c.direction != nil
                if other {
                    var names: [String] = []
                    if c.originalSource != nil { names.append("--ctorigsrc") }
                    if c.originalDestination != nil { names.append("--ctorigdst") }
                    if c.replySource != nil { names.append("--ctreplsrc") }
                    if c.replyDestination != nil { names.append("--ctrepldst") }
                    if c.originalSourcePort != nil { names.append("--ctorigsrcport") }
                    if c.originalDestinationPort != nil { names.append("--ctorigdstport") }
                    if c.replySourcePort != nil { names.append("--ctreplsrcport") }
                    if c.replyDestinationPort != nil { names.append("--ctrepldstport") }
                    if c.status != nil { names.append("--ctstatus") }
                    if c.expires != nil { names.append("--ctexpire") }
                    if c.direction != nil { names.append("--ctdir") }
                    unknown.append("conntrack " + names.joined(separator: " "))
                }
            case .state(let s): ok = ok && states(s.states, inverted: s.inverted, option: "state SNAT/DNAT")
            case .comment: break
            case .addrtype, .statistic, .set, .socket, .mac, .unrecognized: unknown.append(m.name)
            }
        }
        return (ok, unknown)
    }
}
