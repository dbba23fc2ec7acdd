import NetfilterModel

/// The rule set istio-iptables installs for a capture configuration, per family and table, in the order
/// `iptables-save` prints it on a live system (docs/capture-model.md §4-§9).
///
/// Version shapes: before 1.14 the 1.10 rules (separate IPv6 path, `--dport 22` RETURN, minimal TPROXY);
/// 1.14-1.17 without the tunnel-port exemption; 1.18-1.21 with it; 1.22-1.25 with the configurable IPv4
/// loopback CIDR and source-matched DNS answer zones; 1.26 and later with `ISTIO_OUTPUT_DNS` chains,
/// an all-protocol OUTPUT jump and `ISTIO_DROP`. The istio-cni plugin runs the same code, so the installer
/// only matters for how the configuration was derived (see `PodManifest`).
///
/// With `nativeNftables` istio-iptables writes no iptables rules at all; the tables returned are then the
/// iptables equivalent of its `inet istio-proxy-*` rules, which map one to one (docs/capture-model.md §10). The native
/// tables themselves are `ExpectedNftables`'.
public enum ExpectedRules {
    /// Maps an owner-group name to its GID, as iptables does at load time with the pod image's `/etc/group`.
    public typealias GroupResolver = @Sendable (String) -> UInt32?

    /// The default resolver: numeric GIDs only. Looking names up in a group database is the caller's business
    /// (the CLI passes the host's, `SaveTextParser.systemGroupID`); this module stays free of C calls.
    public static let numericGroups: GroupResolver = { UInt32($0) }

    /// Every table istio-iptables writes rules into, IPv4 first. Tables it does not touch are absent.
    ///
    /// Group names that neither resolve nor are numeric are kept as an unrecognized `owner` match that prints
    /// `--gid-owner NAME` (iptables would refuse to load such a rule).
    public static func tables(for config: CaptureConfiguration,
                              groupResolver: @escaping GroupResolver = ExpectedRules.numericGroups) -> [Table] {
        config.families.flatMap { tables(for: config, family: $0, groupResolver: groupResolver) }
    }

    /// The tables of one family (empty for IPv6 when the configuration says the pod is IPv4 only).
    public static func tables(for config: CaptureConfiguration, family: Family,
                              groupResolver: @escaping GroupResolver = ExpectedRules.numericGroups) -> [Table] {
        guard config.families.contains(family) else { return [] }
        if config.ambient != nil { return ExpectedAmbient.tables(for: config, family: family) }
        let shape = Shape(config.istioVersion)
        var program = RuleProgram(family: family, traceLogging: config.traceLogging && shape.hasTraceLogging)
        var builder = Builder(config: config, family: family, shape: shape, groups: groupResolver)
        if shape.isLegacy110 {
            if family == .ipv4 { builder.legacy110IPv4(&program) } else { builder.legacy110IPv6(&program) }
        } else {
            builder.build(&program)
        }
        return program.tables()
    }

