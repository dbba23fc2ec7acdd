extension NftTable {
    /// `inet istio-proxy-nat`: how nft names the table, and how iptaudit's tables, steps and findings name it.
    public var qualifiedName: TableName { TableName("\(family.rawValue) \(name)") }

    /// The IP families the table's chains see: an `inet` table both, `ip` and `ip6` one; arp, bridge and netdev
    /// tables sit outside the IP hooks capture is decided at.
    public var ipFamilies: [Family] {
        switch family {
        case .ip: [.ipv4]
        case .ip6: [.ipv6]
        case .inet: [.ipv4, .ipv6]
        case .arp, .bridge, .netdev: []
        }
    }

    /// The table in iptaudit's model, once per IP family it serves. Base chains keep their hook, priority, type
    /// and policy. Each rule's statements become iptables' matches and targets where the meaning is the same
    /// (`oifname` → `-o`, `ip daddr` → `-d`, `skuid` → owner, `tcp dport != { … }` → multiport, `redirect to
    /// :N` → REDIRECT, `tproxy … meta mark set` → TPROXY, `dnat`/`snat to` → DNAT/SNAT, `masquerade`, `notrack`,
    /// `ct mark`/`ct zone`/`ct state`, `meta mark`, `counter`,
    /// jump/goto/return/accept/drop); anything else is kept as an unrecognized match or target named by its nft
    /// text, which the verifier evaluates both ways and flags. A rule that can only match the other family
    /// (`ip daddr` in the IPv6 view of an inet table) is left out of that family's view.
    public func normalized() -> [Table] {
        ipFamilies.map { family in
            var table = Table(family: family, name: qualifiedName, chains: chains.map { chain in
                var registration: HookRegistration?
                var policy: Policy?
                if let base = chain.base {
                    registration = HookRegistration(hook: base.hook, priority: base.priority, type: base.type)
                    policy = base.policy == .drop ? .drop : .accept
                }
                let rules = chain.rules.flatMap { NftNormalizer(family: family).rules(for: $0) }
                return Chain(name: ChainName(chain.name), policy: policy, rules: rules, registration: registration)
            })
            table.nativeFamily = self.family
            return table
        }
    }
}

/// Maps one nft rule's statements onto iptables' vocabulary for one IP family.
struct NftNormalizer {
    let family: Family

