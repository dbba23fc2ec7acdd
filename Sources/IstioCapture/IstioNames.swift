import NetfilterModel

/// Istio's chain names, ports and identities, defined once for every module that recognises Istio's rules.
public enum IstioNames {
    /// Whether a chain is Istio's: istio-iptables (every version, sidecar and ambient) names all of its chains `ISTIO_*`.
    public static func isIstioChain(_ name: ChainName) -> Bool { name.rawValue.hasPrefix("ISTIO_") }

    /// The istio-proxy user and group; what `-u` and `-g` default to.
    public static let proxyID: UInt32 = 1337
    /// What `-t` defaults to: the mark TPROXY puts on diverted inbound packets (0x539).
    public static let tproxyMark: UInt32 = 1337
    /// The mark TPROXY mode puts on the proxy's connections to its own pod (0x53a), so mangle ISTIO_INBOUND
    /// lets them through; istio-iptables hard-codes it.
    public static let selfCallMark: UInt32 = 1338

    /// The annotation that names virtual interfaces whose inbound traffic is captured as outbound (`-k`), and the
    /// release whose injector and istio-cni plugin first read it (preferring it to the deprecated
    /// `traffic.sidecar.istio.io/kubevirtInterfaces`).
    public static let rerouteVirtualInterfacesAnnotation = "istio.io/reroute-virtual-interfaces"
    static let rerouteVirtualInterfacesSince = IstioVersion(1, 25)

    /// The DNS port whose traffic istio-iptables sends to the agent's DNS proxy.
    public static let dnsPort: UInt16 = 53

    /// The source Envoy binds when it forwards an inbound connection to the application: 127.0.0.6 / ::6.
    public static func inboundPassthroughSource(_ family: Family) -> IPAddress {
        family == .ipv4 ? IPAddress(ipv4: 0x7F00_0006) : IPAddress(family: .ipv6, value: 6)
    }
}

extension ChainName {
    public static let istioOutput: ChainName = "ISTIO_OUTPUT"
    /// 1.26+: DNS capture and conntrack zones, jumped to from nat ISTIO_OUTPUT and raw OUTPUT.
    public static let istioOutputDNS: ChainName = "ISTIO_OUTPUT_DNS"
    public static let istioInbound: ChainName = "ISTIO_INBOUND"
    public static let istioRedirect: ChainName = "ISTIO_REDIRECT"
    public static let istioInRedirect: ChainName = "ISTIO_IN_REDIRECT"
    /// TPROXY mode: established inbound connections keep their mark and skip ISTIO_TPROXY.
    public static let istioDivert: ChainName = "ISTIO_DIVERT"
    public static let istioTProxy: ChainName = "ISTIO_TPROXY"
    /// `--drop-invalid`, 1.26+.
    public static let istioDrop: ChainName = "ISTIO_DROP"
    /// Ambient's in-pod rules (ztunnel): a sidecar never installs it.
    public static let istioPrerouting: ChainName = "ISTIO_PRERT"
}

extension Table {
    /// Whether the table carries any of Istio's chains.
    public var hasIstioChains: Bool { chains.contains { IstioNames.isIstioChain($0.name) } }
}

/// The ports Istio's proxy listens on by default. `CaptureConfiguration` starts from these; the configured
/// values (`-p`, `-z`, `-e`) can differ.
public enum IstioPort: UInt16, CaseIterable, Sendable {
    case outbound = 15001
    case inbound = 15006
    case tunnel = 15008
    case status = 15020
    case health = 15021
    case dnsProxy = 15053
    case metrics = 15090

    /// How reports name the port: "Envoy outbound listener".
    public var name: String {
        switch self {
        case .outbound: "Envoy outbound listener"
        case .inbound: "Envoy inbound listener"
        case .tunnel: "HBONE tunnel port"
        case .status: "Istio agent status port"
        case .health: "health check port"
        case .dnsProxy: "DNS proxy"
        case .metrics: "Envoy metrics port"
        }
    }

    /// Whether connections land here as traffic (capture, DNS, HBONE) rather than as probes or scrapes.
    public var carriesTraffic: Bool {
        switch self {
        case .outbound, .inbound, .tunnel, .dnsProxy: true
        case .status, .health, .metrics: false
        }
    }
}