    /// A few lines summarising the configuration, for reports.
    public static func describe(_ config: CaptureConfiguration) -> [String] {
        func ports(_ p: [UInt16]) -> String { p.isEmpty ? "none" : p.map(String.init).joined(separator: ",") }
        func list(_ s: [String]) -> String { s.isEmpty ? "none" : s.joined(separator: ",") }
        if let ambient = config.ambient {
            return ambient.describe(version: config.istioVersion, versionText: config.versionText, ipv6: config.ipv6Enabled, native: config.nativeNftables)
        }
        var lines: [String] = []
        lines.append("Istio \(config.versionText), rules by \(config.installer.rawValue), inbound \(config.interceptionMode.rawValue), "
            + (config.ipv6Enabled ? "IPv4 and IPv6" : "IPv4 only"))
        let inbound: String
        switch config.inboundPortsInclude {
        case .all: inbound = "all ports except \(ports(config.inboundPortsExclude)) and tunnel port \(config.inboundTunnelPort)"
        case .some(let p): inbound = p.isEmpty ? "off" : "ports \(ports(p))"
        }
        lines.append("inbound capture: \(inbound) -> \(config.inboundCapturePort)")
        let outbound: String
        switch config.outboundIPRangesInclude {
        case .all: outbound = "all destinations"
        case .some(let c): outbound = c.isEmpty ? "no destinations" : "destinations \(list(c))"
        }
        var out = "outbound capture: \(outbound) -> \(config.proxyPort)"
        if !config.outboundIPRangesExclude.isEmpty { out += ", except \(list(config.outboundIPRangesExclude))" }
        if !config.outboundPortsExclude.isEmpty { out += ", never ports \(ports(config.outboundPortsExclude))" }
        if !config.outboundPortsInclude.isEmpty { out += ", always ports \(ports(config.outboundPortsInclude))" }
        lines.append(out)
        var identity = "proxy identity: uid \(config.proxyUIDs.map(String.init).joined(separator: ",")), gid \(config.proxyGIDs.map(String.init).joined(separator: ","))"
        if config.proxyRunAsUser != nil || config.proxyRunAsGroup != nil {
            identity += "; proxy container runs as \(config.proxyRunAsUser.map(String.init) ?? "?"):\(config.proxyRunAsGroup.map(String.init) ?? "?")"
        }
        lines.append(identity)
        if config.redirectDNS {
            let servers = config.dnsServersIPv4 + config.dnsServersIPv6
            var scope = config.captureAllDNS ? "all port-53 traffic" : servers.isEmpty ? "no known nameservers" : "nameservers \(list(servers))"
            if config.dnsServersUnknown, !config.captureAllDNS {
                scope = "the pod's nameservers are not known (give --pid, --dns-servers or --resolv-conf); "
                    + (servers.isEmpty ? "the rules name none" : "the rules name \(list(servers))")
            }
            lines.append("DNS capture: \(scope) -> \(IstioPort.dnsProxy.rawValue)")
        }
        var extras: [String] = []
        if !config.excludeInterfaces.isEmpty { extras.append("excluded interfaces \(list(config.excludeInterfaces))") }
        if !config.rerouteVirtualInterfaces.isEmpty { extras.append("virtual interfaces \(list(config.rerouteVirtualInterfaces))") }
        if config.dropInvalid { extras.append("drop conntrack-invalid") }
        if !config.ownerGroupsInclude.isAll { extras.append("capture only groups \(list(config.ownerGroupsInclude.items))") }
        if !config.ownerGroupsExclude.isEmpty { extras.append("never groups \(list(config.ownerGroupsExclude))") }
        if config.hostIPv4LoopbackCIDR != "127.0.0.1/32" { extras.append("loopback \(config.hostIPv4LoopbackCIDR)") }
        if config.interceptionMode == .tproxy { extras.append("TPROXY mark \(config.tproxyMark), route table \(config.tproxyRouteTable)") }
        if config.nativeNftables { extras.append("native nftables (no iptables rules)") }
        if !extras.isEmpty { lines.append(extras.joined(separator: "; ")) }
        lines += config.injectionDrift.map { "not applied: \($0.description)" }
        return lines
    }
}

/// Which of the version-dependent shapes of docs/capture-model.md §9 applies.
struct Shape {
    var version: IstioVersion
    init(_ version: IstioVersion) { self.version = version }
    private func atLeast(_ minor: Int) -> Bool { version >= IstioVersion(1, minor, 0) }

    /// 1.10: separate IPv6 code path, `--dport 22` RETURN, no exclude interfaces / owner groups / drop-invalid.
    var isLegacy110: Bool { !atLeast(14) }
    /// Self-call rules carry `-p tcp ! --dport <tunnel>` (and `53,<tunnel>` with DNS for the UID variant).
    var selfCallExemptsTunnel: Bool { atLeast(18) }
    /// `ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR` is honoured.
    var configurableLoopback: Bool { atLeast(22) }
    /// raw PREROUTING matches DNS answers by source (`-s S`); before, by destination.
    var answerZoneMatchesSource: Bool { atLeast(22) }
    /// `ISTIO_OUTPUT_DNS` chains, all-protocol OUTPUT jump, UDP port exclusions, `ISTIO_DROP`, no trailing RETURN.
    var restructured: Bool { atLeast(26) }
    var hasTraceLogging: Bool { atLeast(14) && !restructured }
}

/// Builds one family's rule program from a configuration, following istio-iptables' order of operations.
/// The values it derives from the configuration (loopback, CIDRs, DNS servers, ...) are `FamilyDerivation`'s.
struct Builder: FamilyDerivation {
    let config: CaptureConfiguration
    let family: Family
    let shape: Shape
    let groups: ExpectedRules.GroupResolver

