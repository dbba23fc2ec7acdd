import NetfilterModel

/// The parts of a pod (or a workload's pod template) that decide which capture rules Istio installs:
/// the `istio-init` / `istio-validation` init containers, the `istio-proxy` container, annotations and pod IPs.
///
/// Reads `kubectl get pod -o yaml` (or `-o json`; JSON is YAML), a `List` of them, and workloads with a pod
/// template (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob) such as the injector's output.
public struct PodManifest: Hashable, Sendable {
    public struct Container: Hashable, Sendable {
        public var name: String
        public var image: String
        public var command: [String]
        public var args: [String]
        /// Literal `env` values; entries set through `valueFrom` are left out (their value is not in the manifest).
        public var environment: [String: String]
        public var runAsUser: UInt32?
        public var runAsGroup: UInt32?
        public init(name: String, image: String = "", command: [String] = [], args: [String] = [],
                    environment: [String: String] = [:], runAsUser: UInt32? = nil, runAsGroup: UInt32? = nil) {
            self.name = name
            self.image = image
            self.command = command
            self.args = args
            self.environment = environment
            self.runAsUser = runAsUser
            self.runAsGroup = runAsGroup
        }
    }

    public var kind: String
    public var name: String
    /// `metadata.namespace` (empty when the manifest does not say).
    public var namespace: String = ""
    public var annotations: [String: String]
    public var labels: [String: String]
    public var initContainers: [Container]
    public var containers: [Container]
    /// Pod-level `securityContext` identity, which containers inherit unless they set their own.
    public var podRunAsUser: UInt32?
    public var podRunAsGroup: UInt32?
    /// `status.podIPs` (a live pod only).
    public var podIPs: [String]
    /// `status.phase` (a live pod only).
    public var phase: String?
    /// A pod whose containers have all ended (`Succeeded`, `Failed`): it holds no network namespace any more, and
    /// the address its status still shows may already be another pod's.
    public var hasEnded: Bool { phase == "Succeeded" || phase == "Failed" }
    /// `spec.dnsConfig.nameservers` when `dnsPolicy: None`, i.e. the pod's whole resolv.conf.
    public var explicitNameservers: [String]

    public init(kind: String = "Pod", name: String = "", annotations: [String: String] = [:], labels: [String: String] = [:],
                initContainers: [Container] = [], containers: [Container] = [], podRunAsUser: UInt32? = nil,
                podRunAsGroup: UInt32? = nil, podIPs: [String] = [], explicitNameservers: [String] = []) {
        self.kind = kind
        self.name = name
        self.annotations = annotations
        self.labels = labels
        self.initContainers = initContainers
        self.containers = containers
        self.podRunAsUser = podRunAsUser
        self.podRunAsGroup = podRunAsGroup
        self.podIPs = podIPs
        self.explicitNameservers = explicitNameservers
    }

    /// The first pod or workload in the text.
    public init(yaml: String) throws(IstioCaptureError) {
        guard let first = try PodManifest.all(yaml: yaml).first else {
            throw .invalidManifest("no Pod or workload with a pod template found")
        }
        self = first
    }

    /// Every pod and workload in the text, in order (multi-document YAML and `kind: List` are flattened).
    public static func all(yaml: String) throws(IstioCaptureError) -> [PodManifest] {
        let size = yaml.utf8.count, limits = InputLimits.current
        guard size <= limits.manifestBytes else {
            throw .invalidManifest(InputLimits.exceeded("\(size) bytes", limit: limits.manifestBytes, variable: InputLimits.Variable.manifestBytes))
        }
        let nodes: [YAMLNode]
        do {
            nodes = try YAMLComposer(maxDepth: limits.nesting).composeAll(yaml)
        } catch {
            throw .invalidManifest(error.description)
        }
        var out: [PodManifest] = []
        func visit(_ node: YAMLNode) throws(IstioCaptureError) {
            guard node.mapping != nil else { return }
            if let items = node["items"] {
                for item in try Self.list(items, "items") { try visit(item) }
                return
            }
            if let manifest = try PodManifest(node: node) { out.append(manifest) }
        }
        for node in nodes { try visit(node) }
        return out
    }

