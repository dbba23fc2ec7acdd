import NetfilterModel

/// The append/insert operations istio-iptables feeds to `iptables-restore --noflush` for one family,
/// replayed into the tables a fresh network namespace ends up with.
///
/// Replaying (rather than listing final chains) keeps `-I CHAIN 1` semantics exact: later inserts land
/// above earlier ones, which is why kube-virt interfaces appear in reverse order.
struct RuleProgram {
    let family: Family
    /// 1.14-1.22 `--iptables-trace-logging`: an NFLOG copy of tagged rules sits directly above them.
    let traceLogging: Bool
    private var rules: [TableName: [ChainName: [Rule]]] = [:]

    init(family: Family, traceLogging: Bool) {
        self.family = family
        self.traceLogging = traceLogging
    }

    mutating func append(_ table: TableName, _ chain: ChainName, _ rule: Rule, trace tag: String? = nil) {
        if traceLogging, let tag { place(table, chain, traceRule(rule, tag), at: nil) }
        place(table, chain, rule, at: nil)
    }

    /// `-I CHAIN position` (1-based). A trace rule is inserted after it at the same position, ending up above it.
    mutating func insert(_ table: TableName, _ chain: ChainName, at position: Int, _ rule: Rule, trace tag: String? = nil) {
        place(table, chain, rule, at: position)
        if traceLogging, let tag { place(table, chain, traceRule(rule, tag), at: position) }
    }

    private func traceRule(_ rule: Rule, _ tag: String) -> Rule {
        var r = rule
        r.target = .nflog(NFLogTarget(group: 1337, prefix: tag, length: 20, sizeSet: true))
        return r
    }

    private mutating func place(_ table: TableName, _ chain: ChainName, _ rule: Rule, at position: Int?) {
        // Mutated in place: copying the chain out and back made each placement copy it, quadratic in a flag's
        // list of ports (one rule per port).
        if let position {
            let count = rules[table, default: [:]][chain, default: []].count
            rules[table, default: [:]][chain, default: []].insert(rule, at: min(max(position - 1, 0), count))
        } else {
            rules[table, default: [:]][chain, default: []].append(rule)
        }
        // iptables-restore creates the chains a rule jumps to (1.26+ declares them; older versions only ever
        // jump to chains that also get rules).
        if let target = rule.target.chainReference, !table.builtinChains.contains(target), rules[table]?[target] == nil {
            rules[table, default: [:]][target] = []
        }
    }

    /// The tables as iptables-save prints them: built-in chains with policy ACCEPT, user chains by name.
    func tables() -> [Table] {
        rules.keys.sorted().map { name in
            let chains = rules[name] ?? [:]
            var all = name.builtinChains.map { Chain(name: $0, policy: .accept, rules: chains[$0] ?? []) }
            for (chain, list) in chains where !name.builtinChains.contains(chain) {
                all.append(Chain(name: chain, rules: list))
            }
            var table = Table(family: family, name: name, chains: all)
            table.sortChains()
            return table
        }
    }
}

/// Small constructors so the rule programs read like the iptables arguments they stand for.
enum R {
    static func rule(s: AddressMatch? = nil, d: AddressMatch? = nil, i: String? = nil, o: String? = nil,
                     p: UInt16? = nil, _ matches: [Match], _ target: Target) -> Rule {
        Rule(source: s, destination: d, inInterface: i.map { InterfaceMatch($0) }, outInterface: o.map { InterfaceMatch($0) },
             protocol: p.map { ProtocolMatch($0) }, matches: matches, target: target)
    }
    static func rule(s: AddressMatch? = nil, d: AddressMatch? = nil, i: String? = nil, o: String? = nil,
                     p: UInt16? = nil, _ target: Target) -> Rule {
        rule(s: s, d: d, i: i, o: o, p: p, [], target)
    }

    static let tcp = ProtocolMatch.tcp
    static let udp = ProtocolMatch.udp

    static func tcpDport(_ port: UInt16, not: Bool = false) -> Match {
        .tcp(TCPMatch(destinationPort: PortMatch(port, inverted: not)))
    }
    static func udpDport(_ port: UInt16) -> Match { .udp(UDPMatch(destinationPort: PortMatch(port))) }
    static func udpSport(_ port: UInt16) -> Match { .udp(UDPMatch(sourcePort: PortMatch(port))) }
    static func notDports(_ ports: [UInt16]) -> Match {
        .multiport(MultiportMatch(direction: .destination, ports: ports.map { $0...$0 }, inverted: true))
    }
    static func uidOwner(_ id: UInt32, not: Bool = false) -> Match { .owner(OwnerMatch(uid: IDRangeMatch(id, inverted: not))) }
    static func gidOwner(_ id: UInt32, not: Bool = false) -> Match { .owner(OwnerMatch(gid: IDRangeMatch(id, inverted: not))) }
    static func mark(_ value: UInt32, not: Bool = false) -> Match { .mark(MarkMatch(value: value, inverted: not)) }
    static func connmark(_ value: UInt32) -> Match { .connmark(MarkMatch(value: value)) }
    static func ctstate(_ states: ConntrackStates) -> Match {
        .conntrack(ConntrackMatch(states: .init(states)))
    }

    static func jump(_ chain: ChainName) -> Target { .jump(chain) }
    static func redirect(_ port: UInt16) -> Target { .redirect(PortRewriteTarget(ports: port...port)) }
    static func setMark(_ value: UInt32) -> Target { .mark(MarkTarget(value: value)) }
    static func zone(_ zone: UInt16) -> Target { .ct(CTTarget(zone: zone)) }
    static let saveMark = Target.connmark(ConnmarkTarget(mode: .save(nfmask: 0xFFFF_FFFF, ctmask: 0xFFFF_FFFF)))
    static let restoreMark = Target.connmark(ConnmarkTarget(mode: .restore(nfmask: 0xFFFF_FFFF, ctmask: 0xFFFF_FFFF)))

    /// A host address (`/32`, `/128`), or nil when the text is not an address of that family.
    static func host(_ text: String, _ family: Family) -> AddressMatch? {
        guard let a = IPAddress(text), a.family == family else { return nil }
        return AddressMatch(address: a, prefixLength: family.addressBits)
    }
    static func inverted(_ a: AddressMatch) -> AddressMatch {
        var m = a
        m.inverted = true
        return m
    }
}