/// Which Istio data plane a ruleset's chains show, read from the rules alone before any configuration is known.
public struct IstioDataPlane: Hashable, Sendable {
    public enum Mode: String, Hashable, Sendable {
        /// istio-iptables' sidecar capture (istio-init or istio-cni).
        case sidecar
        /// Ambient's in-pod rules: ISTIO_PRERT without the sidecar's ISTIO_INBOUND or ISTIO_REDIRECT.
        case ambient
        /// No Istio chain at all.
        case none
    }

    public let mode: Mode
    /// Whether the rules hold ambient's in-pod chains, and whether the sidecar's (both: a pod moved between
    /// modes without its old rules being removed; `mode` is then sidecar).
    public let ambientRules: Bool
    public let sidecarRules: Bool
    /// Families with at least one Istio chain; IPv6 among them means istio-iptables saw IPv6 on the pod.
    public let families: [Family]

    public var capturesIPv6: Bool { families.contains(.ipv6) }
    /// Istio's rules are native `inet` tables, which see the packets of both families.
    public let inInetTables: Bool

    /// The families whose packets meet Istio's rules under a configuration: those with Istio chains, and IPv6
    /// when it is configured and the rules are `inet` tables, whether or not Istio wrote IPv6 rules into them
    /// (IPv6 is then judged through them, its gaps named, rather than reported as having no rules).
    public func familiesMet(configured: [Family]) -> [Family] {
        Family.allCases.filter { families.contains($0) || ($0 == .ipv6 && inInetTables && configured.contains(.ipv6)) }
    }

    public init(detectedIn ruleset: Ruleset) {
        // Native nftables mode's `inet istio-proxy-*` tables hook into both families, but Istio configured IPv6
        // only when they name IPv6 addresses (`ip6 daddr ::1/128`).
        let nativeIPv6 = ruleset.nativeTables.contains { t in
            IstioLayout.isNativeIstioTable(TableName("inet " + t.name)) && t.chains.contains { c in c.rules.contains { r in r.statements.contains { s in
                if case .match(let m) = s, case .payload(.field(protocol: "ip6", _)) = m.left { true } else { false }
            } } }
        }
        families = Family.allCases.filter { f in
            ruleset.tables.contains { t in
                t.family == f && (t.hasIstioChains || (IstioLayout.isNativeIstioTable(t.name) && (f == .ipv4 || nativeIPv6)))
            }
        }
        inInetTables = ruleset.tables.contains { $0.family == .ipv6 && $0.nativeFamily == .inet && IstioLayout.isNativeIstioTable($0.name) }
        let has = { (name: ChainName) in ruleset.tables.contains { $0.nativeFamily == nil && $0.chain(name) != nil } }
        let nativeSidecar = ruleset.tables.contains { IstioLayout.isNativeSidecarTable($0.name) }
        let nativeAmbient = ruleset.tables.contains { IstioLayout.isNativeAmbientTable($0.name) }
        // ISTIO_PRERT is ambient's alone; ISTIO_INBOUND and the redirect chains the sidecar's alone.
        let iptablesAmbient = has(.istioPrerouting)
        let iptablesSidecar = has(.istioInbound) || has(.istioRedirect) || has(.istioInRedirect)
            || has(.istioOutput) && !has(.istioPrerouting)
        ambientRules = iptablesAmbient || nativeAmbient
        sidecarRules = iptablesSidecar || nativeSidecar
        if families.isEmpty {
            mode = .none
        } else if ambientRules, !sidecarRules {
            mode = .ambient
        } else {
            mode = .sidecar
        }
    }
}

/// Where Istio's rules live in one rule store: iptables' `nat`/`mangle`/`raw` tables with `ISTIO_*` chains, or
/// the `inet istio-proxy-*` tables with `istio-*` chains of native nftables mode (`--native-nftables`). The
/// verifier's obligations name tables and chains through it, so they read both the same way.
public struct IstioLayout: Hashable, Sendable {
    public let nat: TableName
    public let mangle: TableName
    public let raw: TableName
    public let native: Bool

    public static let iptables = IstioLayout(nat: .nat, mangle: .mangle, raw: .raw, native: false)
    public static let nativeNftables = IstioLayout(nat: "inet istio-proxy-nat", mangle: "inet istio-proxy-mangle",
                                                   raw: "inet istio-proxy-raw", native: true)
    /// Ambient's nftables backend: istio-cni's `inet istio-ambient-*` tables.
    public static let ambientNftables = IstioLayout(nat: "inet istio-ambient-nat", mangle: "inet istio-ambient-mangle",
                                                    raw: "inet istio-ambient-raw", native: true)

