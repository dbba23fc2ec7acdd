import Foundation
import IstioCapture
import NetfilterModel
import RuleReaders
import TestSupport
import Testing

/// One golden of Istio's corpus with the inputs that produced it (`cases.json`) and its live dumps.
public struct CorpusCase: CustomTestStringConvertible, Sendable {
    public var ref: String
    public var kind: String
    public var name: String
    /// The golden's base name, which names its live-save files.
    public var golden: String
    public var flags: [String]
    public var env: [String: String]
    public var ipv6: Bool
    public var dnsServersIPv4: [String]
    public var dnsServersIPv6: [String]
    /// CNI cases: what the plugin reads from the pod.
    public var annotations: [String: String]
    public var proxyEnv: [String: String]
    public var runAsUser: Int?
    public var runAsGroup: Int?
    /// Ambient cases: the node agent's settings with the pod's annotations applied.
    public var ambient: AmbientSettings? = nil

    public var testDescription: String { "\(ref)/\(kind)/\(name)" }
    public var isCNI: Bool { kind == "cni-sidecar-iptables" }
    /// A case of Istio's native-nftables harness (`--native-nftables`), whose golden is an nft transaction.
    public var isNativeNftables: Bool { kind == "sidecar-nftables" || kind == "ambient-nftables" }
    /// Ambient's `hostprobe` cases hold the node-side rule only (host network namespace), nothing in the pod.
    public var isHostRules: Bool { ambient != nil && name.hasPrefix("hostprobe") }

    /// The version the ref stands for; master installs the 1.26 shape of iptables rules, and for native
    /// nftables, which 1.26 does not have, is the release its VERSION file names.
    public var version: IstioVersion {
        if ref == "master", isNativeNftables || ambient != nil { return Corpus.masterVersion }
        return IstioVersion(ref) ?? .latest
    }

    /// The golden as Istio's test data holds it.
    public func goldenText() throws -> String {
        try Fixtures.text("istio/\(ref)/\(kind)/\(golden).golden")
    }

    /// Native nftables cases: what `nft list ruleset` printed after `nft -f` of the golden.
    public func recordedListing() throws -> String {
        try Fixtures.text("istio/\(ref)/live-save/\(kind)/\(golden).nft")
    }

    /// What `iptables-legacy-save` printed for `family` after loading the golden.
    public func liveSave(_ family: Family) -> String? {
        try? Fixtures.text("istio/\(ref)/live-save/\(kind)/\(golden).\(family == .ipv4 ? "ipv4" : "ipv6").save")
    }

    /// `load-results.tsv` says the golden could not be loaded for this family (so there is no ground truth).
    public func failedToLoad(_ family: Family) -> Bool {
        Corpus.loadFailures.contains("\(ref)\t\(kind)\t\(golden)\t\(family == .ipv4 ? "4" : "6")")
    }

    /// The tables as `iptables-legacy-save` printed them after loading the golden; for a native nftables case, the
    /// golden's nft transaction replayed and normalized as the live reader normalizes what nf_tables holds.
    public func ruleset() throws -> Ruleset {
        if isNativeNftables {
            let tables = try NftTransaction.replay(try goldenText(), groups: { Corpus.groupIDs[$0] }).flatMap { $0.normalized() }
            return Ruleset(tables: tables, backends: [.ipv4: .nft, .ipv6: .nft])
        }
        return try Corpus.ruleset(ipv4: liveSave(.ipv4) ?? "", ipv6: liveSave(.ipv6))
    }

    /// The configuration the case describes, built from values: the flags as an argument vector through
    /// istio-iptables' parser, the env, the runtime inputs, the ref's version; CNI cases through a
    /// `PodManifest` value carrying the injector's annotations and the proxy's env and securityContext.
    public func configuration() throws -> CaptureConfiguration {
        var config: CaptureConfiguration
        if let ambient {
            config = CaptureConfiguration()
            config.ambient = ambient
            config.istioVersion = version
            config.ipv6Enabled = ipv6
            config.nativeNftables = kind == "ambient-nftables"
            return config
        }
        if isCNI {
            let pod = PodManifest(kind: "Pod", name: name, annotations: annotations,
                                  initContainers: [.init(name: "istio-validation", image: "proxyv2:latest",
                                                         args: ["istio-iptables", "--run-validation", "--skip-rule-apply"])],
                                  containers: [.init(name: "app", image: "app:1"),
                                               .init(name: "istio-proxy", image: "proxyv2:latest", args: ["proxy", "sidecar"],
                                                     environment: proxyEnv, runAsUser: runAsUser.map { UInt32($0) },
                                                     runAsGroup: runAsGroup.map { UInt32($0) })])
            config = try pod.captureConfiguration()
            config.istioVersion = .latest
            return config
        }
        config = try IstioArguments.parse(arguments: ["istio-iptables"] + flags, environment: env, base: versioned)
        return withRuntimeInputs(config)
    }