    /// The model rules of one nft rule: one, or none when it can only match the other family. A rule that sets
    /// a mark and then decides (`meta mark set 0x1 accept`) becomes the effect followed by the verdict, both
    /// under its conditions, unless a condition reads what the effect writes (then it is kept unrecognized).
    func rules(for nft: NftRule) -> [Rule] {
        var rule = Rule()
        var actions: [Target] = []
        var readsMarks = false
        let native = NativeRule(handle: nft.handle, text: NftSyntax.render(nft))
        func unknownTarget() -> [Rule] {
            var r = rule
            r.target = .unrecognized(UnrecognizedExtension(name: "nft", arguments: [native.text]))
            r.native = native
            return [r]
        }
        for statement in nft.statements {
            switch statement {
            case .counter(let c):
                rule.counters = Counters(packets: c.packets, bytes: c.bytes)
            case .namedCounter:
                break
            case .match(let m):
                switch apply(m, to: &rule) {
                case .mapped: break
                case .neverInThisFamily: return []
                case .unmapped:
                    rule.matches.append(.unrecognized(UnrecognizedExtension(name: NftSyntax.render(statement))))
                }
                if case .meta("mark") = m.left { readsMarks = true }
                if case .ct("mark", _) = m.left { readsMarks = true }
                if case .binary(_, .meta("mark"), _) = m.left { readsMarks = true }
                if case .binary(_, .ct("mark", _), _) = m.left { readsMarks = true }
            case .verdict(let v):
                switch v {
                case .accept:
                    // `tproxy … accept`: TPROXY already accepts.
                    if case .tproxy = actions.last { continue }
                    actions.append(.accept)
                case .drop: actions.append(.drop)
                case .return: actions.append(.return)
                case .continue: break
                case .jump(let c): actions.append(.jump(ChainName(c)))
                case .goto(let c): actions.append(.goto(ChainName(c)))
                }
            case .metaSet(key: "mark", value: let value):
                if case .integer(let v) = value {
                    if case .tproxy(var t) = actions.last {
                        // Istio writes TPROXY's mark as a separate statement: one TPROXY --tproxy-mark.
                        t.markValue = UInt32(truncatingIfNeeded: v)
                        t.markMask = 0xFFFF_FFFF
                        actions[actions.count - 1] = .tproxy(t)
                    } else {
                        actions.append(.mark(MarkTarget(value: UInt32(truncatingIfNeeded: v))))
                    }
                } else if case .ct(key: "mark", _) = value {
                    actions.append(.connmark(ConnmarkTarget(mode: .restore(nfmask: 0xFFFF_FFFF, ctmask: 0xFFFF_FFFF))))
                } else {
                    return unknownTarget()
                }
            case .ctSet(key: "mark", direction: nil, value: let value):
                if case .meta(key: "mark") = value {
                    actions.append(.connmark(ConnmarkTarget(mode: .save(nfmask: 0xFFFF_FFFF, ctmask: 0xFFFF_FFFF))))
                } else if case .integer(let v) = value {
                    actions.append(.connmark(ConnmarkTarget(mode: .set(value: UInt32(truncatingIfNeeded: v), mask: 0xFFFF_FFFF))))
                } else if let (value, mask) = Self.maskedConnmark(value) {
                    actions.append(.connmark(ConnmarkTarget(mode: .set(value: value, mask: mask))))
                } else {
                    return unknownTarget()
                }
            case .ctSet(key: "zone", direction: nil, value: .integer(let z)):
                actions.append(.ct(CTTarget(zone: UInt16(truncatingIfNeeded: z))))
            case .notrack:
                actions.append(.ct(CTTarget(notrack: true)))
            case .redirect(let nat) where nat.address == nil && nat.flags.isEmpty:
                if let port = nat.port {
                    guard let p = portRange(port) else { return unknownTarget() }
                    actions.append(.redirect(PortRewriteTarget(ports: p)))
                } else {
                    actions.append(.redirect(PortRewriteTarget()))
                }
            case .dnat(let nat), .snat(let nat):
                // `dnat to 10.9.9.9:8080`, `snat ip to 192.0.2.1`: one address and an optional port (range). The
                // kernel skips a NAT statement of the other family and goes on with the rule's other statements.
                if let f = nat.family, !matchesFamily(f) { continue }
                guard nat.typeFlags.isEmpty, let target = natTarget(nat) else { return unknownTarget() }
                if let a = target.range?.minAddress, a.family != family { continue }
                if case .dnat = statement { actions.append(.dnat(target)) } else { actions.append(.snat(target)) }
            case .masquerade(let nat) where nat.address == nil && nat.typeFlags.isEmpty:
                guard let flags = natFlags(nat.flags) else { return unknownTarget() }
                let ports = nat.port.flatMap(portRange)
                if nat.port != nil && ports == nil { return unknownTarget() }
                actions.append(.masquerade(PortRewriteTarget(ports: ports, random: flags.random, randomFully: flags.randomFully)))
            case .tproxy(let t):
                guard let port = t.port.flatMap(portRange), port.lowerBound == port.upperBound else { return unknownTarget() }
                let any = family == .ipv4 ? IPAddress("0.0.0.0")! : IPAddress("::")!
                var address = any
                if let a = t.address {
                    guard case .string(let text) = a, let parsed = IPAddress(text) else { return unknownTarget() }
                    address = parsed
                }
                actions.append(.tproxy(TProxyTarget(port: port.lowerBound, address: address, markValue: 0, markMask: 0)))
            default:
                return unknownTarget()
            }
        }
        rule.native = native
        guard let last = actions.last else { return [rule] }
        if actions.count == 1 {
            rule.target = last
            return [rule]
        }
        // Several actions under one set of conditions: equivalent to one rule per action only when no action
        // changes what the conditions read.
        let changesMarks = actions.dropLast().contains { if case .mark = $0 { true } else if case .connmark = $0 { true } else { false } }
        if changesMarks && readsMarks { return unknownTarget() }
        return actions.map { var r = rule; r.target = $0; return r }
    }

    enum Mapping { case mapped, unmapped, neverInThisFamily }