    init?(node: YAMLNode) throws(IstioCaptureError) {
        let kind = try Self.string(node["kind"], "kind") ?? ""
        guard let spec = node["spec"] else { return nil }
        try Self.requireMapping(spec, "spec")
        let podSpec: YAMLNode
        let meta: YAMLNode?
        let at: String
        if spec["containers"] != nil {
            podSpec = spec
            meta = node["metadata"]
            at = "spec"
        } else if let template = spec["template"], let s = template["spec"] {
            podSpec = s
            meta = template["metadata"]
            at = "spec.template.spec"
        } else if let template = spec["jobTemplate"]?["spec"]?["template"], let s = template["spec"] {
            podSpec = s
            meta = template["metadata"]
            at = "spec.jobTemplate.spec.template.spec"
        } else {
            return nil
        }
        let metaAt = at.dropLast(4) + "metadata"
        try Self.requireMapping(podSpec, at)
        if let meta { try Self.requireMapping(meta, String(metaAt)) }
        self.kind = kind
        if let metadata = node["metadata"] { try Self.requireMapping(metadata, "metadata") }
        name = try Self.string(node["metadata"]?["name"], "metadata.name") ?? ""
        namespace = try Self.string(node["metadata"]?["namespace"], "metadata.namespace") ?? ""
        annotations = try Self.stringMap(meta?["annotations"], "\(metaAt).annotations")
        labels = try Self.stringMap(meta?["labels"], "\(metaAt).labels")
        initContainers = try Self.containers(podSpec["initContainers"], "\(at).initContainers")
        containers = try Self.containers(podSpec["containers"], "\(at).containers")
        let security = podSpec["securityContext"]
        if let security { try Self.requireMapping(security, "\(at).securityContext") }
        podRunAsUser = try Self.id(security?["runAsUser"], "\(at).securityContext.runAsUser")
        podRunAsGroup = try Self.id(security?["runAsGroup"], "\(at).securityContext.runAsGroup")
        var ips: [String] = []
        if let status = node["status"] {
            try Self.requireMapping(status, "status")
            phase = try Self.string(status["phase"], "status.phase")
            for (i, entry) in try Self.list(status["podIPs"], "status.podIPs").enumerated() {
                try Self.requireMapping(entry, "status.podIPs[\(i)]")
                if let ip = try Self.string(entry["ip"], "status.podIPs[\(i)].ip") { ips.append(ip) }
            }
            if ips.isEmpty, let ip = try Self.string(status["podIP"], "status.podIP") { ips = [ip] }
        }
        podIPs = ips
        if try Self.string(podSpec["dnsPolicy"], "\(at).dnsPolicy") == "None" {
            if let dns = podSpec["dnsConfig"] { try Self.requireMapping(dns, "\(at).dnsConfig") }
            explicitNameservers = try Self.strings(podSpec["dnsConfig"]?["nameservers"], "\(at).dnsConfig.nameservers")
        } else {
            explicitNameservers = []
        }
    }

    // MARK: strict decoding
    // A field of the wrong type is an error naming its path and line, never a silent default: a verifier that
    // guessed `runAsUser: [1, 2]` as unset would certify the capture of the wrong identity.

    static func wrongType(_ node: YAMLNode, _ path: String, expected: String) -> IstioCaptureError {
        let found = switch node.content {
        case .scalar(let text, _): "\"\(text.prefix(40))\""
        case .sequence: "a list"
        case .mapping: "a mapping"
        }
        return .invalidManifest("line \(node.line): \(path): expected \(expected), found \(found)")
    }

    static func isNull(_ node: YAMLNode) -> Bool { node.resolved == .null }

    static func requireMapping(_ node: YAMLNode, _ path: String) throws(IstioCaptureError) {
        guard node.mapping != nil || isNull(node) else { throw wrongType(node, path, expected: "a mapping") }
    }