    /// The same configuration built through the text a user hands the product: the flags as one shell
    /// command line, the env applied afterwards; CNI cases through the manifest YAML of `podYAML`.
    /// Tests of the parsers use this path; `configuration()` keeps them out of the picture.
    public func configurationThroughText() throws -> CaptureConfiguration {
        if let ambient {
            // The pod's part through its manifest; the node agent's settings are options, as on the command line.
            var config = try PodManifest(yaml: ambientPodYAML).captureConfiguration()
            config.ambient?.dnsCapture = ambient.dnsCapture
            config.ambient?.probeSNATIPv4 = ambient.probeSNATIPv4
            config.ambient?.probeSNATIPv6 = ambient.probeSNATIPv6
            config.istioVersion = version
            config.ipv6Enabled = ipv6
            config.nativeNftables = kind == "ambient-nftables"
            return config
        }
        if isCNI { return try PodManifest(yaml: podYAML).captureConfiguration() }
        var config = try IstioArguments.parse((["istio-iptables"] + flags).map(Corpus.shellQuoted).joined(separator: " "),
                                              environment: [:], base: versioned)
        try config.applyEnvironment(env)
        return withRuntimeInputs(config)
    }

    /// The case's release, known before its flags are read (the release decides which flags exist).
    private var versioned: CaptureConfiguration {
        var c = CaptureConfiguration()
        c.istioVersion = version
        return c
    }

    /// What `cases.json` sets outside the flags: the version and the runtime inputs.
    private func withRuntimeInputs(_ config: CaptureConfiguration) -> CaptureConfiguration {
        var config = config
        config.istioVersion = version
        config.ipv6Enabled = ipv6
        config.dnsServersIPv4 = dnsServersIPv4
        config.dnsServersIPv6 = dnsServersIPv6
        return config
    }

    /// An ambient pod as the node agent sees it: the redirection annotation, the case's annotations, no sidecar.
    public var ambientPodYAML: String {
        var y = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: \(name.lowercased().replacingOccurrences(of: "_", with: "-"))\n  annotations:\n"
        y += "    ambient.istio.io/redirection: enabled\n"
        for (k, v) in annotations.sorted(by: { $0.key < $1.key }) { y += "    \(k): '\(v)'\n" }
        return y + "spec:\n  containers:\n  - name: app\n    image: app:1\n"
    }

    /// A minimal pod as the injector leaves it in CNI mode: istio-validation, istio-proxy, the case's annotations.
    public var podYAML: String {
        func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "''") + "'" }
        var y = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: \(name.lowercased())\n"
        if !annotations.isEmpty {
            y += "  annotations:\n"
            for (k, v) in annotations.sorted(by: { $0.key < $1.key }) { y += "    \(k): \(quoted(v))\n" }
        }
        y += """
            spec:
              initContainers:
              - name: istio-validation
                image: registry.istio.io/testing/proxyv2:latest
                args: [istio-iptables, --run-validation, --skip-rule-apply]
              containers:
              - name: app
                image: app:1
              - name: istio-proxy
                image: registry.istio.io/testing/proxyv2:latest
                args: [proxy, sidecar]

            """
        if !proxyEnv.isEmpty {
            y += "    env:\n"
            for (k, v) in proxyEnv.sorted(by: { $0.key < $1.key }) { y += "    - name: \(k)\n      value: \(quoted(v))\n" }
        }
        if runAsUser != nil || runAsGroup != nil {
            y += "    securityContext:\n"
            if let u = runAsUser { y += "      runAsUser: \(u)\n" }
            if let g = runAsGroup { y += "      runAsGroup: \(g)\n" }
        }
        return y
    }
}

public enum Corpus {
    public static let sidecarRefs = ["1.10.6", "1.14.6", "1.26.8", "master"]