    func apply(_ m: NftMatch, to rule: inout Rule) -> Mapping {
        let inverted: Bool
        switch m.op {
        case .equal, .implicit: inverted = false
        case .notEqual: inverted = true
        default: return .unmapped
        }
        switch m.left {
        case .meta(key: "l4proto"), .payload(.field(protocol: "ip", field: "protocol")), .payload(.field(protocol: "ip6", field: "nexthdr")):
            if case .payload(.field(protocol: let p, _)) = m.left, !matchesFamily(p) { return .neverInThisFamily }
            guard let number = protocolNumber(m.right) else { return .unmapped }
            guard rule.protocol == nil else { return .unmapped }
            rule.protocol = ProtocolMatch(number, inverted: inverted)
            return .mapped
        case .meta(key: "nfproto"):
            guard case .string(let f) = m.right else { return .unmapped }
            let ours = family == .ipv4 ? "ipv4" : "ipv6"
            return (f == ours) != inverted ? .mapped : .neverInThisFamily
        case .payload(.field(protocol: let proto, field: let field)) where proto == "ip" || proto == "ip6":
            guard matchesFamily(proto) else { return .neverInThisFamily }
            guard field == "saddr" || field == "daddr", let address = addressMatch(m.right, inverted: inverted) else { return .unmapped }
            if field == "saddr" {
                guard rule.source == nil else { return .unmapped }
                rule.source = address
            } else {
                guard rule.destination == nil else { return .unmapped }
                rule.destination = address
            }
            return .mapped
        case .payload(.field(protocol: let proto, field: let field)) where (proto == "tcp" || proto == "udp") && (field == "dport" || field == "sport"):
            return ports(proto: proto, field: field, m.right, inverted: inverted, rule: &rule)
        case .meta(key: let key) where key == "iifname" || key == "oifname":
            guard case .string(let name) = m.right else { return .unmapped }
            let match = name.hasSuffix("*") ? InterfaceMatch(name: String(name.dropLast()), wildcard: true, inverted: inverted)
                : InterfaceMatch(name: name, wildcard: false, inverted: inverted)
            if key == "iifname" {
                guard rule.inInterface == nil else { return .unmapped }
                rule.inInterface = match
            } else {
                guard rule.outInterface == nil else { return .unmapped }
                rule.outInterface = match
            }
            return .mapped
        case .meta(key: let key) where key == "skuid" || key == "skgid":
            guard let range = idRange(m.right) else { return .unmapped }
            let id = IDRangeMatch(range, inverted: inverted)
            rule.matches.append(.owner(key == "skuid" ? OwnerMatch(uid: id) : OwnerMatch(gid: id)))
            return .mapped
        case .meta(key: "mark"), .binary(.and, .meta(key: "mark"), _):
            guard let mark = markMatch(m.left, m.right, inverted: inverted) else { return .unmapped }
            rule.matches.append(.mark(mark))
            return .mapped
        case .ct(key: "mark", direction: nil), .binary(.and, .ct(key: "mark", direction: nil), _):
            guard let mark = markMatch(m.left, m.right, inverted: inverted) else { return .unmapped }
            rule.matches.append(.connmark(mark))
            return .mapped
        case .ct(key: "state", direction: nil):
            guard let states = conntrackStates(m.right) else { return .unmapped }
            rule.matches.append(.conntrack(ConntrackMatch(states: .init(states, inverted: inverted))))
            return .mapped
        default:
            return .unmapped
        }
    }

    func matchesFamily(_ proto: String) -> Bool { proto == (family == .ipv4 ? "ip" : "ip6") }