    /// A scalar's text; nil when absent or null.
    static func string(_ node: YAMLNode?, _ path: String) throws(IstioCaptureError) -> String? {
        guard let node, !isNull(node) else { return nil }
        guard let text = node.text else { throw wrongType(node, path, expected: "a string") }
        return text
    }

    /// A sequence's items; empty when absent or null.
    static func list(_ node: YAMLNode?, _ path: String) throws(IstioCaptureError) -> [YAMLNode] {
        guard let node, !isNull(node) else { return [] }
        guard let items = node.sequence else { throw wrongType(node, path, expected: "a list") }
        return items
    }

    static func stringMap(_ node: YAMLNode?, _ path: String) throws(IstioCaptureError) -> [String: String] {
        guard let node, !isNull(node) else { return [:] }
        guard let pairs = node.mapping else { throw wrongType(node, path, expected: "a mapping of strings") }
        var out: [String: String] = [:]
        for pair in pairs {
            guard let key = pair.key.text else { throw wrongType(pair.key, path, expected: "string keys") }
            guard let value = pair.value.text else { throw wrongType(pair.value, "\(path).\(key)", expected: "a string") }
            out[key] = value
        }
        return out
    }

    static func strings(_ node: YAMLNode?, _ path: String) throws(IstioCaptureError) -> [String] {
        var out: [String] = []
        for (i, item) in try list(node, path).enumerated() {
            guard let text = item.text, !isNull(item) else { throw wrongType(item, "\(path)[\(i)]", expected: "a string") }
            out.append(text)
        }
        return out
    }

    static func id(_ node: YAMLNode?, _ path: String) throws(IstioCaptureError) -> UInt32? {
        guard let node, !isNull(node) else { return nil }
        guard let text = node.text, let value = UInt32(text) else { throw wrongType(node, path, expected: "a numeric id") }
        return value
    }

    static func containers(_ node: YAMLNode?, _ path: String) throws(IstioCaptureError) -> [Container] {
        var out: [Container] = []
        for (i, c) in try list(node, path).enumerated() {
            let at = "\(path)[\(i)]"
            guard c.mapping != nil else { throw wrongType(c, at, expected: "a container mapping") }
            var env: [String: String] = [:]
            for (j, e) in try list(c["env"], "\(at).env").enumerated() {
                guard e.mapping != nil else { throw wrongType(e, "\(at).env[\(j)]", expected: "a mapping") }
                let name = try string(e["name"], "\(at).env[\(j)].name")
                if let name, let value = try string(e["value"], "\(at).env[\(j)].value") { env[name] = value }
            }
            let security = c["securityContext"]
            if let security { try requireMapping(security, "\(at).securityContext") }
            out.append(Container(
                name: try string(c["name"], "\(at).name") ?? "", image: try string(c["image"], "\(at).image") ?? "",
                command: try strings(c["command"], "\(at).command"), args: try strings(c["args"], "\(at).args"), environment: env,
                runAsUser: try id(security?["runAsUser"], "\(at).securityContext.runAsUser"),
                runAsGroup: try id(security?["runAsGroup"], "\(at).securityContext.runAsGroup")))
        }
        return out
    }

    // MARK: what the manifest says about capture

    /// `istio-proxy`, as a regular container or a native sidecar (an init container that keeps running).
    public var proxyContainer: Container? {
        (initContainers + containers).first { $0.name == "istio-proxy" }
    }

    public var istioInitContainer: Container? { initContainers.first { $0.name == "istio-init" } }
    public var validationContainer: Container? { initContainers.first { $0.name == "istio-validation" } }

    /// The Istio release from the proxy image tag (`docker.io/istio/proxyv2:1.22.8` → 1.22.8); nil for `latest`,
    /// a digest-only reference or anything that is not a version.
    public var istioVersion: IstioVersion? {
        guard let image = proxyContainer?.image ?? istioInitContainer?.image else { return nil }
        let reference = image.split(separator: "@").first.map(String.init) ?? image
        let lastComponent = reference.split(separator: "/").last.map(String.init) ?? reference
        guard let colon = lastComponent.lastIndex(of: ":") else { return nil }
        return IstioVersion(String(lastComponent[lastComponent.index(after: colon)...]))
    }

