import NetfilterModel

/// The native nftables tables istio-iptables `--native-nftables` installs for a capture configuration, as
/// `nft list ruleset` lists them on a live system and `NftablesReader` reads them (docs/capture-model.md §10):
/// `inet istio-proxy-nat`, `inet istio-proxy-mangle` (TPROXY and drop-invalid only) and `inet istio-proxy-raw`
/// (DNS conntrack zones only). One `inet` table serves both families; rules naming an IPv6 address exist only
/// when the pod is IPv6, rules naming no address apply to both families either way (docs/capture-model.md §14).
///
/// Versions: native nftables mode exists from 1.27; an earlier version is refused
/// (`IstioCaptureError.nativeNftablesUnavailable`: its istio-iptables does not know the flag), and that includes
/// `CaptureConfiguration`'s default, `IstioVersion.latest` (1.26.0), so a caller names the release. 1.27 writes no
/// `counter` statements, 1.28 and later write one into every rule. Before 1.27.4 and in 1.28.0 an insert past a
/// chain's end (TPROXY with no inbound ports) makes nft reject the whole transaction, which is refused as
/// `IstioCaptureError.nativeNftablesRejected`; so is a jump to a chain Istio leaves out for having no rules.
/// Otherwise the rules are the same from 1.27 to master (86c9f01, 2026-08-22). Both installers (istio-init and
/// the istio-cni plugin) run the same code.
public enum ExpectedNftables {
    /// The first release with native nftables mode.
    public static let firstVersion = IstioVersion(1, 27, 0)
    /// The release whose rules are assumed when the version is not known: the current shape (counters in every
    /// rule, inserts past a chain's end appended), which no earlier 1.28 patch or 1.27.0–1.27.3 fully has.
    public static let assumedVersion = IstioVersion(1, 29, 0)

    /// Every table istio-iptables creates, in the order it creates them; tables it leaves out (no rule would go
    /// into them) are absent, and each holds only the chains that get rules. Empty when the configuration does not
    /// ask for native nftables: istio-iptables then writes iptables rules (`ExpectedRules`).
    ///
    /// Group names resolve as in `ExpectedRules`; one that neither resolves nor is numeric stays a name in
    /// `meta skgid` (nft would refuse to load such a rule).
    public static func tables(for config: CaptureConfiguration,
                              groupResolver: @escaping ExpectedRules.GroupResolver = ExpectedRules.numericGroups)
        throws(IstioCaptureError) -> [NftTable] {
        guard config.nativeNftables else { return [] }
        if config.ambient != nil {
            try AmbientSettings.check(version: config.istioVersion, nativeNftables: true)
            return ExpectedAmbient.nftTables(for: config)
        }
        let shape = NftShape(config.istioVersion)
        guard shape.isAvailable else { throw .nativeNftablesUnavailable(config.istioVersion) }
        var program = NftProgram(counters: shape.hasCounters)
        NftBuilder(config: config, groups: groupResolver).build(&program)
        return try program.tables(insertPastEndAppends: shape.insertPastEndAppends, version: config.istioVersion)
    }
}

/// Which of the native-nftables shapes applies (read from the release tags of istio/istio).
struct NftShape {
    var version: IstioVersion
    init(_ version: IstioVersion) { self.version = version }

    var isAvailable: Bool { version >= ExpectedNftables.firstVersion }
    /// Every rule carries a `counter` (istio/istio#57216).
    var hasCounters: Bool { version >= IstioVersion(1, 28, 0) }
    /// An insert at or past the end of a non-empty chain becomes an append (istio/istio#58135: 1.29, backported
    /// to 1.27.4 and 1.28.1).
    var insertPastEndAppends: Bool {
        guard version.major == 1 else { return version.major > 1 }
        switch version.minor {
        case 27: return version.patch >= 4
        case 28: return version.patch >= 1
        default: return version.minor > 28
        }
    }
}

/// Builds the native rules from a configuration in istio-iptables' order of operations
/// (`tools/istio-nftables/pkg/capture/run.go`). Each family's derived values are `FamilyDerivation`'s, as for
/// the iptables rules; IPv6 rules are added only when the pod is IPv6 (`AppendV6RuleIfSupported`).
struct NftBuilder {
    let config: CaptureConfiguration
    let v4: DerivedFamily
    let v6: DerivedFamily

