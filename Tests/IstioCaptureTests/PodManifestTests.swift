import Foundation
import CorpusSupport
import IstioCapture
import NetfilterModel
import TestSupport
import Testing

@Suite struct PodManifestTests {
    static let injected = Fixtures.files(under: "istio/master/injected-workloads", suffix: ".injected").map(\.lastPathComponent)

    static func manifest(_ file: String) throws -> PodManifest {
        try PodManifest(yaml: Fixtures.text("istio/master/injected-workloads/\(file)"))
    }

    @Test(arguments: injected)
    func everyInjectedWorkloadParses(_ file: String) throws {
        let m = try Self.manifest(file)
        #expect(m.kind == "Deployment")
        #expect(m.proxyContainer?.image == "registry.istio.io/testing/proxyv2:latest")
        if file.hasPrefix("init-no-intercept") {
            #expect(throws: IstioCaptureError.noSidecarCapture("sidecar.istio.io/interceptionMode is NONE")) {
                try m.captureConfiguration()
            }
        } else {
            let c = try m.captureConfiguration()
            // Every injected workload gets at least the outbound hook.
            let nat = ExpectedRules.tables(for: c).first { $0.name == .nat }
            #expect(nat?.chain(.output)?.rules.isEmpty == false)
        }
    }

    @Test func istioInitForm() throws {
        let m = try Self.manifest("hello.yaml.injected")
        #expect(m.istioInitContainer != nil)
        let c = try m.captureConfiguration()
        #expect(c.installer == .istioInit)
        #expect(c.istioVersion == .latest)
        #expect(c.interceptionMode == .redirect)
        #expect(c.inboundPortsInclude == .all)
        #expect(c.inboundPortsExclude == [15090, 15021, 15020])
        #expect(c.outboundIPRangesInclude == .all)
        #expect(c.outboundIPRangesExclude.isEmpty)
        #expect(c.outboundPortsExclude.isEmpty)
        #expect(c.proxyUIDs == [1337] && c.proxyGIDs == [1337])
        #expect(c.proxyRunAsUser == 1337 && c.proxyRunAsGroup == 1337)
        #expect(!c.ipv6Enabled)
    }

    @Test func cniFormFromAnnotations() throws {
        let m = try Self.manifest("hello.yaml.cni.injected")
        #expect(m.istioInitContainer == nil && m.validationContainer != nil)
        let c = try m.captureConfiguration()
        #expect(c.installer == .istioCNI)
        #expect(c.inboundPortsInclude == .all)
        #expect(c.inboundPortsExclude == [15020, 15021, 15090])
        #expect(c.outboundIPRangesInclude == .all)
        // The plugin's own default, which istio-init does not have.
        #expect(c.outboundPortsExclude == [15020])
        #expect(c.proxyUIDs == [1337] && c.proxyGIDs == [1337])
    }

    /// The injector's CNI-mode pod carries the annotations of a default pod, so the plugin must program
    /// exactly the rules of the corpus' `basic` CNI golden.
    @Test func cniFormMatchesTheBasicGolden() throws {
        let c = try Self.manifest("hello.yaml.cni.injected").captureConfiguration()
        let live = Corpus.tables(inSave: try Fixtures.text("istio/master/live-save/cni-sidecar-iptables/basic.ipv4.save"))
        let tables = ExpectedRules.tables(for: c)
        #expect(tables.map(\.name.rawValue).sorted() == live.keys.sorted())
        for t in tables { #expect(SaveSyntax.render(t) == live[t.name.rawValue]) }
    }

    /// With `values.global.nativeNftables=true` the injector adds `--native-nftables` to istio-init, or with CNI to
    /// istio-validation (the plugin's own switch comes from the same Helm value).
    @Test(arguments: ["hello.yaml.injected", "hello.yaml.cni.injected"])
    func nativeNftablesFromTheInjectedArguments(_ file: String) throws {
        let text = try Fixtures.text("istio/master/injected-workloads/\(file)")
        #expect(try !PodManifest(yaml: text).captureConfiguration().nativeNftables)
        let flag = "        - istio-iptables\n"
        #expect(text.contains(flag))
        let native = try PodManifest(yaml: text.replacing(flag, with: flag + "        - --native-nftables\n"))
        var c = try native.captureConfiguration()
        #expect(c.nativeNftables)
        c.istioVersion = IstioVersion(1, 28, 1)
        let tables = try ExpectedNftables.tables(for: c)
        #expect(tables.map(\.name) == ["istio-proxy-nat"])
        #expect(tables.first?.chain("prerouting") != nil, "inbound capture of every port")
    }

    @Test func tproxyForm() throws {
        let c = try Self.manifest("hello-tproxy.yaml.injected").captureConfiguration()
        #expect(c.installer == .istioInit)
        #expect(c.interceptionMode == .tproxy)
        #expect(c.proxyUIDs == [1337] && c.proxyGIDs == [1337])
        // The proxy runs as root with GID 1337: only the GID owner rules recognise it.
        #expect(c.proxyRunAsUser == 0 && c.proxyRunAsGroup == 1337)
        #expect(ExpectedRules.tables(for: c).contains { $0.name == .mangle && $0.chain(.istioTProxyName) != nil })
    }

    @Test func customRunAsUser() throws {
        let cni = try Self.manifest("proxy-override-runas.yaml.cni.injected").captureConfiguration()
        #expect(cni.installer == .istioCNI)
        #expect(cni.proxyUIDs == [1234] && cni.proxyGIDs == [4321])
        #expect(cni.proxyRunAsUser == 1234 && cni.proxyRunAsGroup == 4321)

        let tproxy = try Self.manifest("proxy-override-runas.yaml.tproxy.injected").captureConfiguration()
        #expect(tproxy.installer == .istioInit)
        #expect(tproxy.interceptionMode == .tproxy)
        // istio-init's -u 1234 (and -g defaulting to it) while the container runs as 0:4321.
        #expect(tproxy.proxyUIDs == [1234] && tproxy.proxyGIDs == [1234])
        #expect(tproxy.proxyRunAsUser == 0 && tproxy.proxyRunAsGroup == 4321)
    }

    @Test(arguments: ["hello-openshift.yaml.injected", "hello-openshift-custom-injection.yaml.injected"])
    func openShiftCustomUID(_ file: String) throws {
        let c = try Self.manifest(file).captureConfiguration()
        #expect(c.installer == .istioCNI)
        #expect(c.proxyUIDs == [1000629999] && c.proxyGIDs == [1000629999])
        #expect(c.proxyRunAsUser == 1000629999)
    }

    @Test func openShiftTProxyFallsBackTo1337() throws {
        // runAsUser 0 counts as unset for the plugin.
        let c = try Self.manifest("hello-openshift-tproxy.yaml.injected").captureConfiguration()
        #expect(c.installer == .istioCNI && c.interceptionMode == .tproxy)
        #expect(c.proxyUIDs == [1337] && c.proxyGIDs == [1337])
        #expect(c.proxyRunAsUser == 0 && c.proxyRunAsGroup == 1337)
    }

    @Test func virtualInterfacesAndTrafficAnnotations() throws {
        #expect(try Self.manifest("reroute-virtual-interfaces.yaml.injected").captureConfiguration().rerouteVirtualInterfaces == ["net0ps2"])
        #expect(try Self.manifest("kubevirtInterfaces.yaml.injected").captureConfiguration().rerouteVirtualInterfaces == ["net1"])
        let t = try Self.manifest("traffic-annotations.yaml.injected").captureConfiguration()
        #expect(t.outboundIPRangesInclude == .some(["127.0.0.1/24", "10.96.0.1/24"]))
        #expect(t.outboundIPRangesExclude == ["10.96.0.2/24", "10.96.0.3/24"])
        #expect(t.inboundPortsInclude == .some([1, 2, 3]))
        #expect(t.outboundPortsExclude == [7, 8, 9])
        let empty = try Self.manifest("traffic-annotations-empty-includes.yaml.injected").captureConfiguration()
        #expect(empty.inboundPortsInclude == .none && empty.outboundIPRangesInclude == .none)
    }

    static let plainPod = """
        apiVersion: v1
        kind: Pod
        metadata:
          name: plain
        spec:
          containers:
          - name: app
            image: nginx:1.27
        """

    @Test func podWithoutSidecar() throws {
        let m = try PodManifest(yaml: Self.plainPod)
        #expect(m.proxyContainer == nil)
        #expect(throws: IstioCaptureError.self) { try m.captureConfiguration() }
        do {
            _ = try m.captureConfiguration()
        } catch {
            #expect(error.description.hasPrefix("pod has no Istio sidecar capture"))
        }
    }

    @Test func notAManifest() {
        #expect(throws: IstioCaptureError.self) { try PodManifest(yaml: "kind: ConfigMap\ndata: {}\n") }
        #expect(throws: IstioCaptureError.self) { try PodManifest(yaml: "{ not yaml: [") }
    }

    static let livePodJSON = """
        {"apiVersion": "v1", "kind": "List", "items": [{
          "apiVersion": "v1", "kind": "Pod",
          "metadata": {"name": "web-0", "annotations": {"sidecar.istio.io/status": "{}"}},
          "spec": {
            "initContainers": [{"name": "istio-init", "image": "docker.io/istio/proxyv2:1.22.8-distroless",
              "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "",
                       "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info"],
              "env": [{"name": "ISTIO_META_DNS_CAPTURE", "value": "true"}]}],
            "containers": [{"name": "app", "image": "app"},
              {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.22.8-distroless",
               "env": [{"name": "ISTIO_DUAL_STACK", "value": "true"}, {"name": "POD_IP", "valueFrom": {"fieldRef": {}}}],
               "securityContext": {"runAsUser": 1337, "runAsGroup": 1337}}]},
          "status": {"podIPs": [{"ip": "10.244.0.7"}, {"ip": "fd00:10:244::7"}]}}]}
        """

    @Test func livePodAsJSONList() throws {
        let m = try PodManifest(yaml: Self.livePodJSON)
        #expect(m.kind == "Pod" && m.name == "web-0")
        #expect(m.istioVersion == IstioVersion(1, 22, 8))
        #expect(m.proxyContainer?.environment == ["ISTIO_DUAL_STACK": "true"])
        let c = try m.captureConfiguration(dnsServers: ["10.96.0.10", "fd00:10:96::a"])
        #expect(c.istioVersion == IstioVersion(1, 22, 8))
        // Env from istio-init and, for knobs it lacks, the proxy: DNS capture and dual stack.
        #expect(c.redirectDNS && c.dualStack)
        // Dual stack: any IPv6 pod address turns IPv6 rules on.
        #expect(c.ipv6Enabled)
        #expect(c.dnsServersIPv4 == ["10.96.0.10"] && c.dnsServersIPv6 == ["fd00:10:96::a"])
        #expect(ExpectedRules.tables(for: c).contains { $0.family == .ipv6 })
    }

    @Test func ipv6NeedsTheFirstAddressWithoutDualStack() throws {
        let json = Self.livePodJSON.replacingOccurrences(of: #"{"name": "ISTIO_DUAL_STACK", "value": "true"}, "#, with: "")
        #expect(try PodManifest(yaml: json).captureConfiguration().ipv6Enabled == false)
        let v6First = json.replacingOccurrences(of: #"[{"ip": "10.244.0.7"}, {"ip": "fd00:10:244::7"}]"#,
                                                with: #"[{"ip": "fd00:10:244::7"}, {"ip": "10.244.0.7"}]"#)
        #expect(try PodManifest(yaml: v6First).captureConfiguration().ipv6Enabled == true)
    }

    @Test(arguments: [
        ("docker.io/istio/proxyv2:1.22.8", IstioVersion(1, 22, 8)),
        ("gcr.io/istio-release/proxyv2:1.26.3-distroless", IstioVersion(1, 26, 3)),
        ("localhost:5000/istio/proxyv2:1.18.7@sha256:abcd", IstioVersion(1, 18, 7)),
        ("localhost:5000/istio/proxyv2", nil),
        ("docker.io/istio/proxyv2:latest", nil),
    ] as [(String, IstioVersion?)])
    func versionFromImageTag(_ image: String, _ version: IstioVersion?) {
        let m = PodManifest(containers: [.init(name: "istio-proxy", image: image)])
        #expect(m.istioVersion == version)
    }

    @Test func cniRejectsWhatThePluginRejects() throws {
        func pod(_ annotations: [String: String], env: [String: String] = [:], args: [String] = ["proxy", "sidecar"]) -> PodManifest {
            PodManifest(annotations: ["sidecar.istio.io/status": "{}"].merging(annotations) { $1 },
                        initContainers: [.init(name: "istio-validation")],
                        containers: [.init(name: "istio-proxy", args: args, environment: env)])
        }
        #expect(throws: IstioCaptureError.self) { try pod(["traffic.sidecar.istio.io/excludeInboundPorts": "80,http"]).captureConfiguration() }
        #expect(throws: IstioCaptureError.self) { try pod(["traffic.sidecar.istio.io/includeOutboundIPRanges": "10.0.0.0"]).captureConfiguration() }
        #expect(throws: IstioCaptureError.self) { try pod(["sidecar.istio.io/interceptionMode": "tproxy"]).captureConfiguration() }
        #expect(throws: IstioCaptureError.self) { try pod([:], env: ["DISABLE_ENVOY": "true"]).captureConfiguration() }
        #expect(throws: IstioCaptureError.self) { try pod([:], args: ["proxy", "router"]).captureConfiguration() }
        let dns = try pod([:], env: ["ISTIO_META_DNS_CAPTURE": "true", "INVALID_DROP": "true"]).captureConfiguration()
        #expect(dns.redirectDNS && dns.captureAllDNS && dns.dropInvalid)
    }
}

extension ChainName {
    static let istioTProxyName: ChainName = "ISTIO_TPROXY"
}

/// An ambient pod's manifest: the node agent's annotation makes it ambient, its own annotations shape the rules,
/// and a pod that still has a sidecar stays a sidecar pod (the node agent skips it).
@Suite struct AmbientManifestTests {
    static func pod(_ annotations: [String: String], sidecar: Bool = false, ips: [String] = ["10.244.1.7"]) -> String {
        var y = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: reviews\n  annotations:\n"
        for (k, v) in annotations.sorted(by: { $0.key < $1.key }) { y += "    \(k): \"\(v)\"\n" }
        y += "spec:\n  containers:\n  - name: reviews\n    image: reviews:1\n"
        if sidecar { y += "  - name: istio-proxy\n    image: proxyv2:1.26.0\n    args: [proxy, sidecar]\n" }
        return y + "status:\n  podIPs:\n" + ips.map { "  - ip: \($0)\n" }.joined()
    }

    @Test func annotationsShapeTheSettings() throws {
        let c = try PodManifest(yaml: Self.pod(["ambient.istio.io/redirection": "enabled", "ambient.istio.io/bypass-inbound-capture": "True",
                                                "ambient.istio.io/dns-capture": "false", "istio.io/reroute-virtual-interfaces": "net1, net2"],
                                               ips: ["10.244.1.7", "fd00::7"])).captureConfiguration()
        let a = try #require(c.ambient)
        #expect(a.bypassInboundCapture)
        #expect(a.podDNSCapture == false && !a.redirectDNS(IstioVersion(1, 26)))
        #expect(a.virtualInterfaces == ["net1", "net2"])
        #expect(c.ipv6Enabled)
    }

    @Test func defaultsAndWhatIsNotAmbient() throws {
        let plain = try PodManifest(yaml: Self.pod(["ambient.istio.io/redirection": "enabled"])).captureConfiguration()
        #expect(plain.ambient == AmbientSettings())
        #expect(plain.ambient?.redirectDNS(IstioVersion(1, 26)) == true)
        #expect(plain.ambient?.redirectDNS(IstioVersion(1, 24)) == false, "1.24's chart leaves DNS capture off")
        // Values istio-cni cannot parse (Go's ParseBool) it ignores, annotation absent; "1" and "True" parse.
        let odd = try PodManifest(yaml: Self.pod(["ambient.istio.io/redirection": "enabled", "ambient.istio.io/dns-capture": "maybe",
                                                  "ambient.istio.io/bypass-inbound-capture": "yes"])).captureConfiguration()
        #expect(odd.ambient?.podDNSCapture == nil)
        #expect(odd.ambient?.bypassInboundCapture == false)
        let parsed = try PodManifest(yaml: Self.pod(["ambient.istio.io/redirection": "enabled", "ambient.istio.io/dns-capture": "0",
                                                     "ambient.istio.io/bypass-inbound-capture": "1"])).captureConfiguration()
        #expect(parsed.ambient?.podDNSCapture == false)
        #expect(parsed.ambient?.bypassInboundCapture == true)
        let sidecar = try PodManifest(yaml: Self.pod(["ambient.istio.io/redirection": "enabled", "sidecar.istio.io/status": "{}"], sidecar: true)).captureConfiguration()
        #expect(sidecar.ambient == nil)
    }
}

extension PodManifestTests {
    /// Issue 9 item 2: the injector writes the values it rendered into istio-init's args back as annotations, so
    /// every injected workload agrees with itself; the check must not invent a difference (order, spacing, the
    /// ports the template adds to `-d`).
    @Test func injectedAnnotationsAgreeWithIstioInit() throws {
        var compared = 0
        for file in Self.injected where !file.hasPrefix("init-no-intercept") {
            let m = try Self.manifest(file)
            guard m.istioInitContainer != nil else { continue }
            if InjectionDrift.Setting.allCases.contains(where: { m.annotations[$0.annotation] != nil }) { compared += 1 }
            #expect(try m.captureConfiguration().injectionDrift.isEmpty, "\(file)")
        }
        #expect(compared >= 3, "too few injected fixtures carry the traffic annotations for this to mean anything")
    }

    /// An annotation changed on the pod after injection: each setting that now disagrees is named with what the
    /// annotation asks and what istio-init was given; the ones that still agree are not.
    @Test func annotationChangedAfterInjection() throws {
        let text = try Fixtures.text(Self.injectedPath("traffic-annotations.yaml.injected"))
        let changed = text
            .replacingOccurrences(of: "traffic.sidecar.istio.io/excludeOutboundPorts: 7,8,9", with: "traffic.sidecar.istio.io/excludeOutboundPorts: 7,8,9,5432")
            .replacingOccurrences(of: "traffic.sidecar.istio.io/includeInboundPorts: 1,2,3", with: "traffic.sidecar.istio.io/includeInboundPorts: '3,2,1'")
        #expect(changed != text)
        let c = try PodManifest(yaml: changed).captureConfiguration()
        #expect(c.outboundPortsExclude == [7, 8, 9], "the rules still follow istio-init's arguments")
        #expect(c.injectionDrift == [InjectionDrift(setting: .outboundPortsExclude, annotationValue: "7,8,9,5432",
                                                    asked: .ports(.some([7, 8, 9, 5432])), given: .ports(.some([7, 8, 9])))])
        #expect(c.injectionDrift.first?.description
            == "traffic.sidecar.istio.io/excludeOutboundPorts: \"7,8,9,5432\" asks for -o 7,8,9,5432; istio-init was given -o 7,8,9")
    }

    static func injectedPath(_ file: String) -> String { "istio/master/injected-workloads/\(file)" }
}