    /// Every container but Istio's own (istio-proxy, istio-init, istio-validation), with its effective identity.
    public var workloads: [WorkloadIdentity] {
        let istio: Set<String> = ["istio-proxy", "istio-init", "istio-validation"]
        return initContainers.filter { !istio.contains($0.name) }.map { identity($0, isInit: true) }
            + containers.filter { !istio.contains($0.name) }.map { identity($0, isInit: false) }
    }

    private func identity(_ c: Container, isInit: Bool) -> WorkloadIdentity {
        WorkloadIdentity(container: c.name, isInit: isInit, uid: c.runAsUser ?? podRunAsUser, gid: c.runAsGroup ?? podRunAsGroup)
    }

    /// The identity the proxy really runs as: its container's securityContext, else the pod's.
    public var proxyRunAsUser: UInt32? { proxyContainer?.runAsUser ?? podRunAsUser }
    public var proxyRunAsGroup: UInt32? { proxyContainer?.runAsGroup ?? podRunAsGroup }

    /// The capture configuration this pod gets: from istio-init's arguments when the pod has that container,
    /// otherwise the istio-cni plugin's derivation from annotations, proxy env and securityContext (docs/capture-model.md §8).
    ///
    /// - Parameter dnsServers: the pod's resolv.conf nameservers, when known (they are not in the manifest
    ///   unless `dnsPolicy: None`); istio-init's per-server DNS rules depend on them.
    public func captureConfiguration(dnsServers: [String] = []) throws(IstioCaptureError) -> CaptureConfiguration {
        var base = CaptureConfiguration()
        base.istioVersion = istioVersion ?? .latest
        base.versionAssumed = istioVersion == nil
        var config: CaptureConfiguration
        if istioInitContainer == nil, proxyContainer == nil, AmbientSettings.isAmbient(annotations) {
            return ambientConfiguration()
        }
        if let initContainer = istioInitContainer {
            // istio-iptables reads its own environment; the injector copies proxy metadata there, so fall back
            // to the proxy's env for knobs the init container does not carry.
            var environment = proxyContainer?.environment ?? [:]
            for (k, v) in initContainer.environment { environment[k] = v }
            base.installer = .istioInit
            config = try IstioArguments.parse(arguments: initContainer.command + initContainer.args,
                                               environment: environment, base: base)
            config.injectionDrift = injectionDrift(given: config)
        } else {
            config = try cniConfiguration(base: base)
        }
        config.proxyRunAsUser = proxyRunAsUser
        config.proxyRunAsGroup = proxyRunAsGroup
        config.workloads = workloads
        let servers = dnsServers.isEmpty ? explicitNameservers : dnsServers
        if !servers.isEmpty, config.redirectDNS, !config.captureAllDNS {
            config.dnsServersIPv4 = servers.filter { IPAddress($0)?.family == .ipv4 }
            config.dnsServersIPv6 = servers.filter { IPAddress($0)?.family == .ipv6 }
        }
        // istio-iptables looks at the pod's addresses: the first decides, or with dual-stack any IPv6 one.
        let families = podIPs.compactMap { IPAddress($0)?.family }
        config.ipv6Enabled = config.dualStack ? families.contains(.ipv6) : families.first == .ipv6
        return config
    }

    /// The pod as ambient sees it: the node agent captures pods that carry no sidecar, shaped by their
    /// annotations; its own settings (DNS capture, probe addresses, IPv6) are not in the manifest and come from
    /// the caller. Also what `--ambient` makes of a pod whose redirection annotation is missing (the node agent
    /// never took it).
    public func ambientConfiguration() -> CaptureConfiguration {
        var c = CaptureConfiguration()
        c.istioVersion = AmbientShape.assumedVersion
        c.versionAssumed = true
        c.ambient = AmbientSettings.fromAnnotations(annotations)
        c.ipv6Enabled = podIPs.compactMap { IPAddress($0)?.family }.contains(.ipv6)
        return c
    }

