import NetfilterModel

/// The in-pod rules istio-cni's node agent installs into an ambient pod (docs/capture-model.md §11), per family:
/// iptables tables with `ISTIO_PRERT`/`ISTIO_OUTPUT` chains, or the `inet istio-ambient-*` tables of its
/// nftables backend. Besides these the agent adds, over netlink, `ip rule fwmark 0x111/0xfff lookup 100` and a
/// local default route over `lo` in table 100, per family (`AmbientNames`).
public enum ExpectedAmbient {
    /// The iptables tables of one family, as iptables-save prints them (with native nftables, their iptables
    /// equivalent, rule for rule); empty when the configuration is not ambient or leaves IPv6 out.
    public static func tables(for config: CaptureConfiguration, family: Family) -> [Table] {
        guard let settings = config.ambient, config.families.contains(family) else { return [] }
        var program = RuleProgram(family: family, traceLogging: false)
        let rules = AmbientRules(settings: settings, version: config.istioVersion)
        for op in rules.operations(family: family) {
            program.append(op.table.iptables, op.chain.iptables, op.rule)
        }
        return program.tables()
    }

    /// The native tables (`inet istio-ambient-nat`, `-mangle`, `-raw`) as nft lists them; empty unless the
    /// configuration is ambient with native nftables.
    public static func nftTables(for config: CaptureConfiguration) -> [NftTable] {
        guard let settings = config.ambient, config.nativeNftables else { return [] }
        let rules = AmbientRules(settings: settings, version: config.istioVersion)
        let families: [Family] = AmbientShape(config.istioVersion).nftablesIPv6Always ? [.ipv4, .ipv6] : config.families
        var chains: [AmbientTable: [AmbientChain: [NftRule]]] = [:]
        // One inet table carries both families: the agent writes the IPv4 form of each address rule, then its
        // IPv6 twin when IPv6 is on; a rule naming no address is written once.
        for op in rules.operations(families: families) {
            chains[op.table, default: [:]][op.chain, default: []].append(NftRule(statements: N.listed(op.nft)))
        }
        return AmbientTable.allCases.compactMap { table in
            guard let rules = chains[table] else { return nil }
            let declared: [(AmbientChain, NftBaseChain?)] = [
                (.prerouting, table.base(.prerouting)), (.output, table.base(.output)), (.istioPrerouting, nil), (.istioOutput, nil),
            ]
            return NftTable(family: .inet, name: table.nativeName, chains: declared.map { chain, base in
                NftChain(name: chain.native.rawValue, base: base, rules: rules[chain] ?? [])
            })
        }
    }
}

enum AmbientTable: CaseIterable {
    case nat, mangle, raw

    var iptables: TableName { self == .nat ? .nat : self == .mangle ? .mangle : .raw }
    /// The nft table's own name: the layout's, without the family the reader puts in front.
    var nativeName: String {
        let layout = IstioLayout.ambientNftables
        let name = self == .nat ? layout.nat : self == .mangle ? layout.mangle : layout.raw
        return String(name.rawValue.dropFirst("inet ".count))
    }

    /// The base chains' hooks as the agent declares them: the iptables tables' priorities, and mangle output as
    /// a `route` chain so a changed mark re-routes the packet.
    func base(_ chain: AmbientChain) -> NftBaseChain {
        let hook: Hook = chain == .prerouting ? .prerouting : .output
        switch self {
        case .nat: return NftBaseChain(type: .nat, hook: hook, priority: -100)
        case .mangle: return NftBaseChain(type: chain == .output ? .route : .filter, hook: hook, priority: -150)
        case .raw: return NftBaseChain(type: .filter, hook: hook, priority: -300)
        }
    }
}

enum AmbientChain: Hashable {
    case prerouting, output, istioPrerouting, istioOutput

    var iptables: ChainName {
        switch self {
        case .prerouting: "PREROUTING"
        case .output: "OUTPUT"
        case .istioPrerouting: .istioPrerouting
        case .istioOutput: .istioOutput
        }
    }
    var native: ChainName {
        switch self {
        case .prerouting: "prerouting"
        case .output: "output"
        case .istioPrerouting: AmbientNames.nativePrerouting
        case .istioOutput: AmbientNames.nativeOutput
        }
    }
}