    /// Every sidecar case whose golden is a complete rule set (1.10 only has those with scope `run`),
    /// and every CNI case. Not filtered by the presence of a live dump: a missing dump fails the tests
    /// that read it instead of shrinking the corpus unnoticed.
    public static let cases: [CorpusCase] = {
        var out: [CorpusCase] = []
        for ref in sidecarRefs {
            guard let cases = object("istio/\(ref)/sidecar-iptables/cases.json")?["cases"] as? [String: [String: Any]] else { continue }
            for (name, c) in cases.sorted(by: { $0.key < $1.key }) {
                if ref == "1.10.6", c["scope"] as? String != "run" { continue }
                let runtime = c["runtime_inputs"] as? [String: [String: Any]] ?? [:]
                let ipv6 = (runtime["EnableIPv6"]?["value"] ?? runtime["EnableInboundIPv6"]?["value"]) as? Bool ?? false
                out.append(CorpusCase(
                    ref: ref, kind: "sidecar-iptables", name: name, golden: golden(c, name),
                    flags: c["flags"] as? [String] ?? [], env: c["env"] as? [String: String] ?? [:], ipv6: ipv6,
                    dnsServersIPv4: runtime["DNSServersV4"]?["value"] as? [String] ?? [],
                    dnsServersIPv6: runtime["DNSServersV6"]?["value"] as? [String] ?? [],
                    annotations: [:], proxyEnv: [:], runAsUser: nil, runAsGroup: nil))
            }
        }
        if let cases = object("istio/master/cni-sidecar-iptables/cases.json")?["cases"] as? [String: [String: Any]] {
            for (name, c) in cases.sorted(by: { $0.key < $1.key }) {
                let sc = c["proxy_container_securityContext"] as? [String: Any] ?? [:]
                out.append(CorpusCase(
                    ref: "master", kind: "cni-sidecar-iptables", name: name, golden: golden(c, name),
                    flags: [], env: [:], ipv6: false, dnsServersIPv4: [], dnsServersIPv6: [],
                    annotations: c["pod_annotations"] as? [String: String] ?? [:],
                    proxyEnv: c["proxy_container_env"] as? [String: String] ?? [:],
                    runAsUser: sc["runAsUser"] as? Int, runAsGroup: sc["runAsGroup"] as? Int))
            }
        }
        return out
    }()

    /// Every case of Istio's native-nftables harness (`master/sidecar-nftables`): the same flags as the iptables
    /// harness plus `--native-nftables`, and one more case (`inbound-ports-empty-tproxy`).
    public static let nftablesCases: [CorpusCase] = {
        guard let cases = object("istio/master/sidecar-nftables/cases.json")?["cases"] as? [String: [String: Any]] else { return [] }
        return cases.sorted(by: { $0.key < $1.key }).map { name, c in
            let runtime = c["runtime_inputs"] as? [String: [String: Any]] ?? [:]
            return CorpusCase(
                ref: "master", kind: "sidecar-nftables", name: name, golden: golden(c, name),
                flags: c["flags"] as? [String] ?? [], env: c["env"] as? [String: String] ?? [:],
                ipv6: runtime["EnableIPv6"]?["value"] as? Bool ?? false,
                dnsServersIPv4: runtime["DNSServersV4"]?["value"] as? [String] ?? [],
                dnsServersIPv6: runtime["DNSServersV6"]?["value"] as? [String] ?? [],
                annotations: [:], proxyEnv: [:], runAsUser: nil, runAsGroup: nil)
        }
    }()