    /// The istio-cni plugin's mapping (`NewRedirect`): annotations with the plugin's own defaults.
    func cniConfiguration(base: CaptureConfiguration) throws(IstioCaptureError) -> CaptureConfiguration {
        let mode = annotations["sidecar.istio.io/interceptionMode"]
        if mode == "NONE" { throw .noSidecarCapture("sidecar.istio.io/interceptionMode is NONE") }
        guard let proxy = proxyContainer else {
            throw .noSidecarCapture("no istio-init container and no istio-proxy container")
        }
        guard validationContainer != nil || mode != nil || annotations["sidecar.istio.io/status"] != nil else {
            throw .noSidecarCapture("istio-proxy is present but neither istio-init, istio-validation nor the injector's annotations are")
        }
        if let disable = proxy.environment["DISABLE_ENVOY"], IstioArguments.parseBool(disable) == true {
            throw .noSidecarCapture("DISABLE_ENVOY is set on istio-proxy")
        }
        if proxy.args.count >= 2, proxy.args[0] == "proxy", proxy.args[1] != "sidecar" {
            throw .noSidecarCapture("istio-proxy runs as \(proxy.args[1]), not as a sidecar")
        }
        let inject = labels["sidecar.istio.io/inject"] ?? annotations["sidecar.istio.io/inject"]
        if let inject, IstioArguments.parseBool(inject) == false {
            throw .noSidecarCapture("sidecar.istio.io/inject is false")
        }

        var c = base
        let version = c.istioVersion
        c.installer = .istioCNI
        c.proxyPort = IstioPort.outbound.rawValue
        switch mode ?? "REDIRECT" {
        case "REDIRECT": c.interceptionMode = .redirect
        case "TPROXY": c.interceptionMode = .tproxy
        default:
            throw .invalidAnnotation(key: "sidecar.istio.io/interceptionMode", value: mode ?? "", reason: "expected REDIRECT or TPROXY")
        }
        // From 1.22 the plugin takes the proxy identity from its securityContext; 0 or unset means 1337.
        if version >= IstioVersion(1, 22) {
            c.proxyUIDs = [proxy.runAsUser.flatMap { $0 == 0 ? nil : $0 } ?? IstioNames.proxyID]
            c.proxyGIDs = [proxy.runAsGroup.flatMap { $0 == 0 ? nil : $0 } ?? IstioNames.proxyID]
        } else {
            c.proxyUIDs = [IstioNames.proxyID]
            c.proxyGIDs = [IstioNames.proxyID]
        }

        func annotation(_ key: String) -> String? { annotations[key] }
        if let status = annotation("status.sidecar.istio.io/port") {
            _ = try cniPorts(status, key: "status.sidecar.istio.io/port", wildcard: false)
        }
        let includeCIDRs = annotation("traffic.sidecar.istio.io/includeOutboundIPRanges") ?? "*"
        c.outboundIPRangesInclude = includeCIDRs == "*" ? .all
            : .some(try cniCIDRs(includeCIDRs, key: "traffic.sidecar.istio.io/includeOutboundIPRanges"))
        c.outboundIPRangesExclude = try cniCIDRs(annotation("traffic.sidecar.istio.io/excludeOutboundIPRanges") ?? "",
                                                 key: "traffic.sidecar.istio.io/excludeOutboundIPRanges")

        // excludeInboundPorts defaults to the status port, and always gets 15020,15021,15090 appended (deduplicated).
        let excludeInbound = annotation("traffic.sidecar.istio.io/excludeInboundPorts") ?? String(IstioPort.status.rawValue)
        _ = try cniPorts(excludeInbound, key: "traffic.sidecar.istio.io/excludeInboundPorts", wildcard: true)
        var merged: [UInt16] = []
        for item in excludeInbound.split(separator: ",").map({ $0.trimmingSpaces }) + [IstioPort.status, .health, .metrics].map({ String($0.rawValue) }) {
            if let port = UInt16(item), !merged.contains(port) { merged.append(port) }
        }
        c.inboundPortsExclude = merged

        let includeInbound = annotation("traffic.sidecar.istio.io/includeInboundPorts") ?? "*"
        c.inboundPortsInclude = includeInbound == "*" ? .all
            : .some(try cniPorts(includeInbound, key: "traffic.sidecar.istio.io/includeInboundPorts", wildcard: true))
        // Unlike istio-init, the plugin excludes the status port outbound when the annotation is absent.
        c.outboundPortsExclude = try cniPorts(annotation("traffic.sidecar.istio.io/excludeOutboundPorts") ?? String(IstioPort.status.rawValue),
                                              key: "traffic.sidecar.istio.io/excludeOutboundPorts", wildcard: true)
        c.outboundPortsInclude = try cniPorts(annotation("traffic.sidecar.istio.io/includeOutboundPorts") ?? "",
                                              key: "traffic.sidecar.istio.io/includeOutboundPorts", wildcard: true)
        c.excludeInterfaces = try IstioArguments.items(annotation("traffic.sidecar.istio.io/excludeInterfaces") ?? "",
                                                       "traffic.sidecar.istio.io/excludeInterfaces")
        let reroute = version >= IstioNames.rerouteVirtualInterfacesSince ? annotation(IstioNames.rerouteVirtualInterfacesAnnotation) : nil
        c.rerouteVirtualInterfaces = try IstioArguments.items(reroute ?? annotation("traffic.sidecar.istio.io/kubevirtInterfaces") ?? "",
                                                              reroute == nil ? "traffic.sidecar.istio.io/kubevirtInterfaces" : IstioNames.rerouteVirtualInterfacesAnnotation)

        // DNS capture in CNI mode always captures every port-53 packet (the pod's resolv.conf is not read).
        let env = proxy.environment
        c.redirectDNS = env[IstioIptablesEnvironment.dnsCapture].flatMap(IstioArguments.parseBool) ?? false
        c.captureAllDNS = c.redirectDNS
        c.dualStack = env[IstioIptablesEnvironment.dualStack].flatMap(IstioArguments.parseBool) ?? false
        c.dropInvalid = env[IstioIptablesEnvironment.dropInvalid].flatMap(IstioArguments.parseBool) ?? false
        c.nativeNftables = validationAsksForNativeNftables
        return c
    }

