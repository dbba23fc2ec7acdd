import FoundationEssentials
import NetfilterModel

/// What Istio's sidecar injector renders for a pod, as far as the pod's own annotations and its proxy's identity
/// tell. From inside the istio-proxy container (`observe`, `verify --pid`, `node` without the pod's spec) the init
/// container is not visible, but the injector's `sidecar.istio.io/status` annotation names it, and istio-init's
/// arguments are its template applied to annotations the pod still carries.
///
/// Mesh-wide Helm values (`global.proxy.includeIPRanges` and the like, a mesh's `proxyListenPort`) and
/// `global.nativeNftables` are not in the pod: their defaults are assumed.
enum InjectorTemplate {
    /// The init containers the status annotation lists (`{"initContainers":["istio-init","istio-proxy"],...}`);
    /// nil when there is no annotation or it is not the injector's JSON.
    static func initContainerNames(annotations: [String: String]) -> [String]? {
        struct Status: Decodable { var initContainers: [String]? }
        guard let text = annotations[ProxyContainerView.injectedAnnotation],
              let status = try? JSONDecoder().decode(Status.self, from: Data(text.utf8)) else { return nil }
        return status.initContainers ?? []
    }

    /// istio-init's `args`, as the injector's template renders them from the pod's annotations.
    ///
    /// `-u` is the proxy's identity: the webhook writes the istio-proxy container's runAsUser there unless it is 0;
    /// a proxy running as root (TPROXY, NET_BIND_SERVICE) got the runAsUser an override (`proxy.istio.io/overrides`)
    /// gave istio-proxy, which the webhook still writes into `-u` (1.21.3 and later), else the template's UID: 1337,
    /// or on OpenShift the namespace's UID range (for TPROXY before 1.25.4 and 1.26.2, and for NET_BIND_SERVICE),
    /// which the pod does not show; 1337 is assumed.
    static func istioInitArguments(annotations: [String: String], proxyUID: UInt32?, version: IstioVersion) -> [String] {
        func annotation(_ key: String, _ helmDefault: String) -> String { annotations[key] ?? helmDefault }
        let uid = proxyUID.flatMap { $0 == 0 ? nil : $0 } ?? overriddenProxyUID(annotations) ?? IstioNames.proxyID
        var args = ["istio-iptables",
                    "-p", String(IstioPort.outbound.rawValue), "-z", String(IstioPort.inbound.rawValue),
                    "-u", String(uid),
                    "-m", annotation("sidecar.istio.io/interceptionMode", InterceptionMode.redirect.rawValue),
                    "-i", annotation("traffic.sidecar.istio.io/includeOutboundIPRanges", "*"),
                    "-x", annotation("traffic.sidecar.istio.io/excludeOutboundIPRanges", ""),
                    "-b", annotation("traffic.sidecar.istio.io/includeInboundPorts", "*")]
        let excluded = excludeInboundPort(annotation("status.sidecar.istio.io/port", String(IstioPort.status.rawValue)),
                                          annotation("traffic.sidecar.istio.io/excludeInboundPorts", ""))
        let alwaysExcluded = "\(IstioPort.metrics.rawValue),\(IstioPort.health.rawValue)"
        args += ["-d", excluded.isEmpty ? alwaysExcluded : alwaysExcluded + "," + excluded]
        if let ports = annotations["traffic.sidecar.istio.io/includeOutboundPorts"] { args += ["-q", ports] }
        if let ports = annotations["traffic.sidecar.istio.io/excludeOutboundPorts"] { args += ["-o", ports] }
        // From 1.25 the template passes both annotations as `-k`, the reroute one last, and istio-iptables keeps the last.
        let reroute = version >= IstioNames.rerouteVirtualInterfacesSince ? annotations[IstioNames.rerouteVirtualInterfacesAnnotation] : nil
        if let interfaces = reroute ?? annotations["traffic.sidecar.istio.io/kubevirtInterfaces"] { args += ["-k", interfaces] }
        if let interfaces = annotations["traffic.sidecar.istio.io/excludeInterfaces"] { args += ["-c", interfaces] }
        return args
    }

    /// The template's `excludeInboundPort`: the status port appended to the excluded list unless it is 0, empty or
    /// already listed (then the list is returned as written).
    static func excludeInboundPort(_ statusPort: String, _ excluded: String) -> String {
        let port = statusPort.trimmingSpaces
        if port.isEmpty || port == "0" { return excluded }
        var kept: [String] = []
        for item in excluded.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            if item == port { return excluded }
            let trimmed = item.trimmingSpaces
            if !trimmed.isEmpty { kept.append(trimmed) }
        }
        return (kept + [port]).joined(separator: ",")
    }

    /// The runAsUser `proxy.istio.io/overrides` gives the istio-proxy container (among `containers` or, as a native
    /// sidecar, `initContainers`).
    static func overriddenProxyUID(_ annotations: [String: String]) -> UInt32? {
        struct Overrides: Decodable {
            struct Container: Decodable {
                struct SecurityContext: Decodable { var runAsUser: Int64? }
                var name: String?
                var securityContext: SecurityContext?
            }
            var containers: [Container]?
            var initContainers: [Container]?
        }
        guard let text = annotations["proxy.istio.io/overrides"],
              let overrides = try? JSONDecoder().decode(Overrides.self, from: Data(text.utf8)),
              let proxy = ((overrides.containers ?? []) + (overrides.initContainers ?? [])).first(where: { $0.name == "istio-proxy" }),
              let uid = proxy.securityContext?.runAsUser, uid > 0, let value = UInt32(exactly: uid) else { return nil }
        return value
    }
}
