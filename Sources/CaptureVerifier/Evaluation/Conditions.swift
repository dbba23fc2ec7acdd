import NetfilterModel

/// One condition of a rule: the packet field it tests and the values that satisfy it, defined once here for
/// every match iptaudit understands. The symbolic evaluator turns it into atoms, the concrete evaluator tests a
/// packet's value, the packet space takes its cut points from it, and the tracer reports it per condition.
/// A rule matches a packet when every condition holds.
struct Condition: Sendable {
    enum Test: Sendable {
        /// The field's value (protocol, address, port, owner id) lies in one of the ranges.
        case ranges(PacketField, [ClosedRange<UInt128>])
        /// `-i`/`-o`; the match carries its own inversion (`inverted` is false).
        case interface(PacketField, InterfaceMatch)
        /// `--mark`/`--connmark`; the match carries its own inversion (`inverted` is false).
        case mark(PacketField, MarkMatch)
        case states(ConntrackStates)
        /// `multiport --ports`: the source or the destination port is in the list.
        case eitherPort([ClosedRange<UInt128>])
        /// A condition iptaudit does not evaluate (decided by an assumption).
        case notEvaluated
    }

    /// What the tracer says about the condition: which kind of value it compares.
    enum Kind: String, Sendable {
        case address, interface, port, ports, identity, mark, state, `protocol`, notEvaluated
    }

    var test: Test
    var kind: Kind
    var inverted = false
    /// As iptables-save spells it: `! --dport 15008`, `-o lo`, `--uid-owner 1337`.
    var spelling: String
    /// The values the condition wants, as iptables-save prints them: `15008`, `127.0.0.6/32`, `0x539/0xfff`.
    var wanted: String
    /// What iptaudit cannot evaluate in it, named for assumptions (`tcp --tcp-flags`); the rule then matches only
    /// under an assumption. A condition can be evaluated in part (`--ctstate` with SNAT/DNAT) and still name one.
    var unevaluated: String?

    /// The evaluable part on one concrete packet (true for a condition iptaudit does not evaluate). A packet
    /// without a socket owner satisfies no owner condition.
    func holds(for p: Packet) -> Bool {
        switch test {
        case .ranges(let f, let ranges):
            guard let v = p.value(f) else { return false }
            return ranges.contains { $0.contains(v) } != inverted
        case .interface(let f, let m):
            return m.matches((f == .inInterface ? p.inInterface : p.outInterface) ?? "")
        case .mark(let f, let m):
            return m.matches(f == .mark ? p.mark : p.connmark)
        case .states(let s):
            return s.contains(p.state.bit) != inverted
        case .eitherPort(let ranges):
            let hit = ranges.contains { $0.contains(UInt128(p.sourcePort)) || $0.contains(UInt128(p.destinationPort)) }
            return hit != inverted
        case .notEvaluated:
            return true
        }
    }

    /// Whether the packet's value is inside the un-inverted condition (what the tracer reports as in/not in).
    func inside(for p: Packet) -> Bool {
        switch test {
        case .interface(let f, let m): m.matches((f == .inInterface ? p.inInterface : p.outInterface) ?? "") != m.inverted
        case .mark(let f, let m): ((f == .mark ? p.mark : p.connmark) & m.mask) == m.value
        default: holds(for: p) != inverted
        }
    }

    /// The packets satisfying the evaluable part, as atoms of one field (nil for `eitherPort` and unevaluated).
    func atoms(in space: PacketSpace) -> (field: PacketField, atoms: AtomSet)? {
        switch test {
        case .ranges(let f, let ranges):
            let set = space.atoms(f, inRanges: ranges)
            return (f, inverted ? set.complement : set)
        case .interface(let f, let m):
            return (f, space.atoms(f, interfaces: m.matches))
        case .mark(let f, let m):
            return (f, space.atoms(f, marks: m.matches))
        case .states(let s):
            let set = space.atoms(states: ConntrackState.allCases.filter { s.contains($0.bit) })
            return (.ctState, inverted ? set.complement : set)
        case .eitherPort, .notEvaluated:
            return nil
        }
    }
}

