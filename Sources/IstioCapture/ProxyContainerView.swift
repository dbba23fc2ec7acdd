import NetfilterModel

/// The pod as the istio-proxy container sees it from inside: the injector mounts the pod's annotations and labels
/// through the downward API (`/etc/istio/pod/annotations`, `labels`) and gives the proxy its configuration as
/// environment (`ISTIO_META_*`, `INSTANCE_IP`); the proxyv2 image names its release (`ISTIO_META_ISTIO_VERSION`).
/// That is what `iptaudit observe` derives the capture configuration from when no `--pod` is given.
public enum ProxyContainerView {
    /// Where the injector mounts the downward-API files in the proxy container.
    public static let podInfoDirectory = "/etc/istio/pod"
    public static let annotationsFile = "annotations"
    public static let labelsFile = "labels"

    /// The proxy image's release (its Dockerfile sets it).
    public static let versionVariable = "ISTIO_META_ISTIO_VERSION"
    /// The pod's address, from `status.podIP` (the injector's template).
    public static let podIPVariable = "INSTANCE_IP"
    /// The interception mode the injector resolved (annotation or mesh default); the annotation wins.
    public static let interceptionModeVariables = ["ISTIO_META_INTERCEPTION_MODE", "INTERCEPTION_MODE"]
    static let interceptionModeAnnotation = "sidecar.istio.io/interceptionMode"

    /// The istio-proxy container's processes, as `/proc/PID/comm` names them: pilot-agent (PID 1 of the container)
    /// starts envoy; both carry the injector's environment. pilot-agent is preferred.
    public static let processNames = ["pilot-agent", "envoy"]
    /// The pod's name and Kubernetes namespace (the injector's template sets both from the downward API).
    public static let podNameVariable = "POD_NAME"
    public static let podNamespaceVariable = "POD_NAMESPACE"
    /// Set by the injector on every pod it injected (sidecar mode).
    public static let injectedAnnotation = "sidecar.istio.io/status"

    /// The proxy among a namespace's processes: the first pilot-agent, else the first envoy (pids ascending).
    public static func proxyProcess<P>(among processes: [P], command: (P) -> String) -> P? {
        for name in processNames { if let p = processes.first(where: { command($0) == name }) { return p } }
        return nil
    }

    /// The environment variables the pod's capture configuration is derived from: istio-iptables' knobs
    /// (`CaptureConfiguration.applyEnvironment`), the injector's interception mode and version, whether Envoy is
    /// disabled, the pod's name and address. A bundle keeps these and nothing else of the proxy's environment, which
    /// can carry secrets (`ISTIO_KUBE_APP_PROBERS` holds the app's probe headers; `proxyMetadata` anything).
    public static let configurationVariables: Set<String> = Set(interceptionModeVariables).union(IstioIptablesEnvironment.all).union([
        "DISABLE_ENVOY", versionVariable, podIPVariable, podNameVariable, podNamespaceVariable,
    ])

    /// The lines of a downward-API file that carry Istio's keys (`*.istio.io/*`), the only ones the configuration
    /// reads; the rest (`kubectl.kubernetes.io/last-applied-configuration`, say, a whole pod spec) is left out.
    public static func istioEntries(ofDownwardAPI text: String) -> String {
        text.split(separator: "\n").filter { line in line.prefix { $0 != "=" }.contains("istio.io/") }.map { $0 + "\n" }.joined()
    }

    /// Whether an environment is the proxy container's (the injector always sets Istio metadata there).
    public static func isProxyEnvironment(_ environment: [String: String]) -> Bool {
        environment.keys.contains { $0.hasPrefix("ISTIO_META_") }
    }

