import NetfilterModel

/// Ambient mode's constants (docs/capture-model.md §11): how istio-cni's node agent marks ztunnel's sockets and
/// routes replies back to it. Defined once for the expected rules, the obligations and the reports.
public enum AmbientNames {
    /// The mark ztunnel puts on every socket it opens inside the pod (SO_MARK 1337), matched under `markMask`.
    public static let ztunnelMark: UInt32 = 0x539
    /// Connections delivered by ztunnel carry this connmark; their replies get it restored as the packet mark.
    public static let replyMark: UInt32 = 0x111
    /// Both marks are matched in the low 12 bits only; the rest belongs to other components (a CNI, kube-proxy).
    public static let markMask: UInt32 = 0xfff
    /// `ip rule fwmark 0x111/0xfff lookup 100`: replies to ztunnel-delivered connections use this table, which
    /// holds a local default route over `lo`.
    public static let replyRouteTable: UInt32 = 100
    /// The priority the node agent gives that rule.
    public static let replyRulePriority: UInt32 = 32764
    /// The conntrack zone DNS to and from ztunnel's proxy is kept in, so its NAT does not collide with the app's.
    public static let dnsZone: UInt16 = 1
    /// `HOST_PROBE_SNAT_IP` / `HOST_PROBE_SNAT_IPV6` defaults: kubelet's probes arrive from these addresses.
    public static let defaultProbeSNATIPv4 = "169.254.7.127"
    public static let defaultProbeSNATIPv6 = "fd16:9254:7127:1337:ffff:ffff:ffff:ffff"

    /// `ambient.istio.io/redirection: enabled`: the node agent took the pod into ambient.
    public static let redirectionAnnotation = "ambient.istio.io/redirection"
    public static let bypassInboundAnnotation = "ambient.istio.io/bypass-inbound-capture"
    public static let dnsCaptureAnnotation = "ambient.istio.io/dns-capture"
    public static let virtualInterfacesAnnotation = IstioNames.rerouteVirtualInterfacesAnnotation

    /// The chain names of the `inet istio-ambient-*` tables (nftables backend).
    public static let nativePrerouting: ChainName = "istio-prerouting"
    public static let nativeOutput: ChainName = "istio-output"

    /// `0x539/0xfff`, as reports and rules print a mark under the ambient mask.
    public static func markText(_ mark: UInt32) -> String { "0x\(String(mark, radix: 16))/0x\(String(markMask, radix: 16))" }

    /// ztunnel's role for each port, as ambient reports name it.
    public static func role(_ port: IstioPort) -> String {
        switch port {
        case .outbound: "ztunnel's outbound listener"
        case .inbound: "ztunnel's inbound plaintext listener"
        case .tunnel: "ztunnel's HBONE listener"
        case .dnsProxy: "ztunnel's DNS proxy"
        default: port.name
        }
    }
}

/// The node agent's settings and the pod's annotations that shape ambient's in-pod rules (istio-cni's
/// `AmbientConfig` and `PodLevelOverrides`). Present on a `CaptureConfiguration` when the pod is ambient.
public struct AmbientSettings: Hashable, Sendable, Codable {
    /// istio-cni's `ambient.dnsCapture`; nil: the chart's default for the release (off in 1.24, on from 1.25).
    public var dnsCapture: Bool?
    /// `ambient.istio.io/dns-capture` on the pod: overrides the node agent's setting when present.
    public var podDNSCapture: Bool?
    /// `ambient.istio.io/bypass-inbound-capture: "true"`: inbound traffic reaches the app directly.
    public var bypassInboundCapture: Bool = false
    /// `istio.io/reroute-virtual-interfaces`: inbound TCP on these interfaces is treated as outbound.
    public var virtualInterfaces: [String] = []
    /// Where the node SNATs kubelet's probes from (`HOST_PROBE_SNAT_IP`, `HOST_PROBE_SNAT_IPV6`).
    public var probeSNATIPv4: String = AmbientNames.defaultProbeSNATIPv4
    public var probeSNATIPv6: String = AmbientNames.defaultProbeSNATIPv6

    public init() {}

    /// Whether the pod's DNS goes to ztunnel: the pod's annotation (read from 1.25), else the node agent's setting.
    public func redirectDNS(_ version: IstioVersion) -> Bool {
        let shape = AmbientShape(version)
        return (shape.podDNSAnnotation ? podDNSCapture : nil) ?? dnsCapture ?? shape.dnsCaptureDefault
    }

    /// Refuses a release whose in-pod rules are not modelled, or the nftables backend before it existed.
    public static func check(version: IstioVersion, nativeNftables: Bool) throws(IstioCaptureError) {
        let shape = AmbientShape(version)
        guard shape.isModelled else {
            throw .ambientUnavailable(version: version, reason: "iptaudit knows ambient's in-pod rules from \(AmbientShape.firstVersion) "
                + "(before, ztunnel captured inbound with TPROXY); give --istio-version 1.24 or later if the pod runs a newer release")
        }
        if nativeNftables, !shape.hasNftables {
            throw .ambientUnavailable(version: version, reason: "the node agent writes nftables rules from \(AmbientShape.firstNftablesVersion); "
                + "this release writes iptables rules")
        }
    }