    func groupMatch(_ name: String, not: Bool) -> Match {
        if let gid = groupID(name) { return R.gidOwner(gid, not: not) }
        return .unrecognized(UnrecognizedExtension(name: "owner", arguments: (not ? ["!"] : []) + ["--gid-owner", name]))
    }

    // MARK: 1.14 and later

    mutating func build(_ p: inout RuleProgram) {
        let dns = redirectDNS
        excludeInterfaces(&p)
        for k in config.rerouteVirtualInterfaces {
            p.insert(.nat, .prerouting, at: 1, R.rule(i: k, .return), trace: "KubevirtCommand")
        }
        if config.dropInvalid {
            if shape.restructured {
                p.append(.mangle, .prerouting, R.rule([R.ctstate(.invalid)], R.jump(.istioDrop)))
                p.append(.mangle, .istioDrop, R.rule(.drop))
            } else {
                p.append(.mangle, .prerouting, R.rule([R.ctstate(.invalid)], .drop))
            }
        }
        commonChains(&p)
        inboundPorts(&p, legacy: false)

        if shape.restructured {
            p.append(.nat, .output, R.rule(R.jump(.istioOutput)))
        } else {
            p.append(.nat, .output, R.rule(p: R.tcp, R.jump(.istioOutput)), trace: "JumpOutbound")
        }
        for port in config.outboundPortsExclude {
            p.append(.nat, .istioOutput, R.rule(p: R.tcp, [R.tcpDport(port)], .return))
            if shape.restructured {
                p.append(.nat, .istioOutput, R.rule(p: R.udp, [.udp(UDPMatch(destinationPort: PortMatch(port)))], .return))
            }
        }
        p.append(.nat, .istioOutput, R.rule(s: inboundPassthroughSource, o: "lo", .return))
        for uid in config.proxyUIDs { ownerRules(&p, R.uidOwner(uid), R.uidOwner(uid, not: true), isUID: true, dns: dns) }
        for gid in config.proxyGIDs { ownerRules(&p, R.gidOwner(gid), R.gidOwner(gid, not: true), isUID: false, dns: dns) }
        ownerGroupFilter(&p, chain: .istioOutput, prefix: nil)

        if dns {
            if shape.restructured {
                dnsChains(&p)
            } else if config.captureAllDNS {
                p.append(.nat, .istioOutput, R.rule(p: R.tcp, [R.tcpDport(53)], R.redirect(IstioPort.dnsProxy.rawValue)))
            } else {
                for s in dnsServers { p.append(.nat, .istioOutput, R.rule(d: s, p: R.tcp, [R.tcpDport(53)], R.redirect(IstioPort.dnsProxy.rawValue))) }
            }
        }

        p.append(.nat, .istioOutput, R.rule(d: loopback, .return))
        for c in excludeCIDRs { p.append(.nat, .istioOutput, R.rule(d: c.match, .return)) }
        for port in config.outboundPortsInclude {
            p.append(.nat, .istioOutput, R.rule(p: R.tcp, [R.tcpDport(port)], R.jump(.istioRedirect)))
        }
        outboundIncludes(&p, virtualWildcardTarget: R.jump(.istioRedirect))

        if dns && !shape.restructured { legacyUDPDNS(&p) }
        if tproxy { tproxyTail(&p) }
    }

    func excludeInterfaces(_ p: inout RuleProgram) {
        for x in config.excludeInterfaces {
            p.append(.nat, .prerouting, R.rule(i: x, .return), trace: "ExcludeInterfaceCommand")
            p.append(.nat, .output, R.rule(o: x, .return), trace: "ExcludeInterfaceCommand")
        }
        guard tproxy else { return }
        for x in config.excludeInterfaces {
            p.append(.mangle, .prerouting, R.rule(i: x, .return), trace: "ExcludeInterfaceCommand")
            p.append(.mangle, .output, R.rule(o: x, .return), trace: "ExcludeInterfaceCommand")
        }
    }

    /// The tunnel-port RETURN and the two REDIRECT chains every version creates.
    func commonChains(_ p: inout RuleProgram) {
        p.append(.nat, .istioInbound, R.rule(p: R.tcp, [R.tcpDport(config.inboundTunnelPort)], .return))
        p.append(.nat, .istioRedirect, R.rule(p: R.tcp, R.redirect(config.proxyPort)))
        p.append(.nat, .istioInRedirect, R.rule(p: R.tcp, R.redirect(config.inboundCapturePort)), trace: "InboundCapture")
    }