    init(config: CaptureConfiguration, groups: @escaping ExpectedRules.GroupResolver) {
        self.config = config
        let shape = Shape(config.istioVersion)
        v4 = DerivedFamily(config: config, family: .ipv4, shape: shape, groups: groups)
        v6 = DerivedFamily(config: config, family: .ipv6, shape: shape, groups: groups)
    }

    var ipv6: Bool { config.ipv6Enabled }
    var tproxy: Bool { v4.tproxy }
    /// The families whose address rules are written, IPv4 first.
    var families: [DerivedFamily] { ipv6 ? [v4, v6] : [v4] }

    static let dnsListenerPort: UInt16 = 15053
    /// The mark on the proxy's connections to its own pod IP in TPROXY mode.
    static let outboundMark: UInt32 = 1338

    func build(_ p: inout NftProgram) {
        let dns = v4.redirectDNS
        excludeInterfaces(&p)
        for k in config.rerouteVirtualInterfaces {
            p.insert(.nat, .prerouting, at: 0, [N.iifname(k), N.counter, N.return])
        }
        if config.dropInvalid {
            p.append(.mangle, .prerouting, [N.l4proto("tcp"), N.ctState(["invalid"]), N.counter, N.jump(.istioDrop)])
            p.append(.mangle, .istioDrop, [N.counter, N.drop])
        }
        p.append(.nat, .istioInbound, [N.l4proto("tcp"), N.port("tcp", "dport", config.inboundTunnelPort), N.counter, N.return])
        p.append(.nat, .istioRedirect, [N.l4proto("tcp"), N.counter, N.redirect(config.proxyPort)])
        p.append(.nat, .istioInRedirect, [N.l4proto("tcp"), N.counter, N.redirect(config.inboundCapturePort)])
        inboundPorts(&p)

        p.append(.nat, .output, [N.counter, N.jump(.istioOutput)])
        for port in config.outboundPortsExclude {
            p.append(.nat, .istioOutput, [N.port("tcp", "dport", port), N.counter, N.return])
            p.append(.nat, .istioOutput, [N.port("udp", "dport", port), N.counter, N.return])
        }
        for f in families {
            p.append(.nat, .istioOutput, [N.oifname("lo"), N.saddr(f.inboundPassthroughSource), N.counter, N.return])
        }
        for uid in config.proxyUIDs { ownerRules(&p, N.skuid(uid), N.skuid(uid, not: true), isUID: true, dns: dns) }
        for gid in config.proxyGIDs { ownerRules(&p, N.skgid(gid), N.skgid(gid, not: true), isUID: false, dns: dns) }
        ownerGroupFilter(&p)
        if dns { dnsRules(&p) }

        for f in families { p.append(.nat, .istioOutput, [N.daddr(f.loopback), N.counter, N.return]) }
        for f in families {
            for c in f.excludeCIDRs { p.append(.nat, .istioOutput, [N.daddr(c.match), N.counter, N.return]) }
        }
        for port in config.outboundPortsInclude {
            p.append(.nat, .istioOutput, [N.port("tcp", "dport", port), N.counter, N.jump(.istioRedirect)])
        }
        outboundIncludes(&p)
        if tproxy { tproxyTail(&p) }
    }

    /// `-c`: RETURN in nat (and, in TPROXY mode, mangle) for traffic on excluded interfaces.
    func excludeInterfaces(_ p: inout NftProgram) {
        for x in config.excludeInterfaces {
            p.append(.nat, .prerouting, [N.iifname(x), N.counter, N.return])
            p.append(.nat, .output, [N.oifname(x), N.counter, N.return])
        }
        guard tproxy else { return }
        for x in config.excludeInterfaces {
            p.append(.mangle, .prerouting, [N.iifname(x), N.counter, N.return])
            p.append(.mangle, .output, [N.oifname(x), N.counter, N.return])
        }
    }

