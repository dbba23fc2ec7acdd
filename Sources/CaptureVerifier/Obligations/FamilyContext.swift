import IstioCapture
import NetfilterModel

/// Inputs beyond the configuration that sharpen the checks.
public struct VerifierOptions: Sendable {
    /// Owner-group names as the pod image's `/etc/group` resolves them (iptables stores numbers).
    /// Without them a named group is matched against the numeric owner rules found in `ISTIO_OUTPUT`.
    public var groupIDs: [String: UInt32]
    /// Walk every branch and give each judge every outcome, whatever the checks declare they judge
    /// (`Relevance`): the reference the pruned walk's findings are tested against.
    var followsEveryBranch = false
    public init(groupIDs: [String: UInt32] = [:]) { self.groupIDs = groupIDs }
}

/// The configuration seen from one family, with the version-dependent facts of docs/capture-model.md §9.
struct FamilyContext {
    let family: Family
    let config: CaptureConfiguration
    let tables: [Table]
    let expected: [Table]
    /// Every rule of `expected`, for "did Istio install this?".
    let expectedKeys: Set<ExpectedRuleKey>
    let space: PacketSpace
    let evaluator: SymbolicEvaluator
    let options: VerifierOptions
    /// The namespace's `ip rule`/routes, when read live (TPROXY depends on them).
    let policyRouting: PolicyRouting?
    /// Where Istio's rules live: iptables' tables, or native nftables' `inet istio-proxy-*`.
    let layout: IstioLayout
    /// Why no rules are expected: the configuration's own install fails (said once, instead of rule drift).
    let expectationRefused: String?

    var version: IstioVersion { config.istioVersion }
    func atLeast(_ minor: Int) -> Bool { version >= IstioVersion(1, minor, 0) }
    var tproxyMode: Bool { config.interceptionMode == .tproxy }

    /// L: `127.0.0.1/32` (or the configured IPv4 loopback CIDR from 1.22), `::1/128`.
    let loopback: AddressMatch
    /// 127.0.0.0/8 or ::1/128: what the kernel routes over `lo` anyway.
    let loopbackNet: AddressMatch
    /// 127.0.0.6 / ::6: the source Envoy binds to forward inbound connections to the app.
    let passthroughSource: AddressMatch
    let excludeCIDRs: [AddressMatch]
    /// nil: every destination (`-i '*'`).
    let includeCIDRs: [AddressMatch]?
    /// A loopback range in either family's include list removes the app `lo` RETURNs.
    let includesLoopback: Bool
    let dnsServers: [AddressMatch]
    /// DNS capture is on (1.26+ turns it off when there is neither a server nor capture-all).
    let dnsOn: Bool
    /// This family's DNS traffic reaches 15053 (it has servers, or capture-all).
    let dnsActive: Bool
    let proxyUIDs: [UInt32]
    let proxyGIDs: [UInt32]
    /// The proxy container's real identity, when the pod spec says (gid falls back to the image's 1337 group).
    let realIdentity: (uid: UInt32, gid: UInt32)?
    /// Numeric owner groups the filter captures (nil: every group) and the ones it never captures.
    let ownerGroupsIncluded: [UInt32]?
    let ownerGroupsExcluded: [UInt32]
    let unresolvedGroups: [String]
    /// Group names no /etc/group resolved, numbered as the owner rules number them (same order as configured).
    let groupsReadFromRules: [String: UInt32]
    /// Inbound ports never captured with `-b '*'` (1.10 also returned port 22).
    let inboundExcluded: [UInt16]