    /// `-b`: the PREROUTING jump and the per-port or catch-all rules, in nat (REDIRECT) or mangle (TPROXY).
    /// `tproxy` is false for 1.10's IPv6 path, which had no TPROXY.
    func inboundPorts(_ p: inout RuleProgram, legacy: Bool, tproxy: Bool? = nil) {
        let tproxy = tproxy ?? self.tproxy
        guard !config.inboundPortsInclude.isEmpty else { return }
        let table: TableName = tproxy ? .mangle : .nat
        if tproxy {
            p.append(.mangle, .istioDivert, R.rule(R.setMark(config.tproxyMark)))
            p.append(.mangle, .istioDivert, R.rule(.accept))
            let target = Target.tproxy(TProxyTarget(port: config.inboundCapturePort, address: .zero(family),
                                                    markValue: config.tproxyMark, markMask: 0xFFFF_FFFF))
            p.append(.mangle, .istioTProxy, R.rule(d: notLoopback, p: R.tcp, target))
        }
        p.append(table, .prerouting, R.rule(p: R.tcp, R.jump(.istioInbound)), trace: "JumpInbound")
        switch config.inboundPortsInclude {
        case .all:
            if legacy { p.append(table, .istioInbound, R.rule(p: R.tcp, [R.tcpDport(22)], .return)) }
            for port in config.inboundPortsExclude {
                p.append(table, .istioInbound, R.rule(p: R.tcp, [R.tcpDport(port)], .return), trace: "ExcludeInboundPort")
            }
            if tproxy {
                p.append(.mangle, .istioInbound, R.rule(p: R.tcp, [R.ctstate([.related, .established])], R.jump(.istioDivert)))
                p.append(.mangle, .istioInbound, R.rule(p: R.tcp, R.jump(.istioTProxy)))
            } else {
                p.append(.nat, .istioInbound, R.rule(p: R.tcp, R.jump(.istioInRedirect)))
            }
        case .some(let ports):
            for port in ports {
                if tproxy {
                    p.append(.mangle, .istioInbound, R.rule(p: R.tcp, [R.tcpDport(port), R.ctstate([.related, .established])],
                                                           R.jump(.istioDivert)), trace: "IncludeInboundPort")
                    p.append(.mangle, .istioInbound, R.rule(p: R.tcp, [R.tcpDport(port)], R.jump(.istioTProxy)), trace: "IncludeInboundPort")
                } else {
                    p.append(.nat, .istioInbound, R.rule(p: R.tcp, [R.tcpDport(port)], R.jump(.istioInRedirect)), trace: "IncludeInboundPort")
                }
            }
        }
    }

    /// The self-call, `-o lo` RETURN and owner RETURN rules for one proxy UID or GID (docs/capture-model.md §3).
    func ownerRules(_ p: inout RuleProgram, _ owner: Match, _ notOwner: Match, isUID: Bool, dns: Bool) {
        let tunnel = config.inboundTunnelPort
        let selfCall: Rule
        if shape.selfCallExemptsTunnel {
            let ports: Match = isUID && dns ? R.notDports([53, tunnel]) : R.tcpDport(tunnel, not: true)
            selfCall = R.rule(d: notLoopback, o: "lo", p: R.tcp, [ports, owner], R.jump(.istioInRedirect))
        } else if isUID && dns {
            selfCall = R.rule(d: notLoopback, o: "lo", p: R.tcp, [R.tcpDport(53, not: true), owner], R.jump(.istioInRedirect))
        } else {
            selfCall = R.rule(d: notLoopback, o: "lo", [owner], R.jump(.istioInRedirect))
        }
        p.append(.nat, .istioOutput, selfCall)
        if !includesLoopback {
            if dns {
                p.append(.nat, .istioOutput, R.rule(o: "lo", p: R.tcp, [R.tcpDport(53, not: true), notOwner], .return))
            } else {
                p.append(.nat, .istioOutput, R.rule(o: "lo", [notOwner], .return))
            }
        }
        p.append(.nat, .istioOutput, R.rule([owner], .return))
    }