    func protocolNumber(_ e: NftExpression) -> UInt16? {
        switch e {
        case .integer(let i): UInt16(exactly: i)
        case .string(let s): ["tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132][s] ?? UInt16(s)
        default: nil
        }
    }

    func addressMatch(_ e: NftExpression, inverted: Bool) -> AddressMatch? {
        switch e {
        case .string(let s):
            guard let a = IPAddress(s), a.family == family else { return nil }
            return AddressMatch(address: a, prefixLength: family.addressBits, inverted: inverted)
        case .prefix(address: .string(let s), length: let n):
            guard let a = IPAddress(s), a.family == family else { return nil }
            return AddressMatch(address: a, prefixLength: n, inverted: inverted)
        default:
            return nil
        }
    }

    /// `snat`/`dnat` arguments as iptables' DNAT/SNAT: an address or address range, ports; nil for anything else
    /// (a map, a set, a prefix), which the rule then keeps undecoded.
    func natTarget(_ nat: NftNAT) -> NATTarget? {
        guard let flags = natFlags(nat.flags) else { return nil }
        var range = NATRange()
        switch nat.address {
        case nil: break
        case .string(let text)?:
            guard let a = IPAddress(text) else { return nil }
            range = NATRange(minAddress: a)
        case .range(.string(let lo), .string(let hi))?:
            guard let a = IPAddress(lo), let b = IPAddress(hi), a.family == b.family, a <= b else { return nil }
            range = NATRange(minAddress: a, maxAddress: b)
        default: return nil
        }
        if let port = nat.port {
            guard let p = portRange(port) else { return nil }
            range.ports = p
        }
        return NATTarget(range: range.minAddress == nil && range.ports == nil ? nil : range,
                         random: flags.random, randomFully: flags.randomFully, persistent: flags.persistent)
    }

    /// nft's NAT flags as iptables' options; nil for one iptables has not.
    func natFlags(_ flags: [String]) -> (random: Bool, randomFully: Bool, persistent: Bool)? {
        var r = (random: false, randomFully: false, persistent: false)
        for f in flags {
            switch f {
            case "random": r.random = true
            case "fully-random": r.randomFully = true
            case "persistent": r.persistent = true
            default: return nil
            }
        }
        return r
    }

    func portRange(_ e: NftExpression) -> ClosedRange<UInt16>? {
        switch e {
        case .integer(let i): UInt16(exactly: i).map { $0...$0 }
        case .range(.integer(let a), .integer(let b)):
            if let lo = UInt16(exactly: a), let hi = UInt16(exactly: b), lo <= hi { lo...hi } else { nil }
        default: nil
        }
    }

    func ports(proto: String, field: String, _ e: NftExpression, inverted: Bool, rule: inout Rule) -> Mapping {
        let number: UInt16 = proto == "tcp" ? ProtocolMatch.tcp : ProtocolMatch.udp
        if let r = portRange(e) {
            let port = PortMatch(r, inverted: inverted)
            if proto == "tcp" {
                var t = TCPMatch()
                if let i = rule.matches.firstIndex(where: { if case .tcp = $0 { true } else { false } }), case .tcp(let existing) = rule.matches[i] {
                    t = existing
                    rule.matches.remove(at: i)
                }
                if field == "dport" { guard t.destinationPort == nil else { return .unmapped }; t.destinationPort = port }
                else { guard t.sourcePort == nil else { return .unmapped }; t.sourcePort = port }
                rule.matches.append(.tcp(t))
            } else {
                var u = UDPMatch()
                if let i = rule.matches.firstIndex(where: { if case .udp = $0 { true } else { false } }), case .udp(let existing) = rule.matches[i] {
                    u = existing
                    rule.matches.remove(at: i)
                }
                if field == "dport" { guard u.destinationPort == nil else { return .unmapped }; u.destinationPort = port }
                else { guard u.sourcePort == nil else { return .unmapped }; u.sourcePort = port }
                rule.matches.append(.udp(u))
            }
            return .mapped
        }
        guard case .set(let items) = e else { return .unmapped }
        let ranges = items.compactMap(portRange)
        guard ranges.count == items.count, !ranges.isEmpty else { return .unmapped }
        // The header field implies its protocol, as nft's dependency does.
        if rule.protocol?.number != number || rule.protocol?.inverted == true {
            rule.matches.append(number == ProtocolMatch.tcp ? .tcp(TCPMatch()) : .udp(UDPMatch()))
        }
        rule.matches.append(.multiport(MultiportMatch(direction: field == "dport" ? .destination : .source, ports: ranges, inverted: inverted)))
        return .mapped
    }

    func idRange(_ e: NftExpression) -> ClosedRange<UInt32>? {
        switch e {
        case .integer(let i): UInt32(exactly: i).map { $0...$0 }
        case .string(let s): UInt32(s).map { $0...$0 }
        case .range(let a, let b):
            if let lo = idRange(a)?.lowerBound, let hi = idRange(b)?.lowerBound, lo <= hi { lo...hi } else { nil }
        default: nil
        }
    }

    /// `ct mark set ct mark & KEEP | V` (also without `| V`) as CONNMARK `--set-xmark V/MASK`: the bits outside
    /// `MASK` are the ones kept from the old connmark. Istio's ambient rules set 0x111 in the low 12 bits this way.
    static func maskedConnmark(_ e: NftExpression) -> (value: UInt32, mask: UInt32)? {
        func int(_ e: NftExpression) -> UInt32? { if case .integer(let i) = e { UInt32(exactly: i) } else { nil } }
        var value: UInt32 = 0
        var kept = e
        if case .binary(.or, let l, let r) = e, let v = int(r) {
            value = v
            kept = l
        }
        guard case .binary(.and, .ct(key: "mark", direction: nil), let k) = kept, let keep = int(k) else { return nil }
        return (value, ~(keep & ~value))
    }

    func markMatch(_ left: NftExpression, _ right: NftExpression, inverted: Bool) -> MarkMatch? {
        guard case .integer(let v) = right, let value = UInt32(exactly: v) else { return nil }
        var mask: UInt32 = 0xFFFF_FFFF
        if case .binary(.and, _, let m) = left {
            guard case .integer(let mv) = m, let mm = UInt32(exactly: mv) else { return nil }
            mask = mm
        }
        return MarkMatch(value: value, mask: mask, inverted: inverted)
    }

    func conntrackStates(_ e: NftExpression) -> ConntrackStates? {
        let names: [String]
        switch e {
        case .string(let s): names = [s]
        case .list(let items):
            var out: [String] = []
            for i in items { guard case .string(let s) = i else { return nil }; out.append(s) }
            names = out
        default: return nil
        }
        var states: ConntrackStates = []
        for n in names {
            switch n {
            case "new": states.insert(.new)
            case "established": states.insert(.established)
            case "related": states.insert(.related)
            case "invalid": states.insert(.invalid)
            case "untracked": states.insert(.untracked)
            default: return nil
            }
        }
        return states
    }
}