    init(family: Family, config: CaptureConfiguration, tables: [Table], options: VerifierOptions, policyRouting: PolicyRouting? = nil,
         layout: IstioLayout = .iptables) {
        self.family = family
        self.layout = layout
        self.policyRouting = policyRouting
        self.config = config
        self.tables = tables
        self.options = options
        let v = config.istioVersion
        func parse(_ list: [String]) -> [AddressMatch] {
            list.compactMap { AddressMatch($0) }.filter { $0.address.family == family }
        }
        if family == .ipv6 {
            loopback = AddressMatch("::1/128")!
            loopbackNet = AddressMatch("::1/128")!
            passthroughSource = AddressMatch(address: IstioNames.inboundPassthroughSource(.ipv6), prefixLength: 128)
        } else {
            let configured = v >= IstioVersion(1, 22, 0) ? AddressMatch(config.hostIPv4LoopbackCIDR) : nil
            loopback = configured.flatMap { $0.address.family == .ipv4 ? $0 : nil } ?? AddressMatch("127.0.0.1/32")!
            loopbackNet = AddressMatch("127.0.0.0/8")!
            passthroughSource = AddressMatch(address: IstioNames.inboundPassthroughSource(.ipv4), prefixLength: 32)
        }
        excludeCIDRs = parse(config.outboundIPRangesExclude)
        includeCIDRs = config.outboundIPRangesInclude.isAll ? nil : parse(config.outboundIPRangesInclude.items)
        includesLoopback = config.outboundIPRangesInclude.items.compactMap { AddressMatch($0) }.contains { c in
            c.address.family == .ipv4 ? (c.address.value >> 24) == 127 : c.address.value == 1
        }
        dnsServers = parse(family == .ipv4 ? config.dnsServersIPv4 : config.dnsServersIPv6).map {
            AddressMatch(address: $0.address, prefixLength: family.addressBits)
        }
        let on = config.redirectDNS && (v < IstioVersion(1, 26, 0) || config.captureAllDNS
            || !config.dnsServersIPv4.isEmpty || !config.dnsServersIPv6.isEmpty)
        dnsOn = on
        dnsActive = on && (config.captureAllDNS || !dnsServers.isEmpty)
        proxyUIDs = config.proxyUIDs
        proxyGIDs = config.proxyGIDs
        if let u = config.proxyRunAsUser ?? (config.proxyRunAsGroup != nil ? config.proxyUIDs.first : nil) {
            realIdentity = (u, config.proxyRunAsGroup ?? config.proxyGIDs.first ?? u)
        } else {
            realIdentity = nil
        }

        // Owner groups: numeric, or resolved by the options (the pod's /etc/group); else read back from the numeric
        // owner rules, where istio-iptables writes them in the configuration's order.
        let nat = tables.first { $0.name == layout.nat }
        let ownerRules = nat?.chain(layout.chain(.istioOutput))?.rules ?? []
        let names = config.ownerGroupsInclude.isAll ? config.ownerGroupsExclude : config.ownerGroupsInclude.items
        var written: [UInt32] = []
        for r in ownerRules where r.target == .return {
            for case .owner(let o) in r.matches {
                if let g = o.gid, g.range.count == 1, o.uid == nil, !config.proxyGIDs.contains(g.range.lowerBound),
                   g.inverted == !config.ownerGroupsInclude.isAll {
                    written.append(g.range.lowerBound)
                }
            }
        }
        var fromRules: [String: UInt32] = [:]
        if written.count == names.count {
            let agree = zip(names, written).allSatisfy { name, number in (options.groupIDs[name] ?? UInt32(name)).map { $0 == number } ?? true }
            if agree {
                for (name, number) in zip(names, written) where options.groupIDs[name] == nil && UInt32(name) == nil { fromRules[name] = number }
            }
        }
        groupsReadFromRules = fromRules
        var unresolved: [String] = []
        func resolve(_ names: [String]) -> [UInt32] {
            names.compactMap { n in
                if let g = options.groupIDs[n] ?? UInt32(n) ?? fromRules[n] { return g }
                unresolved.append(n)
                return nil
            }
        }
        var included: [UInt32]? = config.ownerGroupsInclude.isAll ? nil : resolve(config.ownerGroupsInclude.items)
        var excluded = resolve(config.ownerGroupsExclude)
        if !unresolved.isEmpty {
            let known = Set(config.proxyGIDs + (included ?? []) + excluded)
            var found: [UInt32] = []
            for r in ownerRules where r.target == .return {
                for case .owner(let o) in r.matches {
                    if let g = o.gid, g.range.count == 1, o.uid == nil, !known.contains(g.range.lowerBound) {
                        if config.ownerGroupsInclude.isAll ? !g.inverted : g.inverted { found.append(g.range.lowerBound) }
                    }
                }
            }
            if included != nil { included! += found } else { excluded += found }
        }
        ownerGroupsIncluded = included
        ownerGroupsExcluded = excluded
        unresolvedGroups = unresolved
        inboundExcluded = config.inboundPortsExclude + (v < IstioVersion(1, 14, 0) ? [22] : [])

        let resolver: ExpectedRules.GroupResolver = { [groupIDs = options.groupIDs, fromRules] name in groupIDs[name] ?? UInt32(name) ?? fromRules[name] }
        if layout.native, config.installFailure == nil {
            // The inet tables Istio writes, seen from this family as the reader's normalization sees the live ones.
            do {
                expected = try ExpectedNftables.tables(for: config, groupResolver: resolver)
                    .flatMap { $0.normalized() }.filter { $0.family == family }
                expectationRefused = nil
            } catch {
                // This version's istio-iptables cannot install these rules at all (nft rejects its transaction).
                expected = []
                expectationRefused = error.description
            }
        } else if config.ambient == nil, let failure = config.installFailure {
            expected = []
            expectationRefused = "istio-iptables exits on this configuration: \(failure)"
        } else if config.ambient != nil, case .failure(let refused) = Result(catching: { () throws(IstioCaptureError) in
            try AmbientSettings.check(version: config.istioVersion, nativeNftables: false)
        }) {
            expected = []
            expectationRefused = refused.description
        } else {
            expectationRefused = nil
            expected = ExpectedRules.tables(for: config, family: family, groupResolver: resolver)
        }
        expectedKeys = Set(expected.flatMap { t in
            t.chains.flatMap { c in c.rules.map { ExpectedRuleKey(table: t.name, chain: c.name, rule: $0.normalized) } }
        })

        var hints = SpaceHints()
        hints.addresses = [loopback, loopbackNet, passthroughSource] + excludeCIDRs + (includeCIDRs ?? []) + dnsServers
        hints.ports = [53, IstioPort.dnsProxy.rawValue, config.proxyPort, config.inboundCapturePort, config.inboundTunnelPort]
            + [IstioPort.status, .health, .metrics].map(\.rawValue) + [22] + config.outboundPortsExclude + config.outboundPortsInclude
            + config.inboundPortsInclude.items + config.inboundPortsExclude
        hints.ids = config.proxyUIDs + config.proxyGIDs + [1000] + excluded + (included ?? [])
            + [config.proxyRunAsUser, config.proxyRunAsGroup].compactMap { $0 }
            + config.workloads.flatMap { [$0.uid, $0.gid].compactMap { $0 } }
        hints.interfaces = ["lo", "eth0"] + config.excludeInterfaces + config.rerouteVirtualInterfaces
        for drift in config.injectionDrift {
            for value in [drift.asked, drift.given] {
                switch value {
                case .ports(let p): hints.ports += p.items
                case .ranges(let r): hints.addresses += parse(r.items)
                case .interfaces(let names): hints.interfaces += names
                case .mode: break
                }
            }
        }
        hints.marks = [0, config.tproxyMark, IstioNames.selfCallMark]
        hints.protocols = [ProtocolMatch.tcp, ProtocolMatch.udp]
        if let ambient = config.ambient {
            // ztunnel's marks, alone and under another component's bits, so a mask that is too wide shows; and for
            // every mask a rule tests, one bit it tests above 0xfff and one it ignores below, so a mask too wide
            // (0xffff) or too narrow (0x539) shows on a packet it misjudges.
            let other: UInt32 = 0x10000
            hints.marks += [AmbientNames.ztunnelMark, AmbientNames.ztunnelMark | other, AmbientNames.replyMark,
                            AmbientNames.replyMark | other, other]
            let masks = Set(tables.flatMap { t in t.chains.flatMap { c in c.rules.flatMap { r in r.matches.compactMap { m -> UInt32? in
                switch m {
                case .mark(let mm), .connmark(let mm): mm.mask
                default: nil
                }
            } } } })
            for mask in masks {
                for v in [AmbientNames.ztunnelMark, AmbientNames.replyMark] {
                    let above = mask & ~AmbientNames.markMask, below = ~mask & AmbientNames.markMask
                    if above != 0 { hints.marks.append(v | (above & (~above &+ 1))) }
                    if below != 0 { hints.marks.append(v ^ (below & (~below &+ 1))) }
                }
            }
            hints.addresses += [ambient.probeSNATIPv4, ambient.probeSNATIPv6].compactMap { IPAddress($0) }.filter { $0.family == family }
                .map { AddressMatch(address: $0, prefixLength: family.addressBits) }
            hints.interfaces += ambient.virtualInterfaces
        }
        let space = PacketSpace(family: family, tables: tables, hints: hints)
        self.space = space
        evaluator = SymbolicEvaluator(space: space, tables: tables)
    }