/// What a bundle keeps of the proxy's view of its pod (`ProxyContainerView.configurationVariables`,
/// `istioEntries`) is all the configuration is derived from: with every knob set, the configuration from the
/// kept part equals the one from everything, and the rest (secrets among it) is dropped.
@Suite struct ProxyViewRecordTests {
    static let environment: [String: String] = [
        "ISTIO_META_DNS_CAPTURE": "true", "INVALID_DROP": "true", "ISTIO_DUAL_STACK": "true", "ISTIO_META_DNS_CONNTRACK_ZONE": "true",
        "ISTIO_OUTBOUND_OWNER_GROUPS": "202,java", "ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR": "127.0.0.1/8", "NATIVE_NFTABLES": "true",
        "ISTIO_META_ISTIO_VERSION": "1.28.1", "ISTIO_META_INTERCEPTION_MODE": "TPROXY", "INSTANCE_IP": "10.0.0.1,fd00::1",
        "POD_NAME": "web-0", "POD_NAMESPACE": "shop",
        "ISTIO_META_CLUSTER_ID": "Kubernetes", "ISTIO_KUBE_APP_PROBERS": "{\"Authorization\":\"Bearer t0ken\"}", "DB_PASSWORD": "hunter2",
    ]
    static let annotations = """
        kubectl.kubernetes.io/last-applied-configuration="{\\"secret\\":\\"hunter2\\"}"
        sidecar.istio.io/status="{\\"containers\\":[\\"istio-proxy\\"]}"
        traffic.sidecar.istio.io/excludeOutboundPorts="5432"
        istio.io/reroute-virtual-interfaces="kubevirt0"

        """