extension Packet {
    /// A numeric field's value; nil for an owner the packet does not have.
    func value(_ f: PacketField) -> UInt128? {
        switch f {
        case .l4Protocol: UInt128(protocolNumber)
        case .source: source.value
        case .destination: destination.value
        case .sourcePort: UInt128(sourcePort)
        case .destinationPort: UInt128(destinationPort)
        case .uid: uid.map { UInt128($0) }
        case .gid: gid.map { UInt128($0) }
        case .mark: UInt128(mark)
        case .connmark: UInt128(connmark)
        case .inInterface, .outInterface, .ctState: nil
        }
    }
}

extension Rule {
    /// The rule's conditions for one family, in the order iptables-save prints them. `spelled: false` leaves
    /// `spelling` and `wanted` empty (the evaluators never print them; a 100,000-rule table need not build them).
    func conditions(family: Family, spelled: Bool = true) -> [Condition] {
        var out: [Condition] = []
        func condition(_ test: Condition.Test, _ kind: Condition.Kind, inverted: Bool = false, spelling: @autoclosure () -> String,
                       wanted: @autoclosure () -> String, unevaluated: String? = nil) {
            out.append(Condition(test: test, kind: kind, inverted: inverted, spelling: spelled ? spelling() : "",
                                 wanted: spelled ? wanted() : "", unevaluated: unevaluated))
        }
        func not(_ inverted: Bool) -> String { inverted ? "! " : "" }
        func portText(_ r: ClosedRange<UInt16>) -> String {
            r.lowerBound == r.upperBound ? "\(r.lowerBound)" : "\(r.lowerBound):\(r.upperBound)"
        }
        func unevaluated(_ spelling: @autoclosure () -> String, _ name: String) {
            condition(.notEvaluated, .notEvaluated, spelling: spelling(), wanted: "", unevaluated: name)
        }
        func address(_ f: PacketField, _ a: AddressMatch?, option: String) {
            guard let a, !a.isWildcard else { return }
            guard a.address.family == family, let interval = a.interval else {
                unevaluated(not(a.inverted) + "\(option) \(a.cidrText)", "\(option) \(a.cidrText)")
                return
            }
            condition(.ranges(f, [interval]), .address, inverted: a.inverted, spelling: not(a.inverted) + "\(option) \(a.cidrText)",
                      wanted: a.cidrText)
        }
        func interface(_ f: PacketField, _ m: InterfaceMatch?, option: String) {
            guard let m else { return }
            condition(.interface(f, m), .interface, spelling: not(m.inverted) + "\(option) \(m.text)", wanted: m.text)
        }
        func `protocol`(_ number: UInt16, inverted: Bool, spelling: @autoclosure () -> String) {
            condition(.ranges(.l4Protocol, [UInt128(number)...UInt128(number)]), .protocol,
                      inverted: inverted, spelling: spelling(), wanted: SaveSyntax.protocolName(number))
        }
        func port(_ f: PacketField, _ m: PortMatch?, option: String) {
            guard let m, !m.isFullRange || m.inverted else { return }
            condition(.ranges(f, [UInt128(m.range.lowerBound)...UInt128(m.range.upperBound)]), .port,
                      inverted: m.inverted, spelling: not(m.inverted) + "\(option) \(portText(m.range))", wanted: portText(m.range))
        }
        func id(_ f: PacketField, _ m: IDRangeMatch?, option: String) {
            guard let m else { return }
            func text() -> String {
                m.range.lowerBound == m.range.upperBound ? "\(m.range.lowerBound)" : "\(m.range.lowerBound)-\(m.range.upperBound)"
            }
            condition(.ranges(f, [UInt128(m.range.lowerBound)...UInt128(m.range.upperBound)]), .identity,
                      inverted: m.inverted, spelling: not(m.inverted) + "\(option) \(text())", wanted: text())
        }
        func mark(_ f: PacketField, _ m: MarkMatch, option: String) {
            func text() -> String { "0x" + String(m.value, radix: 16) + (m.mask == 0xFFFF_FFFF ? "" : "/0x" + String(m.mask, radix: 16)) }
            condition(.mark(f, m), .mark, spelling: not(m.inverted) + "\(option) \(text())", wanted: text())
        }
        func states(_ s: ConntrackStates, inverted: Bool, option: String, unmodelled: String) {
            func names() -> String { ConntrackState.allCases.filter { s.contains($0.bit) }.map(\.rawValue).joined(separator: ",") }
            let modelled: ConntrackStates = [.new, .established, .related, .invalid, .untracked]
            condition(.states(s), .state, inverted: inverted, spelling: not(inverted) + "\(option) \(names())",
                      wanted: names(), unevaluated: s.subtracting(modelled).isEmpty ? nil : unmodelled)
        }

        address(.source, source, option: "-s")
        address(.destination, destination, option: "-d")
        interface(.inInterface, inInterface, option: "-i")
        interface(.outInterface, outInterface, option: "-o")
        if let p = self.protocol, p.number != 0 {
            `protocol`(p.number, inverted: p.inverted, spelling: not(p.inverted) + "-p \(SaveSyntax.protocolName(p.number))")
        }
        if fragment != nil { unevaluated("-f", "-f") }
        for m in matches {
            switch m {
            case .tcp(let t):
                // The match implies the protocol; said only when `-p tcp` does not already.
                if self.protocol?.number != ProtocolMatch.tcp || self.protocol?.inverted == true {
                    `protocol`(ProtocolMatch.tcp, inverted: false, spelling: "-m tcp")
                }
                port(.sourcePort, t.sourcePort, option: "--sport")
                port(.destinationPort, t.destinationPort, option: "--dport")
                if t.flags != nil { unevaluated("--tcp-flags", "tcp --tcp-flags") }
                if t.option != nil { unevaluated("--tcp-option", "tcp --tcp-option") }
            case .udp(let u):
                if self.protocol?.number != ProtocolMatch.udp || self.protocol?.inverted == true {
                    `protocol`(ProtocolMatch.udp, inverted: false, spelling: "-m udp")
                }
                port(.sourcePort, u.sourcePort, option: "--sport")
                port(.destinationPort, u.destinationPort, option: "--dport")
            case .multiport(let mp):
                let ranges = mp.ports.map { UInt128($0.lowerBound)...UInt128($0.upperBound) }
                func list() -> String { mp.ports.map(portText).joined(separator: ",") }
                let (test, option): (Condition.Test, String) = switch mp.direction {
                case .source: (.ranges(.sourcePort, ranges), "--sports")
                case .destination: (.ranges(.destinationPort, ranges), "--dports")
                case .either: (.eitherPort(ranges), "--ports")
                }
                condition(test, .ports, inverted: mp.inverted, spelling: not(mp.inverted) + "\(option) \(list())", wanted: list())
            case .owner(let o):
                id(.uid, o.uid, option: "--uid-owner")
                id(.gid, o.gid, option: "--gid-owner")
                if o.gid != nil, o.supplementaryGroups { unevaluated("--suppl-groups", "owner --suppl-groups") }
                if o.socketExists != nil { unevaluated("--socket-exists", "owner --socket-exists") }
            case .mark(let mm): mark(.mark, mm, option: "--mark")
            case .connmark(let mm): mark(.connmark, mm, option: "--connmark")
            case .conntrack(let c):
                if let s = c.states { states(s.value, inverted: s.inverted, option: "--ctstate", unmodelled: "conntrack --ctstate SNAT/DNAT") }
                if let l4 = c.l4Protocol {
                    `protocol`(l4.value, inverted: l4.inverted, spelling: not(l4.inverted) + "--ctproto \(SaveSyntax.protocolName(l4.value))")
                }
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
                if !other.isEmpty { unevaluated("conntrack " + other.joined(separator: " "), "conntrack " + other.joined(separator: " ")) }
            case .state(let s):
                states(s.states, inverted: s.inverted, option: "--state", unmodelled: "state SNAT/DNAT")
            case .comment:
                break
            case .addrtype, .statistic, .set, .socket, .mac, .unrecognized:
                unevaluated("-m \(m.name)", m.name)
            }
        }
        return out
    }
}