    func table(_ name: TableName) -> Table? { tables.first { $0.name == name } }

    /// A table's jump structure, built once for the walks' pruning and the checks that read it alike. Nil for a
    /// name the ruleset repeats (no reader gives one; save text and bundles refuse it): the walk would take the
    /// last such table, the checks (`table(_:)`) the first.
    func graph(_ name: TableName) -> ChainGraph? {
        guard tables.count(where: { $0.name == name }) == 1 else { return nil }
        return evaluator.walker.reachability.graphs[name]
    }

    /// One of Istio's base chains alone, by its iptables table and hook (`raw OUTPUT`, or `inet istio-proxy-raw
    /// output` in native nftables mode).
    func single(_ table: TableName, _ hook: ChainName) -> Pipeline {
        .single(layoutTable(table), Hook(chain: hook).map(layout.hookChain) ?? hook)
    }

    /// Whether the outcome entered one of Istio's chains (by its iptables name) in one of Istio's tables.
    func entered(_ o: Outcome, _ chain: ChainName, in table: TableName = .nat) -> Bool {
        o.entered(layout.chain(chain), in: layoutTable(table))
    }

    /// A rule as a fix quotes it, in the syntax of the store holding Istio's rules: iptables-save's, or in native
    /// nftables mode as `nft list ruleset` prints it (`tcp dport 15008 return`), so it can be compared with what is
    /// there. Table and chain names in the surrounding prose are iptables' and are renamed with the rest of the report.
    func ruleText(iptables: String, nft: String) -> String { layout.native ? nft : iptables }