    /// `ISTIO_OUTBOUND_OWNER_GROUPS[_EXCLUDE]`: one "none of these groups" RETURN, or a RETURN per excluded group.
    func ownerGroupFilter(_ p: inout RuleProgram, chain: ChainName, prefix: (p: UInt16, match: Match)?) {
        let table: TableName = .nat
        func rule(_ matches: [Match]) -> Rule {
            if let prefix { return R.rule(p: prefix.p, [prefix.match] + matches, .return) }
            return R.rule(matches, .return)
        }
        switch config.ownerGroupsInclude {
        case .all:
            for g in config.ownerGroupsExclude { p.append(table, chain, rule([groupMatch(g, not: false)])) }
        case .some(let include):
            p.append(table, chain, rule(include.map { groupMatch($0, not: true) }))
        }
    }

    /// 1.26+: nat and raw `ISTIO_OUTPUT_DNS`, raw `ISTIO_INBOUND`.
    func dnsChains(_ p: inout RuleProgram) {
        let all = config.captureAllDNS
        let servers = dnsServers
        p.append(.raw, .output, R.rule(R.jump(.istioOutputDNS)))
        if all || !servers.isEmpty { p.append(.nat, .istioOutput, R.rule(R.jump(.istioOutputDNS))) }
        if all {
            p.append(.nat, .istioOutputDNS, R.rule(p: R.tcp, [R.tcpDport(53)], R.redirect(IstioPort.dnsProxy.rawValue)))
            p.append(.nat, .istioOutputDNS, R.rule(p: R.udp, [R.udpDport(53)], R.redirect(IstioPort.dnsProxy.rawValue)))
        } else {
            for s in servers { p.append(.nat, .istioOutputDNS, R.rule(d: s, p: R.tcp, [R.tcpDport(53)], R.redirect(IstioPort.dnsProxy.rawValue))) }
            for s in servers { p.append(.nat, .istioOutputDNS, R.rule(d: s, p: R.udp, [R.udpDport(53)], R.redirect(IstioPort.dnsProxy.rawValue))) }
        }
        ownerZones(&p, chain: .istioOutputDNS)
        if all {
            p.append(.raw, .prerouting, R.rule(R.jump(.istioInbound)))
            p.append(.raw, .istioOutputDNS, R.rule(p: R.udp, [R.udpDport(53)], R.zone(2)))
            p.append(.raw, .istioInbound, R.rule(p: R.udp, [R.udpSport(53)], R.zone(1)))
        } else {
            if !servers.isEmpty { p.append(.raw, .prerouting, R.rule(R.jump(.istioInbound))) }
            for s in servers {
                p.append(.raw, .istioOutputDNS, R.rule(d: s, p: R.udp, [R.udpDport(53)], R.zone(2)))
                p.append(.raw, .istioInbound, R.rule(s: s, p: R.udp, [R.udpSport(53)], R.zone(1)))
            }
        }
    }

    /// Proxy-owned DNS traffic: queries upstream in zone 1, answers to the app in zone 2.
    func ownerZones(_ p: inout RuleProgram, chain: ChainName) {
        for uid in config.proxyUIDs {
            p.append(.raw, chain, R.rule(p: R.udp, [R.udpDport(53), R.uidOwner(uid)], R.zone(1)))
            p.append(.raw, chain, R.rule(p: R.udp, [R.udpSport(IstioPort.dnsProxy.rawValue), R.uidOwner(uid)], R.zone(2)))
        }
        for gid in config.proxyGIDs {
            p.append(.raw, chain, R.rule(p: R.udp, [R.udpDport(53), R.gidOwner(gid)], R.zone(1)))
            p.append(.raw, chain, R.rule(p: R.udp, [R.udpSport(IstioPort.dnsProxy.rawValue), R.gidOwner(gid)], R.zone(2)))
        }
    }