    @Test func theKeptPartDerivesTheSameConfiguration() throws {
        func configuration(_ environment: [String: String], _ annotations: String) throws -> CaptureConfiguration {
            try ProxyContainerView.manifest(annotations: ProxyContainerView.parseDownwardAPI(annotations), labels: [:],
                                            environment: environment, proxyUID: 1337, proxyGID: 1337).captureConfiguration()
        }
        let kept = Self.environment.filter { ProxyContainerView.configurationVariables.contains($0.key) }
        let keptAnnotations = ProxyContainerView.istioEntries(ofDownwardAPI: Self.annotations)
        #expect(try configuration(kept, keptAnnotations) == configuration(Self.environment, Self.annotations))
        #expect(try configuration(kept, keptAnnotations) != configuration(["POD_NAME": "web-0"], keptAnnotations), "the knobs change it")
        #expect(Set(kept.keys) == Set(Self.environment.keys).subtracting(["ISTIO_META_CLUSTER_ID", "ISTIO_KUBE_APP_PROBERS", "DB_PASSWORD"]))
        #expect(!keptAnnotations.contains("hunter2") && keptAnnotations.split(separator: "\n").count == 3)
    }
}

extension PodManifestTests {
    /// From inside istio-proxy (`observe`, `verify --pid`, `node`) only the pod's annotations, labels and the proxy's
    /// environment and identity are visible. They must lead to what the pod's spec leads to: the same installer and
    /// the same expected rules, for istio-init pods (whose arguments the injector rendered from those annotations
    /// and the proxy's identity) as for istio-cni ones.
    @Test func theProxysViewExpectsWhatThePodSpecDoes() throws {
        var seen: [Installer: Int] = [:]
        for file in Self.injected where !file.hasPrefix("init-no-intercept") {
            let m = try Self.manifest(file)
            guard let proxy = m.proxyContainer else { continue }
            let spec = try m.captureConfiguration()
            // What the proxy process sees as its identity: the image's user (1337) when the spec sets none.
            let view = ProxyContainerView.manifest(annotations: m.annotations, labels: m.labels, environment: proxy.environment,
                                                   proxyUID: m.proxyRunAsUser ?? IstioNames.proxyID,
                                                   proxyGID: m.proxyRunAsGroup ?? IstioNames.proxyID)
            var derived = try view.captureConfiguration()
            if Self.renderedWithStatusPort123.contains(file) {
                // Istio's test values set global.proxy.statusPort to 123, which the pod does not carry: the view
                // assumes the default, and nothing else differs.
                #expect(spec.inboundPortsExclude == [15090, 15021, 123], "\(file)")
                #expect(derived.inboundPortsExclude == [15090, 15021, 15020], "\(file)")
                derived.inboundPortsExclude = spec.inboundPortsExclude
            }
            #expect(derived.installer == spec.installer, "\(file)")
            #expect(ExpectedRules.tables(for: derived) == ExpectedRules.tables(for: spec), "\(file)")
            #expect(derived.injectionDrift.isEmpty, "\(file)")
            seen[spec.installer, default: 0] += 1
        }
        #expect(seen[.istioInit, default: 0] >= 6 && seen[.istioCNI, default: 0] >= 4, "\(seen)")
    }

