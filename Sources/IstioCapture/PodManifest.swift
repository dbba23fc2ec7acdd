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
    public var annotations: [String: String]
    public var labels: [String: String]
    public var initContainers: [Container]
    public var containers: [Container]
    /// Pod-level `securityContext` identity, which containers inherit unless they set their own.
    public var podRunAsUser: UInt32?
    public var podRunAsGroup: UInt32?
    /// `status.podIPs` (a live pod only).
    public var podIPs: [String]
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
            throw .invalidManifest(InputLimits.exceeded("\(size) bytes", limit: limits.manifestBytes, variable: "IPTAUDIT_MAX_MANIFEST_BYTES"))
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
            if let items = node["items"]?.sequence {
                for item in items { try visit(item) }
                return
            }
            if let manifest = try PodManifest(node: node) { out.append(manifest) }
        }
        for node in nodes { try visit(node) }
        return out
    }

    init?(node: YAMLNode) throws(IstioCaptureError) {
        let kind = node["kind"]?.text ?? ""
        guard let spec = node["spec"] else { return nil }
        let podSpec: YAMLNode
        let meta: YAMLNode?
        if spec["containers"] != nil {
            podSpec = spec
            meta = node["metadata"]
        } else if let template = spec["template"], let s = template["spec"] {
            podSpec = s
            meta = template["metadata"]
        } else if let template = spec["jobTemplate"]?["spec"]?["template"], let s = template["spec"] {
            podSpec = s
            meta = template["metadata"]
        } else {
            return nil
        }
        self.kind = kind
        name = node["metadata"]?["name"]?.text ?? ""
        annotations = PodManifest.stringMap(meta?["annotations"])
        labels = PodManifest.stringMap(meta?["labels"])
        initContainers = try PodManifest.containers(podSpec["initContainers"])
        containers = try PodManifest.containers(podSpec["containers"])
        podRunAsUser = try PodManifest.id(podSpec["securityContext"]?["runAsUser"], "securityContext.runAsUser")
        podRunAsGroup = try PodManifest.id(podSpec["securityContext"]?["runAsGroup"], "securityContext.runAsGroup")
        var ips = (node["status"]?["podIPs"]?.sequence ?? []).compactMap { $0["ip"]?.text }
        if ips.isEmpty, let ip = node["status"]?["podIP"]?.text { ips = [ip] }
        podIPs = ips
        if podSpec["dnsPolicy"]?.text == "None" {
            explicitNameservers = (podSpec["dnsConfig"]?["nameservers"]?.sequence ?? []).compactMap { $0.text }
        } else {
            explicitNameservers = []
        }
    }

    static func stringMap(_ node: YAMLNode?) -> [String: String] {
        var out: [String: String] = [:]
        for pair in node?.mapping ?? [] {
            if let key = pair.key.text, let value = pair.value.text { out[key] = value }
        }
        return out
    }

    static func strings(_ node: YAMLNode?) -> [String] {
        (node?.sequence ?? []).compactMap { $0.text }
    }

    static func id(_ node: YAMLNode?, _ field: String) throws(IstioCaptureError) -> UInt32? {
        guard let text = node?.text else { return nil }
        guard let value = UInt32(text) else { throw .invalidManifest("\(field) \"\(text)\" is not a numeric id") }
        return value
    }

    static func containers(_ node: YAMLNode?) throws(IstioCaptureError) -> [Container] {
        var out: [Container] = []
        for c in node?.sequence ?? [] {
            var env: [String: String] = [:]
            for e in c["env"]?.sequence ?? [] {
                if let name = e["name"]?.text, let value = e["value"]?.text { env[name] = value }
            }
            let name = c["name"]?.text ?? ""
            out.append(Container(
                name: name, image: c["image"]?.text ?? "",
                command: strings(c["command"]), args: strings(c["args"]), environment: env,
                runAsUser: try id(c["securityContext"]?["runAsUser"], "\(name) securityContext.runAsUser"),
                runAsGroup: try id(c["securityContext"]?["runAsGroup"], "\(name) securityContext.runAsGroup")))
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
        let reroute = version >= IstioVersion(1, 26) ? annotation("istio.io/reroute-virtual-interfaces") : nil
        c.rerouteVirtualInterfaces = try IstioArguments.items(reroute ?? annotation("traffic.sidecar.istio.io/kubevirtInterfaces") ?? "",
                                                              reroute == nil ? "traffic.sidecar.istio.io/kubevirtInterfaces" : "istio.io/reroute-virtual-interfaces")

        // DNS capture in CNI mode always captures every port-53 packet (the pod's resolv.conf is not read).
        let env = proxy.environment
        c.redirectDNS = env["ISTIO_META_DNS_CAPTURE"].flatMap(IstioArguments.parseBool) ?? false
        c.captureAllDNS = c.redirectDNS
        c.dualStack = env["ISTIO_DUAL_STACK"].flatMap(IstioArguments.parseBool) ?? false
        c.dropInvalid = env["INVALID_DROP"].flatMap(IstioArguments.parseBool) ?? false
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
                throw .invalidAnnotation(key: key, value: text, reason: "\"\(item)\" is not a port")
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
            throw .invalidAnnotation(key: key, value: text, reason: "\"\(item)\" is not a CIDR")
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