    /// 1.14-1.25: UDP DNS handled directly in nat OUTPUT, zones directly in raw OUTPUT/PREROUTING.
    func legacyUDPDNS(_ p: inout RuleProgram) {
        for uid in config.proxyUIDs { p.append(.nat, .output, R.rule(p: R.udp, [R.udpDport(53), R.uidOwner(uid)], .return)) }
        for gid in config.proxyGIDs { p.append(.nat, .output, R.rule(p: R.udp, [R.udpDport(53), R.gidOwner(gid)], .return)) }
        ownerGroupFilter(&p, chain: .output, prefix: (R.udp, R.udpDport(53)))
        if config.captureAllDNS {
            p.append(.nat, .output, R.rule(p: R.udp, [R.udpDport(53)], R.redirect(IstioPort.dnsProxy.rawValue)))
        } else {
            for s in dnsServers { p.append(.nat, .output, R.rule(d: s, p: R.udp, [R.udpDport(53)], R.redirect(IstioPort.dnsProxy.rawValue))) }
        }
        ownerZones(&p, chain: .output)
        if config.captureAllDNS {
            p.append(.raw, .output, R.rule(p: R.udp, [R.udpDport(53)], R.zone(2)))
            p.append(.raw, .prerouting, R.rule(p: R.udp, [R.udpSport(53)], R.zone(1)))
        } else {
            for s in dnsServers {
                p.append(.raw, .output, R.rule(d: s, p: R.udp, [R.udpDport(53)], R.zone(2)))
                let answer = shape.answerZoneMatchesSource
                    ? R.rule(s: s, p: R.udp, [R.udpSport(53)], R.zone(1))
                    : R.rule(d: s, p: R.udp, [R.udpSport(53)], R.zone(1))
                p.append(.raw, .prerouting, answer)
            }
        }
    }

    /// `-i`: the catch-all or per-CIDR jumps, and the kube-virt PREROUTING jumps inserted at the top.
    func outboundIncludes(_ p: inout RuleProgram, virtualWildcardTarget: Target) {
        if config.outboundIPRangesInclude.isAll {
            p.append(.nat, .istioOutput, R.rule(R.jump(.istioRedirect)))
            for k in config.rerouteVirtualInterfaces {
                p.insert(.nat, .prerouting, at: 1, R.rule(i: k, virtualWildcardTarget), trace: "KubevirtCommand")
            }
        } else if !includeCIDRs.isEmpty {
            for c in includeCIDRs {
                for k in config.rerouteVirtualInterfaces {
                    p.insert(.nat, .prerouting, at: 1, R.rule(d: c.match, i: k, R.jump(.istioRedirect)), trace: "KubevirtCommand")
                }
                p.append(.nat, .istioOutput, R.rule(d: c.match, R.jump(.istioRedirect)))
            }
            if !shape.restructured { p.append(.nat, .istioOutput, R.rule(.return)) }
        }
    }

    /// TPROXY: connmark save/restore, the 1338 mark for proxy-to-self traffic, the RETURNs on top of mangle ISTIO_INBOUND.
    func tproxyTail(_ p: inout RuleProgram) {
        let mark = config.tproxyMark
        let outboundMark = IstioNames.selfCallMark
        p.append(.mangle, .prerouting, R.rule(p: R.tcp, [R.mark(mark)], R.saveMark))
        p.append(.mangle, .output, R.rule(o: "lo", p: R.tcp, [R.mark(mark)], .return))
        for uid in config.proxyUIDs {
            p.append(.mangle, .output, R.rule(d: notLoopback, o: "lo", p: R.tcp, [R.uidOwner(uid)], R.setMark(outboundMark)))
        }
        for gid in config.proxyGIDs {
            p.append(.mangle, .output, R.rule(d: notLoopback, o: "lo", p: R.tcp, [R.gidOwner(gid)], R.setMark(outboundMark)))
        }
        p.append(.mangle, .output, R.rule(p: R.tcp, [R.connmark(mark)], R.restoreMark))
        p.insert(.mangle, .istioInbound, at: 1, R.rule(p: R.tcp, [R.mark(mark)], .return))
        p.insert(.mangle, .istioInbound, at: 2, R.rule(s: inboundPassthroughSource, i: "lo", p: R.tcp, .return))
        p.insert(.mangle, .istioInbound, at: 3, R.rule(i: "lo", p: R.tcp, [R.mark(outboundMark, not: true)], .return))
    }

    // MARK: 1.10