    /// An address match as nft lists it: `ip daddr 127.0.0.1` (a host without its prefix), `ip6 saddr ::6`,
    /// `ip daddr 127.0.0.0/8`.
    func nftAddress(_ a: AddressMatch, _ field: String) -> String {
        let text = a.mask.prefixLength == family.addressBits ? a.address.description : a.cidrText
        return "\(family == .ipv4 ? "ip" : "ip6") \(field)\(a.inverted ? " !=" : "") \(text)"
    }

    /// A mark as nft lists it: `0x00000539`.
    static func nftMark(_ value: UInt32) -> String {
        let hex = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 8 - hex.count)) + hex
    }

    /// iptables' raw, mangle or nat as this family's layout names it (a native table in nftables mode).
    func layoutTable(_ table: TableName) -> TableName {
        table == .raw ? layout.raw : table == .mangle ? layout.mangle : table == .nat ? layout.nat : table
    }

    /// Whether this family carries any of Istio's chains.
    var hasIstioRules: Bool { tables.contains(where: \.hasIstioChains) }

    // MARK: packet classes

    var tcp: AtomSet { space.atoms(protocols: [ProtocolMatch.tcp]) }
    var udp: AtomSet { space.atoms(protocols: [ProtocolMatch.udp]) }
    func ports(_ p: [UInt16]) -> AtomSet { space.atoms(ports: p) }
    func sourcePorts(_ p: [UInt16]) -> AtomSet { space.atoms(ports: p, field: .sourcePort) }
    func uids(_ ids: [UInt32]) -> AtomSet { space.atoms(ids: ids, field: .uid) }
    func gids(_ ids: [UInt32]) -> AtomSet { space.atoms(ids: ids, field: .gid) }
    func destinations(_ cidrs: [AddressMatch]) -> AtomSet { space.atoms(.destination, inside: cidrs) }
    func sources(_ cidrs: [AddressMatch]) -> AtomSet { space.atoms(.source, inside: cidrs) }
    func out(_ names: [String]) -> AtomSet { space.atoms(.outInterface, interfaces: { names.contains($0) }) }
    func into(_ names: [String]) -> AtomSet { space.atoms(.inInterface, interfaces: { names.contains($0) }) }
    var lo: [String] { ["lo"] }

    /// Packets that start here: no mark, no connmark.
    var unmarked: PacketBox {
        space.universe.with(.mark, space.atoms(.mark, marks: { $0 == 0 }))
            .with(.connmark, space.atoms(.connmark, marks: { $0 == 0 }))
    }
    /// The first packet of a connection a local socket opens (nat OUTPUT sees it).
    var localNew: PacketBox {
        unmarked.with(.inInterface, space.noInterface(.inInterface))
            .without(.outInterface, space.noInterface(.outInterface))
            .with(.ctState, space.atoms(states: [.new]))
    }
    /// The first packet of a connection arriving from the network (not on `lo`).
    var inboundNew: PacketBox {
        unmarked.with(.outInterface, space.noInterface(.outInterface))
            .without(.inInterface, space.noInterface(.inInterface))
            .without(.inInterface, into(lo))
            .with(.ctState, space.atoms(states: [.new]))
            .without(.destination, destinations([loopbackNet]))
    }
    /// Not the proxy by any configured id.
    func application(_ b: PacketBox) -> PacketBox {
        b.without(.uid, uids(proxyUIDs)).without(.gid, gids(proxyGIDs))
    }
    /// The application traffic the owner-group filter lets through to capture.
    func capturedGroups(_ b: PacketBox) -> PacketBox {
        var r = b.without(.gid, gids(ownerGroupsExcluded))
        if let inc = ownerGroupsIncluded { r = r.with(.gid, gids(inc)) }
        return r
    }
    /// Owned by a configured proxy id (uid in P with any gid, or gid in G).
    func proxyOwned(_ b: PacketBox) -> PacketSet {
        PacketSet([b.with(.uid, uids(proxyUIDs)), b.without(.uid, uids(proxyUIDs)).with(.gid, gids(proxyGIDs))])
    }
    /// The DNS traffic this family sends to the agent: port 53 to a server (any destination with capture-all).
    func dnsBound(_ b: PacketBox) -> PacketSet {
        guard dnsActive else { return PacketSet() }
        var d = b.with(.destinationPort, ports([53])).with(.l4Protocol, tcp | udp)
        if !config.captureAllDNS { d = d.with(.destination, destinations(dnsServers)) }
        return PacketSet([d])
    }

    // MARK: evaluation

    func evaluate(_ set: PacketSet, _ pipeline: Pipeline, _ relevance: Relevance = .all) -> [Outcome] {
        evaluator.evaluate(set, pipeline: pipeline, relevance: relevance)
    }
    func evaluate(_ box: PacketBox, _ pipeline: Pipeline) -> [Outcome] { evaluate(PacketSet([box]), pipeline) }

    /// The rule a step points at.
    func rule(at step: TraceStep) -> Rule? {
        guard let n = step.ruleNumber, let c = table(step.table)?.chain(step.chain), n >= 1, n <= c.rules.count else { return nil }
        return c.rules[n - 1]
    }
    func ruleText(at step: TraceStep) -> String? {
        // A native nftables rule is named as nft prints it; an iptables rule as iptables-save does.
        rule(at: step).map { $0.native?.text ?? SaveSyntax.render($0, in: step.chain, family: family) }
    }

    /// The most realistic member of an outcome: TCP, port 9080, `eth0`, one identity, where the class allows;
    /// among the `focus` packets when the outcome has any. A set kept with holes offers its first 64 boxes.
    func witnessPacket(_ outcome: Outcome, within focus: PacketSet? = nil) -> Packet {
        var packets = outcome.packets
        if let focus {
            let focused = packets.intersection(focus)
            if !focused.isEmpty { packets = focused }
        }
        return packets.someBoxes(upTo: 64).map { space.representative(of: $0) }.max { realism($0) < realism($1) }
            ?? space.representative(of: space.universe)
    }
}

extension PacketBox {
    func with(_ f: PacketField, _ atoms: AtomSet) -> PacketBox {
        var b = self
        b[f] = b[f] & atoms
        return b
    }
    func without(_ f: PacketField, _ atoms: AtomSet) -> PacketBox { with(f, atoms.complement) }
    /// The box with a field replaced (not narrowed).
    func setting(_ f: PacketField, _ atoms: AtomSet) -> PacketBox {
        var b = self
        b[f] = atoms
        return b
    }
}

extension PacketSet {
    func with(_ f: PacketField, _ atoms: AtomSet) -> PacketSet { PacketSet(boxes.map { $0.with(f, atoms) }) }
    func without(_ f: PacketField, _ atoms: AtomSet) -> PacketSet { with(f, atoms.complement) }
}