    /// `-b`: the prerouting jump and the per-port or catch-all rules, in nat (REDIRECT) or mangle (TPROXY).
    func inboundPorts(_ p: inout NftProgram) {
        guard !config.inboundPortsInclude.isEmpty else { return }
        let tcp = N.l4proto("tcp")
        guard tproxy else {
            p.append(.nat, .prerouting, [tcp, N.counter, N.jump(.istioInbound)])
            switch config.inboundPortsInclude {
            case .all:
                for port in config.inboundPortsExclude {
                    p.append(.nat, .istioInbound, [tcp, N.port("tcp", "dport", port), N.counter, N.return])
                }
                p.append(.nat, .istioInbound, [tcp, N.counter, N.jump(.istioInRedirect)])
            case .some(let ports):
                for port in ports {
                    p.append(.nat, .istioInbound, [tcp, N.port("tcp", "dport", port), N.counter, N.jump(.istioInRedirect)])
                }
            }
            return
        }
        let mark = config.tproxyMark
        p.append(.mangle, .istioDivert, [N.counter, N.setMark(mark)])
        p.append(.mangle, .istioDivert, [N.counter, N.accept])
        for f in families {
            p.append(.mangle, .istioTProxy, [tcp, N.daddr(f.notLoopback), N.tproxy(f.family, config.inboundCapturePort),
                                             N.setMark(mark), N.counter, N.accept])
        }
        p.append(.mangle, .prerouting, [tcp, N.counter, N.jump(.istioInbound)])
        let established = N.ctState(["related", "established"])
        switch config.inboundPortsInclude {
        case .all:
            for port in config.inboundPortsExclude {
                p.append(.mangle, .istioInbound, [tcp, N.port("tcp", "dport", port), N.counter, N.return])
            }
            p.append(.mangle, .istioInbound, [tcp, established, N.counter, N.jump(.istioDivert)])
            p.append(.mangle, .istioInbound, [tcp, N.counter, N.jump(.istioTProxy)])
        case .some(let ports):
            for port in ports {
                p.append(.mangle, .istioInbound, [tcp, established, N.port("tcp", "dport", port), N.counter, N.jump(.istioDivert)])
                p.append(.mangle, .istioInbound, [tcp, N.port("tcp", "dport", port), N.counter, N.jump(.istioTProxy)])
            }
        }
    }

    /// The self-call rules (one per family), the `oifname lo` RETURN and the owner RETURN for one proxy UID or
    /// GID (docs/capture-model.md §3). With DNS capture the UID's self-call also exempts port 53, the GID's does not.
    func ownerRules(_ p: inout NftProgram, _ owner: NftStatement, _ notOwner: NftStatement, isUID: Bool, dns: Bool) {
        let tunnel = config.inboundTunnelPort
        let ports = isUID && dns ? N.notPorts("tcp", "dport", [53, tunnel]) : N.port("tcp", "dport", tunnel, not: true)
        for f in families {
            p.append(.nat, .istioOutput, [N.oifname("lo"), N.l4proto("tcp"), N.daddr(f.notLoopback), ports, owner,
                                          N.counter, N.jump(.istioInRedirect)])
        }
        if !v4.includesLoopback {
            if dns {
                p.append(.nat, .istioOutput, [N.oifname("lo"), N.l4proto("tcp"), N.port("tcp", "dport", 53, not: true), notOwner,
                                              N.counter, N.return])
            } else {
                p.append(.nat, .istioOutput, [N.oifname("lo"), notOwner, N.counter, N.return])
            }
        }
        p.append(.nat, .istioOutput, [owner, N.counter, N.return])
    }

    /// `ISTIO_OUTBOUND_OWNER_GROUPS[_EXCLUDE]`: one "none of these groups" RETURN, or a RETURN per excluded group.
    func ownerGroupFilter(_ p: inout NftProgram) {
        func group(_ name: String, not: Bool) -> NftStatement {
            N.skgid(v4.groupID(name).map { .integer(Int64($0)) } ?? .string(name), not: not)
        }
        switch config.ownerGroupsInclude {
        case .all:
            for g in config.ownerGroupsExclude { p.append(.nat, .istioOutput, [group(g, not: false), N.counter, N.return]) }
        case .some(let include):
            p.append(.nat, .istioOutput, include.map { group($0, not: true) } + [N.counter, N.return])
        }
    }