    static let renderedWithStatusPort123: Set<String> = ["kubevirtInterfaces.yaml.injected", "reroute-virtual-interfaces.yaml.injected"]
}

extension PodManifestTests {
    /// istio-init's arguments rebuilt from annotations the injected fixtures do not carry, against what Istio's
    /// template and webhook render for them (`excludeInboundPort`, `isset`, the `-u` rewrite, `-k`'s order).
    @Test func istioInitArgumentsFromAnnotations() throws {
        func view(_ annotations: [String: String], init name: String = "istio-init", version: String = "1.28.1", uid: UInt32? = 1337) -> PodManifest {
            var a = annotations
            a[ProxyContainerView.injectedAnnotation] = #"{"initContainers":["\#(name)","istio-proxy"],"containers":null}"#
            return ProxyContainerView.manifest(annotations: a, labels: [:], environment: ["ISTIO_META_ISTIO_VERSION": version],
                                               proxyUID: uid, proxyGID: uid)
        }
        func value(_ annotations: [String: String], _ flag: String, version: String = "1.28.1", uid: UInt32? = 1337) -> [String] {
            let args = view(annotations, version: version, uid: uid).istioInitContainer?.args ?? []
            return args.indices.dropLast().filter { args[$0] == flag }.map { args[$0 + 1] }
        }
        // -c and -q only when annotated, and -q's ports never as -o.
        #expect(value([:], "-c").isEmpty && value([:], "-q").isEmpty && value([:], "-o").isEmpty)
        let annotated = ["traffic.sidecar.istio.io/excludeInterfaces": "eth9", "traffic.sidecar.istio.io/includeOutboundPorts": "3306"]
        #expect(value(annotated, "-c") == ["eth9"])
        #expect(value(annotated, "-q") == ["3306"])
        #expect(value(annotated, "-o").isEmpty)
        // -d: the status port appended once; 0 appends nothing; a list that holds it already is passed as written.
        #expect(value([:], "-d") == ["15090,15021,15020"])
        #expect(value(["status.sidecar.istio.io/port": "0"], "-d") == ["15090,15021"])
        #expect(value(["status.sidecar.istio.io/port": "0", "traffic.sidecar.istio.io/excludeInboundPorts": "8080"], "-d") == ["15090,15021,8080"])
        #expect(value(["traffic.sidecar.istio.io/excludeInboundPorts": "15020, 8080"], "-d") == ["15090,15021,15020, 8080"])
        #expect(value(["status.sidecar.istio.io/port": "15030", "traffic.sidecar.istio.io/excludeInboundPorts": "8080,"], "-d") == ["15090,15021,8080,15030"])
        // -u: the proxy's UID; a root proxy's from an override, else 1337.
        #expect(value([:], "-u", uid: 1000650000) == ["1000650000"])
        #expect(value([:], "-u", uid: 0) == ["1337"])
        let override = ["proxy.istio.io/overrides": #"{"containers":[{"name":"istio-proxy","securityContext":{"runAsUser":1234}}]}"#]
        #expect(value(override, "-u", uid: 0) == ["1234"])
        // -k: from 1.25 the reroute annotation wins over kubevirtInterfaces, for istio-init and the plugin alike.
        let both = ["istio.io/reroute-virtual-interfaces": "net1", "traffic.sidecar.istio.io/kubevirtInterfaces": "net9"]
        #expect(value(both, "-k", version: "1.24.3") == ["net9"])
        #expect(value(both, "-k", version: "1.25.2") == ["net1"])
        #expect(value(["istio.io/reroute-virtual-interfaces": "net1"], "-k", version: "1.24.3").isEmpty)
        for name in ["istio-init", "istio-validation"] {
            #expect(try view(both, init: name, version: "1.24.3").captureConfiguration().rerouteVirtualInterfaces == ["net9"], "\(name)")
            #expect(try view(both, init: name, version: "1.25.2").captureConfiguration().rerouteVirtualInterfaces == ["net1"], "\(name)")
        }
    }
}