    /// Whether istio-validation's arguments carry `--native-nftables` (bare, or `=BOOL` as pflag reads it).
    ///
    /// The plugin's own switch (its `NATIVE_NFTABLES` setting) is node configuration the manifest does not show;
    /// the injector adds the flag to istio-validation from the same Helm value, `global.nativeNftables`.
    var validationAsksForNativeNftables: Bool {
        var on = false
        for word in validationContainer?.args ?? [] {
            if word == "--native-nftables" {
                on = true
            } else if word.hasPrefix("--native-nftables="), let b = IstioArguments.parseBool(String(word.dropFirst(18))) {
                on = b
            }
        }
        return on
    }

    /// A port list as the plugin validates it: every comma item must be a port (`*` allowed where noted).
    func cniPorts(_ text: String, key: String, wildcard: Bool) throws(IstioCaptureError) -> [UInt16] {
        let trimmed = text.trimmingSpaces
        if wildcard, trimmed == "*" { return [] }
        if trimmed.isEmpty { return [] }
        var out: [UInt16] = []
        let items = trimmed.split(separator: ",", omittingEmptySubsequences: false)
        try IstioArguments.checkLength(items.count, key)
        for item in items {
            guard let port = UInt16(item.trimmingSpaces) else {
                throw .invalidAnnotation(key: key, value: text, reason: "\(MessageText.quoted(item)) is not a port")
            }
            out.append(port)
        }
        return out
    }

    func cniCIDRs(_ text: String, key: String) throws(IstioCaptureError) -> [String] {
        guard !text.isEmpty else { return [] }
        let items = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        try IstioArguments.checkLength(items.count, key)
        for item in items where CIDR(item) == nil {
            throw .invalidAnnotation(key: key, value: text, reason: "\(MessageText.quoted(item)) is not a CIDR")
        }
        return items
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\n" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" { s = s.dropLast() }
        return String(s)
    }
}