    /// The probe SNAT address of a family.
    public func probeSNAT(_ family: Family) -> String { family == .ipv4 ? probeSNATIPv4 : probeSNATIPv6 }

    /// The settings a pod's annotations give on top of the node agent's (`base`). istio-cni reads both boolean
    /// annotations with Go's `strconv.ParseBool` and ignores a value it cannot parse (the annotation then counts
    /// as absent), and so does this.
    public static func fromAnnotations(_ annotations: [String: String], base: AmbientSettings = AmbientSettings()) -> AmbientSettings {
        var s = base
        if let v = annotations[AmbientNames.bypassInboundAnnotation], let b = IstioArguments.parseBool(v) {
            s.bypassInboundCapture = b
        }
        if let v = annotations[AmbientNames.dnsCaptureAnnotation], let b = IstioArguments.parseBool(v) {
            s.podDNSCapture = b
        }
        if let v = annotations[AmbientNames.virtualInterfacesAnnotation] {
            s.virtualInterfaces = v.split(separator: ",").map { $0.trimmingWhitespace }.filter { !$0.isEmpty }
        }
        return s
    }

    /// Whether the annotations put the pod in ambient mode.
    public static func isAmbient(_ annotations: [String: String]) -> Bool {
        annotations[AmbientNames.redirectionAnnotation] == "enabled"
    }

    /// A few lines for reports.
    func describe(version: IstioVersion, versionText: String, ipv6: Bool, native: Bool) -> [String] {
        let redirectDNS = redirectDNS(version)
        var lines = ["Istio \(versionText) ambient: in-pod rules by the istio-cni node agent (\(native ? "native nftables" : "iptables")), "
            + (ipv6 ? "IPv4 and IPv6" : "IPv4 only")]
        let inbound = bypassInboundCapture ? "bypassed (ambient.istio.io/bypass-inbound-capture)"
            : "TCP -> \(IstioPort.inbound.rawValue), HBONE \(IstioPort.tunnel.rawValue) untouched"
        lines.append("inbound: \(inbound); outbound TCP -> \(IstioPort.outbound.rawValue); ztunnel's mark 0x\(String(AmbientNames.ztunnelMark, radix: 16))/0x\(String(AmbientNames.markMask, radix: 16))")
        let dnsSource = podDNSCapture != nil && AmbientShape(version).podDNSAnnotation ? "pod annotation"
            : dnsCapture != nil ? "node agent" : "node agent's default for \(version.major).\(version.minor)"
        lines.append("DNS capture: \(redirectDNS ? "on -> \(IstioPort.dnsProxy.rawValue)" : "off") (\(dnsSource))"
            + "; probes SNAT from \(probeSNATIPv4)" + (ipv6 ? ", \(probeSNATIPv6)" : "")
            + (virtualInterfaces.isEmpty ? "" : "; virtual interfaces \(virtualInterfaces.joined(separator: ","))"))
        return lines
    }
}

/// How the in-pod rules differ between releases (read from the release tags of istio/istio).
public struct AmbientShape: Sendable {
    /// REDIRECT to ztunnel, DNS with conntrack zones, ingress mode: 1.24 (earlier releases captured inbound with
    /// TPROXY and are not modelled).
    public static let firstVersion = IstioVersion(1, 24, 0)
    /// The release whose rules are assumed when none is given: the newest shape modelled (1.29 and master alike).
    /// Ambient pods carry no Istio image whose tag would say.
    public static let assumedVersion = IstioVersion(1, 29, 0)
    /// The node agent's nftables backend (istio/istio#57524).
    public static let firstNftablesVersion = IstioVersion(1, 28, 0)

    public let version: IstioVersion
    public init(_ version: IstioVersion) { self.version = version }

    public var isModelled: Bool { version >= Self.firstVersion }
    public var hasNftables: Bool { version >= Self.firstNftablesVersion }
    /// The chart's `ambient.dnsCapture` default: off in 1.24, on from 1.25.
    public var dnsCaptureDefault: Bool { version >= IstioVersion(1, 25, 0) }
    /// `ambient.istio.io/dns-capture` is read from 1.25 (backported from #54935).
    public var podDNSAnnotation: Bool { version >= IstioVersion(1, 25, 0) }
    /// `istio.io/reroute-virtual-interfaces` for ambient pods, 1.25 (#53933).
    public var virtualInterfaces: Bool { version >= IstioVersion(1, 25, 0) }
    /// Ingress mode keeps mangle's CONNMARK set rule from 1.29 (#58577); before, replies to ztunnel's own
    /// connections into a bypassing pod were not routed back to it.
    public var ingressKeepsConnmark: Bool { version >= IstioVersion(1, 29, 0) }
    /// 1.28.0's nftables backend wrote the IPv6 rules even with IPv6 off (fixed in 1.28.1, #58270).
    public var nftablesIPv6Always: Bool { version.major == 1 && version.minor == 28 && version.patch == 0 }
}