    /// nat and raw `istio-output-dns`, raw `istio-inbound`: the port-53 REDIRECTs to the agent, then the conntrack
    /// zones (`SetupDNSRedir`, `addDNSConntrackZones`). Server rules go IPv4 first, then IPv6, per protocol.
    func dnsRules(_ p: inout NftProgram) {
        let all = config.captureAllDNS
        let agent = Self.dnsListenerPort
        p.append(.raw, .output, [N.counter, N.jump(.istioOutputDNS)])
        if all || !config.dnsServersIPv4.isEmpty || !config.dnsServersIPv6.isEmpty {
            p.append(.nat, .istioOutput, [N.counter, N.jump(.istioOutputDNS)])
        }
        if all {
            p.append(.nat, .istioOutputDNS, [N.l4proto("tcp"), N.port("tcp", "dport", 53), N.counter, N.redirect(agent)])
            p.append(.nat, .istioOutputDNS, [N.port("udp", "dport", 53), N.counter, N.redirect(agent)])
        } else {
            for proto in ["tcp", "udp"] {
                for f in families {
                    for s in f.dnsServers {
                        p.append(.nat, .istioOutputDNS, [N.daddr(s), N.port(proto, "dport", 53), N.counter, N.redirect(agent)])
                    }
                }
            }
        }

        for uid in config.proxyUIDs { ownerZones(&p, N.skuid(uid)) }
        for gid in config.proxyGIDs { ownerZones(&p, N.skgid(gid)) }
        if all {
            p.append(.raw, .prerouting, [N.counter, N.jump(.istioInbound)])
            p.append(.raw, .istioOutputDNS, [N.port("udp", "dport", 53), N.counter, N.zone(2)])
            p.append(.raw, .istioInbound, [N.port("udp", "sport", 53), N.counter, N.zone(1)])
        } else {
            if !config.dnsServersIPv4.isEmpty || !config.dnsServersIPv6.isEmpty {
                p.append(.raw, .prerouting, [N.counter, N.jump(.istioInbound)])
            }
            for f in families {
                for s in f.dnsServers {
                    p.append(.raw, .istioOutputDNS, [N.port("udp", "dport", 53), N.daddr(s), N.counter, N.zone(2)])
                    p.append(.raw, .istioInbound, [N.port("udp", "sport", 53), N.saddr(s), N.counter, N.zone(1)])
                }
            }
        }
    }

    /// Proxy-owned DNS traffic: queries upstream in zone 1, answers to the app in zone 2.
    func ownerZones(_ p: inout NftProgram, _ owner: NftStatement) {
        p.append(.raw, .istioOutputDNS, [N.port("udp", "dport", 53), owner, N.counter, N.zone(1)])
        p.append(.raw, .istioOutputDNS, [N.port("udp", "sport", Self.dnsListenerPort), owner, N.counter, N.zone(2)])
    }

    /// `-i`: the catch-all or per-CIDR jumps, and the kube-virt prerouting jumps inserted at the top.
    func outboundIncludes(_ p: inout NftProgram) {
        if config.outboundIPRangesInclude.isAll {
            p.append(.nat, .istioOutput, [N.counter, N.jump(.istioRedirect)])
            for k in config.rerouteVirtualInterfaces {
                p.insert(.nat, .prerouting, at: 0, [N.iifname(k), N.counter, N.jump(.istioRedirect)])
            }
            return
        }
        for f in families {
            for c in f.includeCIDRs {
                for k in config.rerouteVirtualInterfaces {
                    p.insert(.nat, .prerouting, at: 0, [N.iifname(k), N.daddr(c.match), N.counter, N.jump(.istioRedirect)])
                }
                p.append(.nat, .istioOutput, [N.daddr(c.match), N.counter, N.jump(.istioRedirect)])
            }
        }
    }

    /// TPROXY: connmark save/restore, the 1338 mark for proxy-to-self traffic, the RETURNs inserted on top of
    /// mangle `istio-inbound`.
    func tproxyTail(_ p: inout NftProgram) {
        let mark = config.tproxyMark
        let tcp = N.l4proto("tcp")
        p.append(.mangle, .prerouting, [tcp, N.mark(mark), N.counter, N.saveMark])
        p.append(.mangle, .output, [N.oifname("lo"), tcp, N.mark(mark), N.counter, N.return])
        for owner in config.proxyUIDs.map({ N.skuid($0) }) + config.proxyGIDs.map({ N.skgid($0) }) {
            for f in families {
                p.append(.mangle, .output, [N.oifname("lo"), tcp, N.daddr(f.notLoopback), owner, N.counter,
                                            N.setMark(Self.outboundMark)])
            }
        }
        p.append(.mangle, .output, [tcp, N.connmark(mark), N.counter, N.restoreMark])
        p.insert(.mangle, .istioInbound, at: 0, [tcp, N.mark(mark), N.counter, N.return])
        for f in families {
            p.insert(.mangle, .istioInbound, at: 1, [N.iifname("lo"), tcp, N.saddr(f.inboundPassthroughSource), N.counter, N.return])
        }
        p.insert(.mangle, .istioInbound, at: 2, [N.iifname("lo"), tcp, N.mark(Self.outboundMark, not: true), N.counter, N.return])
    }
}
