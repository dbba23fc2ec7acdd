import NetfilterModel

/// An Istio release, compared by minor version: the rule shapes change between minors (docs/capture-model.md §9).
public struct IstioVersion: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public var patch: Int
    public init(_ major: Int, _ minor: Int, _ patch: Int = 0) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }
    /// Parses `1.22.8`, `1.22`, or an image tag such as `1.22.8-distroless`.
    public init?(_ text: String) {
        let core = text.split(separator: "-").first.map(String.init) ?? text
        let parts = core.split(separator: ".").map { Int($0) }
        guard parts.count >= 2, parts.count <= 3, let major = parts[0], let minor = parts[1] else { return nil }
        let patch = parts.count == 3 ? parts[2] : 0
        guard let patch else { return nil }
        self.init(major, minor, patch)
    }
    /// The newest shape iptaudit knows (1.26 and master install the same rules).
    public static let latest = IstioVersion(1, 26, 0)
    public var description: String { "\(major).\(minor).\(patch)" }
    public static func < (a: IstioVersion, b: IstioVersion) -> Bool { (a.major, a.minor, a.patch) < (b.major, b.minor, b.patch) }
}

/// How inbound traffic is captured (`-m`).
public enum InterceptionMode: String, Sendable, Codable, Hashable {
    case redirect = "REDIRECT"
    case tproxy = "TPROXY"
}

/// A list flag that may be `*` (everything), empty (nothing) or explicit items (`-b`, `-i`).
public enum Selection<Item: Hashable & Sendable & Codable>: Hashable, Sendable, Codable {
    case all
    case some([Item])
    public static var none: Selection { .some([]) }
    public var items: [Item] { if case .some(let i) = self { return i } else { return [] } }
    public var isAll: Bool { if case .all = self { return true } else { return false } }
    public var isEmpty: Bool { if case .some(let i) = self { return i.isEmpty } else { return false } }
}

/// Who installed the rules: istio-init's argv, or the istio-cni plugin with its own defaults (docs/capture-model.md §8).
public enum Installer: String, Sendable, Codable, Hashable {
    case istioInit = "istio-init"
    case istioCNI = "istio-cni"
}

/// Every knob that shapes the rules istio-iptables installs (docs/capture-model.md §7), with istio-iptables' defaults.
///
/// The defaults are the binary's own; Istio's sidecar injector adds `-b '*' -i '*' -d 15090,15021,15020`,
/// which `CaptureConfiguration.injectorDefault` reproduces.
public struct CaptureConfiguration: Hashable, Sendable, Codable {
    public var istioVersion: IstioVersion = .latest
    /// Nobody said which release: `istioVersion` is iptaudit's default, and reports say so.
    public var versionAssumed: Bool = false
    public var installer: Installer = .istioInit
    /// `-p`: Envoy's outbound listener.
    public var proxyPort: UInt16 = IstioPort.outbound.rawValue
    /// `-z`: Envoy's inbound listener (also TPROXY's `--on-port`).
    public var inboundCapturePort: UInt16 = IstioPort.inbound.rawValue
    /// `-e`: the HBONE tunnel port, never captured inbound.
    public var inboundTunnelPort: UInt16 = IstioPort.tunnel.rawValue
    /// `-u`: proxy UIDs, in order (order matters: only the first gets self-call redirection).
    public var proxyUIDs: [UInt32] = [IstioNames.proxyID]
    /// `-g`: proxy GIDs; istio-iptables defaults them to the UIDs.
    public var proxyGIDs: [UInt32] = [IstioNames.proxyID]
    /// `-m`.
    public var interceptionMode: InterceptionMode = .redirect
    /// `-t`.
    public var tproxyMark: UInt32 = IstioNames.tproxyMark
    /// `-r`.
    public var tproxyRouteTable: UInt32 = 133
    /// `-b`: inbound ports captured (`*`, a list, or none).
    public var inboundPortsInclude: Selection<UInt16> = .none
    /// `-d`: inbound ports excluded (only used with `-b '*'`).
    public var inboundPortsExclude: [UInt16] = []
    /// `-q`: outbound ports always captured.
    public var outboundPortsInclude: [UInt16] = []
    /// `-o`: outbound ports never captured.
    public var outboundPortsExclude: [UInt16] = []
    /// `-i`: outbound destinations captured (`*`, CIDRs, or none).
    public var outboundIPRangesInclude: Selection<String> = .none
    /// `-x`: outbound destinations never captured.
    public var outboundIPRangesExclude: [String] = []
    /// `-k`: interfaces whose incoming traffic is treated as outbound (VMs, DinD).
    public var rerouteVirtualInterfaces: [String] = []
    /// `-c`: interfaces whose traffic is never captured.
    public var excludeInterfaces: [String] = []
    /// `--redirect-dns` (env `ISTIO_META_DNS_CAPTURE`).
    public var redirectDNS: Bool = false
    /// `--capture-all-dns`: every port-53 packet, not just the resolv.conf servers.
    public var captureAllDNS: Bool = false
    /// `--drop-invalid` (env `INVALID_DROP`).
    public var dropInvalid: Bool = false
    /// `--dual-stack` (env `ISTIO_DUAL_STACK`).
    public var dualStack: Bool = false
    /// Env `ISTIO_OUTBOUND_OWNER_GROUPS`: groups whose traffic is captured (`*` = all).
    public var ownerGroupsInclude: Selection<String> = .all
    /// Env `ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE`: groups whose traffic is never captured.
    public var ownerGroupsExclude: [String] = []
    /// Env `ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR` (1.22+).
    public var hostIPv4LoopbackCIDR: String = "127.0.0.1/32"
    /// Runtime input: resolv.conf nameservers, per family.
    public var dnsServersIPv4: [String] = []
    public var dnsServersIPv6: [String] = []
    /// The pod's nameservers were not available (a saved dump, or a live read without the pod's pid): the
    /// verifier takes them from the DNS rules instead of assuming there are none.
    public var dnsServersUnknown: Bool = false
    /// Runtime input: whether istio-iptables found the pod to be IPv6 (then ip6tables rules exist).
    public var ipv6Enabled: Bool = false
    /// The proxy container's real identity, when known from the pod spec; used to check the owner rules cover it.
    public var proxyRunAsUser: UInt32?
    public var proxyRunAsGroup: UInt32?
    /// `--iptables-trace-logging` (1.14-1.22): an NFLOG rule (group 1337) above each key rule.
    public var traceLogging: Bool = false
    /// `--native-nftables` (master): the rules go to `inet istio-proxy-*` nftables tables, not iptables.
    public var nativeNftables: Bool = false
    /// Env `ISTIO_META_DNS_CONNTRACK_ZONE`: 1.10 adds the DNS conntrack-zone rules only when it is true.
    public var legacyDNSConntrackZones: Bool = false
    /// The pod's other containers and the identities they run as (from the manifest): one that runs as a proxy
    /// UID or GID has all its traffic exempt from capture, like the proxy's own.
    public var workloads: [WorkloadIdentity] = []
    /// Set when the pod is in ambient mode: istio-cni's node agent installs in-pod rules for ztunnel instead of
    /// istio-iptables' sidecar rules, and the sidecar knobs above do not apply (except the version, `ipv6Enabled`
    /// and `nativeNftables`, which say the same for both).
    public var ambient: AmbientSettings?
    /// Settings on which the pod's annotations ask for something istio-init was not given (the rules follow
    /// istio-init; the verifier judges what the difference does to the pod's traffic).
    public var injectionDrift: [InjectionDrift] = []
    /// How istio-iptables' own flag parser read words that do not say what they seem to (`-x -b '*'`, `--redirect-dns
    /// false`, a flag given twice, a stray word).
    public var argumentQuirks: [ArgumentQuirk] = []
    /// Why istio-iptables exits on this configuration before installing a rule (a value its command line accepts
    /// and its run rejects: `-x` not a CIDR, a port iptables refuses); nil when it installs.
    public var installFailure: String?