    mutating func legacy110IPv4(_ p: inout RuleProgram) {
        let dns = config.redirectDNS
        for k in config.rerouteVirtualInterfaces { p.insert(.nat, .prerouting, at: 1, R.rule(i: k, .return)) }
        commonChains(&p)
        inboundPorts(&p, legacy: true)
        p.append(.nat, .output, R.rule(p: R.tcp, R.jump(.istioOutput)))
        for port in config.outboundPortsExclude { p.append(.nat, .istioOutput, R.rule(p: R.tcp, [R.tcpDport(port)], .return)) }
        p.append(.nat, .istioOutput, R.rule(s: inboundPassthroughSource, o: "lo", .return))
        for uid in config.proxyUIDs { ownerRules(&p, R.uidOwner(uid), R.uidOwner(uid, not: true), isUID: true, dns: dns) }
        for gid in config.proxyGIDs { ownerRules(&p, R.gidOwner(gid), R.gidOwner(gid, not: true), isUID: false, dns: dns) }
        if dns {
            for s in dnsServers { p.append(.nat, .istioOutput, R.rule(d: s, p: R.tcp, [R.tcpDport(53)], R.redirect(IstioPort.dnsProxy.rawValue))) }
        }
        p.append(.nat, .istioOutput, R.rule(d: loopback, .return))
        for c in excludeCIDRs { p.append(.nat, .istioOutput, R.rule(d: c.match, .return)) }
        for port in config.outboundPortsInclude {
            p.append(.nat, .istioOutput, R.rule(p: R.tcp, [R.tcpDport(port)], R.jump(.istioRedirect)))
        }
        outboundIncludes(&p, virtualWildcardTarget: R.jump(.istioRedirect))
        if dns {
            for uid in config.proxyUIDs { p.append(.nat, .output, R.rule(p: R.udp, [R.udpDport(53), R.uidOwner(uid)], .return)) }
            for gid in config.proxyGIDs { p.append(.nat, .output, R.rule(p: R.udp, [R.udpDport(53), R.gidOwner(gid)], .return)) }
            for s in dnsServers { p.append(.nat, .output, R.rule(d: s, p: R.udp, [R.udpDport(53)], R.redirect(IstioPort.dnsProxy.rawValue))) }
            if config.legacyDNSConntrackZones {
                ownerZones(&p, chain: .output)
                for s in dnsServers {
                    p.append(.raw, .output, R.rule(d: s, p: R.udp, [R.udpDport(53)], R.zone(2)))
                    p.append(.raw, .prerouting, R.rule(d: s, p: R.udp, [R.udpSport(53)], R.zone(1)))
                }
            }
        }
        if tproxy {
            p.append(.mangle, .prerouting, R.rule(p: R.tcp, [R.mark(config.tproxyMark)], R.saveMark))
            p.append(.mangle, .output, R.rule(p: R.tcp, [R.connmark(config.tproxyMark)], R.restoreMark))
            p.insert(.mangle, .istioInbound, at: 1, R.rule(p: R.tcp, [R.mark(config.tproxyMark)], .return))
        }
    }

    /// 1.10 built IPv6 by separate code: REDIRECT only, no DNS, and with `-i '*'` the kube-virt rules RETURN.
    mutating func legacy110IPv6(_ p: inout RuleProgram) {
        for k in config.rerouteVirtualInterfaces { p.insert(.nat, .prerouting, at: 1, R.rule(i: k, .return)) }
        commonChains(&p)
        inboundPorts(&p, legacy: true, tproxy: false)
        p.append(.nat, .output, R.rule(p: R.tcp, R.jump(.istioOutput)))
        for port in config.outboundPortsExclude { p.append(.nat, .istioOutput, R.rule(p: R.tcp, [R.tcpDport(port)], .return)) }
        p.append(.nat, .istioOutput, R.rule(s: inboundPassthroughSource, o: "lo", .return))
        for uid in config.proxyUIDs {
            p.append(.nat, .istioOutput, R.rule(d: notLoopback, o: "lo", [R.uidOwner(uid)], R.jump(.istioInRedirect)))
            p.append(.nat, .istioOutput, R.rule(o: "lo", [R.uidOwner(uid, not: true)], .return))
            p.append(.nat, .istioOutput, R.rule([R.uidOwner(uid)], .return))
        }
        for gid in config.proxyGIDs {
            p.append(.nat, .istioOutput, R.rule(d: notLoopback, o: "lo", [R.gidOwner(gid)], R.jump(.istioInRedirect)))
            p.append(.nat, .istioOutput, R.rule(o: "lo", [R.gidOwner(gid, not: true)], .return))
            p.append(.nat, .istioOutput, R.rule([R.gidOwner(gid)], .return))
        }
        p.append(.nat, .istioOutput, R.rule(d: loopback, .return))
        for c in excludeCIDRs { p.append(.nat, .istioOutput, R.rule(d: c.match, .return)) }
        for port in config.outboundPortsInclude {
            p.append(.nat, .istioOutput, R.rule(p: R.tcp, [R.tcpDport(port)], R.jump(.istioRedirect)))
        }
        outboundIncludes(&p, virtualWildcardTarget: .return)
    }
}