    /// Every in-pod case of istio-cni's ambient harness, iptables (`ambient-iptables`) or nftables
    /// (`ambient-nftables`): the node agent's settings from `config`, the pod's annotations applied through the
    /// product's own reading of them. The `hostprobe` cases are kept (`isHostRules`) so nothing shrinks unnoticed.
    public static func ambientCases(_ kind: String) -> [CorpusCase] {
        guard let cases = object("istio/master/\(kind)/cases.json")?["cases"] as? [String: [String: Any]] else { return [] }
        return cases.sorted(by: { $0.key < $1.key }).compactMap { name, c in
            let config = c["config"] as? [String: Any] ?? [:]
            let annotations = c["pod_annotations"] as? [String: String] ?? [:]
            var base = AmbientSettings()
            base.dnsCapture = config["RedirectDNS"] as? Bool ?? true
            if let v4 = config["HostProbeSNATAddress"] as? String { base.probeSNATIPv4 = v4 }
            if let v6 = config["HostProbeV6SNATAddress"] as? String { base.probeSNATIPv6 = v6 }
            let settings = AmbientSettings.fromAnnotations(annotations, base: base)
            var out = CorpusCase(ref: "master", kind: kind, name: name, golden: golden(c, name), flags: [], env: [:],
                                 ipv6: config["EnableIPv6"] as? Bool ?? false, dnsServersIPv4: [], dnsServersIPv6: [],
                                 annotations: annotations, proxyEnv: [:], runAsUser: nil, runAsGroup: nil)
            out.ambient = settings
            return out
        }
    }
    /// Every case whose rules can be had without a kernel (`ruleset()`): the iptables goldens as iptables-legacy-save
    /// printed them and the sidecar nftables transactions replayed. The ambient nftables goldens use bitwise mark
    /// expressions the test replayer does not read; `AmbientLiveTests` and `ExpectedAmbientLiveTests` load them.
    public static var offlineCases: [CorpusCase] { cases + nftablesCases + ambientIPTablesCases }

    public static let ambientIPTablesCases = ambientCases("ambient-iptables")
    public static let ambientNftablesCases = ambientCases("ambient-nftables")

    /// What master was at the corpus commit (86c9f01, 2026-08-22): 1.32 in development (its VERSION file).
    public static let masterVersion = IstioVersion(1, 32, 0)

    /// The case whose `testDescription` is `id` (`ref/kind/name`).
    public static func named(_ id: String) -> CorpusCase? { cases.first { $0.testDescription == id } }

    /// The loader's private /etc/group (see the corpus README).
    public static let groupIDs: [String: UInt32] = ["java": 2001, "ftp": 2002]

    /// `groupIDs` as `ExpectedRules` resolves group names.
    public static let groupResolver: ExpectedRules.GroupResolver = { groupIDs[$0] }

    /// Splits iptables-save output into `*table ... COMMIT` blocks, comment lines removed.
    public static func tables(inSave text: String) -> [String: String] {
        var out: [String: String] = [:]
        var current: (String, String)?
        for line in withoutSaveComments(text).split(separator: "\n") {
            if line.hasPrefix("*") { current = (String(line.dropFirst()), "") }
            guard let (name, body) = current else { continue }
            let next = body + line + "\n"
            if line == "COMMIT" {
                out[name] = next
                current = nil
            } else {
                current = (name, next)
            }
        }
        return out
    }

    /// Parses iptables-save text of one family (empty text: no tables); users and groups must be numeric,
    /// as in the live dumps.
    public static func parse(save text: String, family: Family) throws -> [Table] {
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return [] }
        return try SaveTextParser(fileName: "test.\(family)", family: family, groupResolver: { UInt32($0) },
                                  userResolver: { UInt32($0) }).parse(text)
    }

    /// The rule set of one or two iptables-save texts, read as text dumps.
    public static func ruleset(ipv4: String, ipv6: String? = nil) throws -> Ruleset {
        var t = try parse(save: ipv4, family: .ipv4)
        if let ipv6 { t += try parse(save: ipv6, family: .ipv6) }
        return Ruleset(tables: t, backends: [.ipv4: .text, .ipv6: .text])
    }

    /// `ref \t kind \t case \t family` of every golden that failed to load with the legacy backend.
    static let loadFailures: Set<String> = {
        guard let text = try? Fixtures.text("istio/load-results.tsv") else { return [] }
        var out: Set<String> = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            if f.count >= 6, f[4] == "legacy", f[5] == "fail" { out.insert(f[0..<4].joined(separator: "\t")) }
        }
        return out
    }()

    /// Single-quotes what a shell would otherwise split or expand, so the flags round-trip through `ShellWords`.
    static func shellQuoted(_ word: String) -> String {
        let plain = !word.isEmpty && word.allSatisfy { $0.isLetter || $0.isNumber || "-_=./,:".contains($0) }
        return plain ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    static func golden(_ c: [String: Any], _ name: String) -> String {
        let file = c["golden"] as? String ?? name
        return file.replacingOccurrences(of: ".txt.golden", with: "").replacingOccurrences(of: ".golden", with: "")
    }

    static func object(_ path: String) -> [String: Any]? {
        guard let data = try? Data(contentsOf: Fixtures.url(path)) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }
}
