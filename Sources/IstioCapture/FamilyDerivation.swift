import NetfilterModel

/// The values istio-iptables derives from a configuration for one address family: loopback range, CIDR lists,
/// DNS servers, whether DNS capture is on, owner-group ids.
///
/// Defined once and read by both builders: `Builder` (iptables, one table set per family) and `NftBuilder`
/// (native nftables, one `inet` table for both families), so the two cannot drift apart.
protocol FamilyDerivation {
    var config: CaptureConfiguration { get }
    var family: Family { get }
    var shape: Shape { get }
    var groups: ExpectedRules.GroupResolver { get }
}

extension FamilyDerivation {
    var tproxy: Bool { config.interceptionMode == .tproxy }

    /// `127.0.0.1/32` (or the configured IPv4 loopback CIDR from 1.22), `::1/128`.
    var loopback: AddressMatch {
        if family == .ipv6 { return R.host("::1", .ipv6)! }
        if shape.configurableLoopback, let c = CIDR(config.hostIPv4LoopbackCIDR), c.family == .ipv4 { return c.match }
        return R.host("127.0.0.1", .ipv4)!
    }
    var notLoopback: AddressMatch { R.inverted(loopback) }
    /// The source Envoy binds when it forwards inbound connections to the app.
    var inboundPassthroughSource: AddressMatch { AddressMatch(address: IstioNames.inboundPassthroughSource(family), prefixLength: family.addressBits) }

    func cidrs(_ list: [String]) -> [CIDR] { list.compactMap(CIDR.init).filter { $0.family == family } }
    var excludeCIDRs: [CIDR] { cidrs(config.outboundIPRangesExclude) }
    var includeCIDRs: [CIDR] { cidrs(config.outboundIPRangesInclude.items) }
    /// Either family's include list holding a loopback range drops the `-o lo ! owner` RETURNs in both.
    var includesLoopback: Bool { config.outboundIPRangesInclude.items.compactMap(CIDR.init).contains { $0.isLoopback } }
    var dnsServers: [AddressMatch] {
        (family == .ipv4 ? config.dnsServersIPv4 : config.dnsServersIPv6).compactMap { R.host($0, family) }
    }

    /// 1.26+ silently turns DNS capture off when there is nothing to capture.
    var redirectDNS: Bool {
        guard config.redirectDNS else { return false }
        if shape.restructured {
            return config.captureAllDNS || !config.dnsServersIPv4.isEmpty || !config.dnsServersIPv6.isEmpty
        }
        return true
    }

    /// An owner group's GID: the resolver's answer, or the name itself when it is a number; nil when neither
    /// (iptables and nft would both refuse to load the rule).
    func groupID(_ name: String) -> UInt32? { groups(name) ?? UInt32(name) }
}

/// One family's derived values on their own, for a builder that is not itself per family.
struct DerivedFamily: FamilyDerivation {
    let config: CaptureConfiguration
    let family: Family
    let shape: Shape
    let groups: ExpectedRules.GroupResolver
}