    /// The chain a hook runs in Istio's tables: iptables' built-in `OUTPUT`, or the base chain `output`.
    public func hookChain(_ hook: Hook) -> ChainName { native ? ChainName(hook.rawValue) : hook.chainName }

    /// One of Istio's chains by its iptables name: `ISTIO_OUTPUT`, or `istio-output` in native nftables mode.
    public func chain(_ istio: ChainName) -> ChainName {
        guard native else { return istio }
        if istio == .istioPrerouting { return AmbientNames.nativePrerouting }
        return ChainName(String(istio.rawValue.lowercased().map { $0 == "_" ? "-" : $0 }))
    }

    /// Whether a chain of a table is one of Istio's own.
    public func isIstioChain(_ chain: ChainName, in table: TableName) -> Bool {
        native ? IstioLayout.isNativeIstioTable(table) && !Hook.allCases.contains { $0.rawValue == chain.rawValue }
            : IstioNames.isIstioChain(chain)
    }

    /// Prose written with iptables' names (`nat ISTIO_OUTPUT`, `mangle PREROUTING`, `ISTIO_REDIRECT`) in this
    /// layout's names (`inet istio-proxy-nat istio-output`, ...), so a native-mode report names what nft shows.
    public func renamed(_ text: String) -> String {
        guard native else { return text }
        let tables: [(String, TableName)] = [("nat", nat), ("mangle", mangle), ("raw", raw)]
        var out = text
        for (iptables, table) in tables {
            for hook in [Hook.prerouting, .output] {
                out = out.replacing("\(iptables) \(hook.chainName.rawValue)", with: "\(table.rawValue) \(hook.rawValue)")
            }
            out = out.replacing(try! Regex("\\b\(iptables) (ISTIO_[A-Z_]+)")) { m in
                "\(table.rawValue) " + chain(ChainName(String(m.output[1].substring ?? ""))).rawValue
            }
        }
        return out.replacing(try! Regex("ISTIO_[A-Z_]+")) { m in chain(ChainName(String(m.output[0].substring ?? ""))).rawValue }
    }

    /// How the reader names Istio's native tables (`inet istio-proxy-nat`, `inet istio-ambient-raw`, ...).
    static let nativeSidecarPrefix = "inet istio-proxy-"
    static let nativeAmbientPrefix = "inet istio-ambient-"

    /// `inet istio-proxy-nat`, `-mangle`, `-raw` (sidecar) and `inet istio-ambient-nat`, `-mangle`, `-raw` (ambient).
    public static func isNativeIstioTable(_ table: TableName) -> Bool { isNativeSidecarTable(table) || isNativeAmbientTable(table) }
    public static func isNativeSidecarTable(_ table: TableName) -> Bool { table.rawValue.hasPrefix(nativeSidecarPrefix) }
    public static func isNativeAmbientTable(_ table: TableName) -> Bool { table.rawValue.hasPrefix(nativeAmbientPrefix) }

    /// Whether a table holds ambient's in-pod rules: `ISTIO_PRERT` (no sidecar writes it) or an `istio-ambient-*` table.
    public static func holdsAmbientRules(_ table: Table) -> Bool {
        table.chain(.istioPrerouting) != nil || isNativeAmbientTable(table.name)
    }

    /// The layout a ruleset's Istio rules use: native when it holds Istio's native nftables tables and no
    /// `ISTIO_*` chain (ambient's when its tables are the `istio-ambient-*` ones).
    public static func detected(in tables: [Table]) -> IstioLayout {
        let native = tables.contains { isNativeIstioTable($0.name) }
        let iptables = tables.contains { $0.nativeFamily == nil && $0.hasIstioChains }
        guard native, !iptables else { return .iptables }
        return tables.contains(where: { isNativeSidecarTable($0.name) }) ? .nativeNftables : .ambientNftables
    }

    /// The layout of a configuration's own rules.
    public static func of(_ config: CaptureConfiguration) -> IstioLayout {
        guard config.nativeNftables else { return .iptables }
        return config.ambient != nil ? .ambientNftables : .nativeNftables
    }
}