    public init() {}

    /// What Istio's sidecar injector passes by default: capture all inbound except Envoy's own ports,
    /// capture all outbound.
    public static var injectorDefault: CaptureConfiguration {
        var c = CaptureConfiguration()
        c.inboundPortsInclude = .all
        c.inboundPortsExclude = [IstioPort.metrics, .health, .status].map(\.rawValue)
        c.outboundIPRangesInclude = .all
        return c
    }

    /// The release as reports name it, saying when it was assumed.
    public var versionText: String {
        versionAssumed ? "\(istioVersion) (assumed: no --istio-version and no Istio image tag)" : istioVersion.description
    }

    /// Families that get rules.
    public var families: [Family] { ipv6Enabled ? [.ipv4, .ipv6] : [.ipv4] }

    /// Whether DNS capture is effectively on for a family (1.26+ turns it off without servers or capture-all).
    public func dnsCaptureActive(for family: Family) -> Bool {
        guard redirectDNS else { return false }
        if captureAllDNS { return true }
        return !(family == .ipv4 ? dnsServersIPv4 : dnsServersIPv6).isEmpty
    }
}

/// A container of the pod besides Istio's own, with the identity the kernel's owner match will see for its
/// sockets: its securityContext's, else the pod's; nil where neither says (the image's USER decides, which the
/// manifest does not show).
public struct WorkloadIdentity: Hashable, Sendable, Codable {
    public var container: String
    /// An init container: it runs before the proxy and exits.
    public var isInit: Bool
    public var uid: UInt32?
    public var gid: UInt32?
    public init(container: String, isInit: Bool, uid: UInt32?, gid: UInt32?) {
        self.container = container
        self.isInit = isInit
        self.uid = uid
        self.gid = gid
    }
}

/// A stretch of istio-iptables' command line that its flag parser (pflag, under cobra) reads differently from how
/// it reads to a person.
public struct ArgumentQuirk: Hashable, Sendable, Codable {
    /// The words concerned, as written.
    public var words: [String]
    /// What istio-iptables makes of them.
    public var effect: String
    /// Whether a setting ends up other than the words suggest (a warning), or nothing changes (info).
    public var changesSettings: Bool
    public init(words: [String], effect: String, changesSettings: Bool) {
        self.words = words
        self.effect = effect
        self.changesSettings = changesSettings
    }

    /// `-x -b: pflag takes "-b" as the value of -x, …`
    public var description: String { "`\(MessageText.excerpt(ShellWords.join(words)))`: \(effect)" }
}