/// One rule of the agent's program, in both of the forms it writes: an iptables rule and nft statements.
struct AmbientOperation {
    var table: AmbientTable
    var chain: AmbientChain
    var rule: Rule
    var nft: [NftStatement]
}

/// istio-cni's in-pod rules in the order it writes them (`cni/pkg/iptables` `appendInpodRules`, and the
/// nftables backend's equivalent).
struct AmbientRules {
    let settings: AmbientSettings
    let version: IstioVersion

    private var ztunnel: UInt32 { AmbientNames.ztunnelMark }
    private var reply: UInt32 { AmbientNames.replyMark }
    private var mask: UInt32 { AmbientNames.markMask }

    func operations(family: Family) -> [AmbientOperation] { operations(families: [family]) }

    /// Every family's rules, family by family within each step (the nft backend's interleaving: IPv4 rule, then
    /// its IPv6 twin).
    func operations(families: [Family]) -> [AmbientOperation] {
        var ops: [AmbientOperation] = []
        func add(_ t: AmbientTable, _ c: AmbientChain, _ rule: Rule, _ nft: [NftStatement]) {
            ops.append(AmbientOperation(table: t, chain: c, rule: rule, nft: nft))
        }
        func perFamily(_ body: (Family) -> Void) { families.forEach(body) }
        let tcp = ProtocolMatch.tcp, udp = ProtocolMatch.udp
        func notMark(_ v: UInt32) -> Match { .mark(MarkMatch(value: v, mask: mask, inverted: true)) }
        func nftMark(_ v: UInt32, not: Bool = false, ct: Bool = false) -> NftStatement {
            let left: NftExpression = ct ? .ct(key: "mark", direction: nil) : .meta(key: "mark")
            return N.match(.binary(.and, left, .integer(Int64(mask))), not: not, .integer(Int64(v)))
        }
        func loopback(_ f: Family) -> AddressMatch { AddressMatch(f == .ipv4 ? "127.0.0.1/32" : "::1/128")! }
        let shape = AmbientShape(version)
        let dns = settings.redirectDNS(version)
        let ingress = settings.bypassInboundCapture
        let virtualInterfaces = shape.virtualInterfaces ? settings.virtualInterfaces : []

        // mangle: ztunnel-delivered connections get connmark 0x111; their replies get it back as the packet mark.
        add(.mangle, .prerouting, R.rule(R.jump(.istioPrerouting)), [N.jump("istio-prerouting")])
        add(.mangle, .output, R.rule(R.jump(.istioOutput)), [N.jump("istio-output")])
        // `ct mark set ct mark & 0xfffff000 | 0x111`, which nft stores (and lists) with the set bits in the mask.
        if !ingress || shape.ingressKeepsConnmark {
            add(.mangle, .istioPrerouting, R.rule([.mark(MarkMatch(value: ztunnel, mask: mask))],
                                              .connmark(ConnmarkTarget(mode: .set(value: reply, mask: mask)))),
            [nftMark(ztunnel), N.counter,
             .ctSet(key: "mark", direction: nil, value: .binary(.or, .binary(.and, .ct(key: "mark", direction: nil), .integer(Int64(~mask | reply))),
                                                                .integer(Int64(reply))))])
        }
        add(.mangle, .istioOutput, R.rule([.connmark(MarkMatch(value: reply, mask: mask))], R.restoreMark),
            [nftMark(reply, ct: true), N.counter, N.restoreMark])

        // nat
        add(.nat, .output, R.rule(R.jump(.istioOutput)), [N.jump("istio-output")])
        add(.nat, .prerouting, R.rule(R.jump(.istioPrerouting)), [N.jump("istio-prerouting")])
        for name in virtualInterfaces {
            add(.nat, .istioPrerouting, R.rule(i: name, p: tcp, R.redirect(IstioPort.outbound.rawValue)),
                [N.iifname(name), N.l4proto("tcp"), N.counter, N.redirect(IstioPort.outbound.rawValue)])
            add(.nat, .istioPrerouting, R.rule(i: name, p: tcp, .return),
                [N.iifname(name), N.l4proto("tcp"), N.counter, .verdict(.return)])
        }
        if !ingress {
            perFamily { f in
                guard let a = R.host(settings.probeSNAT(f), f) else { return }
                add(.nat, .istioPrerouting, R.rule(s: a, p: tcp, [.tcp(TCPMatch())], .accept),
                    [N.l4proto("tcp"), N.saddr(a), N.counter, .verdict(.accept)])
            }
        }
        perFamily { f in
            guard let a = R.host(settings.probeSNAT(f), f) else { return }
            add(.nat, .istioOutput, R.rule(d: a, p: tcp, [.tcp(TCPMatch())], .accept),
                [N.l4proto("tcp"), N.daddr(a), N.counter, .verdict(.accept)])
        }
        if !ingress {
            perFamily { f in
                let lo = R.inverted(loopback(f))
                add(.nat, .istioPrerouting,
                    R.rule(d: lo, p: tcp, [R.tcpDport(IstioPort.tunnel.rawValue, not: true), notMark(ztunnel)], R.redirect(IstioPort.inbound.rawValue)),
                    [N.daddr(lo), N.port("tcp", "dport", IstioPort.tunnel.rawValue, not: true), nftMark(ztunnel, not: true), N.counter,
                     N.redirect(IstioPort.inbound.rawValue)])
            }
        }
        if dns {
            var notLo = R.rule(p: udp, [notMark(ztunnel), R.udpDport(53)], R.redirect(IstioPort.dnsProxy.rawValue))
            notLo.outInterface = InterfaceMatch(name: "lo", inverted: true)
            add(.nat, .istioOutput, notLo,
                [N.match(.meta(key: "oifname"), not: true, .string("lo")), nftMark(ztunnel, not: true), N.port("udp", "dport", 53), N.counter,
                 N.redirect(IstioPort.dnsProxy.rawValue)])
            perFamily { f in
                let lo = R.inverted(loopback(f))
                add(.nat, .istioOutput, R.rule(d: lo, p: tcp, [R.tcpDport(53), notMark(ztunnel)], R.redirect(IstioPort.dnsProxy.rawValue)),
                    [N.daddr(lo), N.port("tcp", "dport", 53), nftMark(ztunnel, not: true), N.counter, N.redirect(IstioPort.dnsProxy.rawValue)])
            }
        }
        add(.nat, .istioOutput, R.rule(p: tcp, [.mark(MarkMatch(value: reply, mask: mask))], .accept),
            [N.l4proto("tcp"), nftMark(reply), N.counter, .verdict(.accept)])
        perFamily { f in
            let lo = R.inverted(loopback(f))
            add(.nat, .istioOutput, R.rule(d: lo, o: "lo", .accept), [N.oifname("lo"), N.daddr(lo), N.counter, .verdict(.accept)])
        }
        perFamily { f in
            let lo = R.inverted(loopback(f))
            add(.nat, .istioOutput, R.rule(d: lo, p: tcp, [notMark(ztunnel)], R.redirect(IstioPort.outbound.rawValue)),
                [N.l4proto("tcp"), N.daddr(lo), nftMark(ztunnel, not: true), N.counter, N.redirect(IstioPort.outbound.rawValue)])
        }

        // raw: DNS to and from ztunnel's proxy in its own conntrack zone.
        if dns {
            add(.raw, .prerouting, R.rule(R.jump(.istioPrerouting)), [N.jump("istio-prerouting")])
            add(.raw, .output, R.rule(R.jump(.istioOutput)), [N.jump("istio-output")])
            add(.raw, .istioOutput, R.rule(p: udp, [.mark(MarkMatch(value: ztunnel, mask: mask)), R.udpDport(53)], R.zone(AmbientNames.dnsZone)),
                [N.port("udp", "dport", 53), nftMark(ztunnel), N.counter, N.zone(AmbientNames.dnsZone)])
            add(.raw, .istioPrerouting, R.rule(p: udp, [notMark(ztunnel), R.udpSport(53)], R.zone(AmbientNames.dnsZone)),
                [N.port("udp", "sport", 53), nftMark(ztunnel, not: true), N.counter, N.zone(AmbientNames.dnsZone)])
        }
        return ops
    }
}