    /// A downward-API file: one `key="value"` per line, the value quoted as Go's `strconv.Quote` does.
    /// Lines that are not of that form are skipped (the kubelet writes nothing else).
    public static func parseDownwardAPI(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<eq])
            guard !key.isEmpty, let value = unquote(line[line.index(after: eq)...]) else { continue }
            out[key] = value
        }
        return out
    }

    /// Go's `strconv.Unquote` for a double-quoted string: `\"`, `\\`, `\n`, `\t`, `\r`, `\a`, `\b`, `\f`, `\v`,
    /// `\xNN`, `\NNN` (octal), `\uNNNN`, `\UNNNNNNNN`. nil when it is not one.
    static func unquote(_ text: Substring) -> String? {
        guard text.count >= 2, text.first == "\"", text.last == "\"" else { return nil }
        var bytes: [UInt8] = []
        var s = Array(text.dropFirst().dropLast().utf8)[...]
        func hex(_ n: Int) -> UInt32? {
            guard s.count >= n, let v = UInt32(String(decoding: s.prefix(n), as: UTF8.self), radix: 16) else { return nil }
            s = s.dropFirst(n)
            return v
        }
        while let c = s.popFirst() {
            guard c == UInt8(ascii: "\\") else { bytes.append(c); continue }
            guard let e = s.popFirst() else { return nil }
            switch e {
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "r"): bytes.append(0x0D)
            case UInt8(ascii: "a"): bytes.append(0x07)
            case UInt8(ascii: "b"): bytes.append(0x08)
            case UInt8(ascii: "f"): bytes.append(0x0C)
            case UInt8(ascii: "v"): bytes.append(0x0B)
            case UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: "'"): bytes.append(e)
            case UInt8(ascii: "x"):
                guard let v = hex(2) else { return nil }
                bytes.append(UInt8(v))
            case UInt8(ascii: "u"), UInt8(ascii: "U"):
                guard let v = hex(e == UInt8(ascii: "u") ? 4 : 8), let scalar = Unicode.Scalar(v) else { return nil }
                bytes += Array(String(Character(scalar)).utf8)
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                guard s.count >= 2, let v = UInt8(String(decoding: [e] + s.prefix(2), as: UTF8.self), radix: 8) else { return nil }
                s = s.dropFirst(2)
                bytes.append(v)
            default:
                return nil
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The pod as the proxy container knows it: its annotations and labels, one `istio-proxy` container with this
    /// environment and identity, and the init container the injector's status annotation names (istio-init with the
    /// arguments the injector rendered from those annotations, or istio-validation). `PodManifest.captureConfiguration`
    /// then derives what istio-init or the istio-cni plugin installs.
    public static func manifest(annotations: [String: String], labels: [String: String], environment: [String: String],
                                proxyUID: UInt32?, proxyGID: UInt32?) -> PodManifest {
        var annotations = annotations
        if annotations[interceptionModeAnnotation] == nil,
           let mode = interceptionModeVariables.lazy.compactMap({ environment[$0] }).first {
            annotations[interceptionModeAnnotation] = mode
        }
        let version = environment[versionVariable].flatMap { IstioVersion($0) != nil ? $0 : nil }
        let proxy = PodManifest.Container(name: "istio-proxy", image: version.map { "proxyv2:" + $0 } ?? "",
                                          args: ["proxy", "sidecar"], environment: environment,
                                          runAsUser: proxyUID, runAsGroup: proxyGID)
        let ips = (environment[podIPVariable] ?? "").split(separator: ",").map(String.init).filter { IPAddress($0) != nil }
        var pod = PodManifest(kind: "Pod", name: environment["POD_NAME"] ?? "", annotations: annotations, labels: labels,
                              containers: [proxy], podIPs: ips)
        // The init container the injector added, by the name its status annotation lists: istio-init's arguments are
        // its template applied to the annotations; istio-validation only says the istio-cni plugin installed the rules.
        let initNames = InjectorTemplate.initContainerNames(annotations: annotations) ?? []
        if initNames.contains("istio-init") {
            let args = InjectorTemplate.istioInitArguments(annotations: annotations, proxyUID: proxyUID,
                                                           version: pod.istioVersion ?? .latest)
            pod.initContainers = [PodManifest.Container(name: "istio-init", args: args)]
        } else if initNames.contains("istio-validation") {
            pod.initContainers = [PodManifest.Container(name: "istio-validation")]
        }
        return pod
    }
}
