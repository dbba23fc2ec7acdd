import Foundation
import IstioCapture
import NetfilterModel
import TestSupport
import Testing

/// One golden of Istio's corpus with the inputs that produced it (`cases.json`) and its live dumps.
struct CorpusCase: CustomTestStringConvertible, Sendable {
    var ref: String
    var kind: String
    var name: String
    /// The golden's base name, which names its live-save files.
    var golden: String
    var flags: [String]
    var env: [String: String]
    var ipv6: Bool
    var dnsServersIPv4: [String]
    var dnsServersIPv6: [String]
    /// CNI cases: what the plugin reads from the pod.
    var annotations: [String: String]
    var proxyEnv: [String: String]
    var runAsUser: Int?
    var runAsGroup: Int?

    var testDescription: String { "\(ref)/\(kind)/\(name)" }
    var isCNI: Bool { kind == "cni-sidecar-iptables" }

    /// The version the ref stands for; master installs the 1.26 shape.
    var version: IstioVersion { IstioVersion(ref) ?? .latest }

    func liveSave(_ family: Family) -> String? {
        let suffix = family == .ipv4 ? "ipv4" : "ipv6"
        return try? Fixtures.text("istio/\(ref)/live-save/\(kind)/\(golden).\(suffix).save")
    }

    /// `load-results.tsv` says the golden could not be loaded for this family (so there is no ground truth).
    func failedToLoad(_ family: Family) -> Bool {
        Corpus.loadFailures.contains("\(ref)\t\(kind)\t\(golden)\t\(family == .ipv4 ? "4" : "6")")
    }
}

enum Corpus {
    static let sidecarRefs = ["1.10.6", "1.14.6", "1.26.8", "master"]

    /// Every sidecar case whose golden is a complete rule set (1.10 only has those with scope `run`),
    /// and every CNI case.
    static let cases: [CorpusCase] = {
        var out: [CorpusCase] = []
        for ref in sidecarRefs {
            guard let json = object("istio/\(ref)/sidecar-iptables/cases.json"),
                  let cases = json["cases"] as? [String: [String: Any]] else { continue }
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
        if let json = object("istio/master/cni-sidecar-iptables/cases.json"),
           let cases = json["cases"] as? [String: [String: Any]] {
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

    static func golden(_ c: [String: Any], _ name: String) -> String {
        let file = c["golden"] as? String ?? name
        return file.replacingOccurrences(of: ".txt.golden", with: "").replacingOccurrences(of: ".golden", with: "")
    }

    static func object(_ path: String) -> [String: Any]? {
        guard let data = try? Data(contentsOf: Fixtures.url(path)) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
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

    /// The loader's private /etc/group (see the corpus README).
    static let groups: ExpectedRules.GroupResolver = { ["java": 2001, "ftp": 2002][$0] }

    /// Single-quotes what a shell would otherwise split or expand, so the flags round-trip through `ShellWords`.
    static func shellQuoted(_ word: String) -> String {
        let plain = !word.isEmpty && word.allSatisfy { $0.isLetter || $0.isNumber || "-_=./,:".contains($0) }
        return plain ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The configuration a case describes, built through the product parsers: the flags as one command line,
    /// the env knobs, the runtime inputs and the ref's version; CNI cases through a pod manifest.
    static func configuration(_ c: CorpusCase) throws -> CaptureConfiguration {
        if c.isCNI { return try PodManifest(yaml: podYAML(c)).captureConfiguration() }
        var config = try IstioArguments.parse((["istio-iptables"] + c.flags).map(shellQuoted).joined(separator: " "))
        try config.applyEnvironment(c.env)
        config.istioVersion = c.version
        config.ipv6Enabled = c.ipv6
        config.dnsServersIPv4 = c.dnsServersIPv4
        config.dnsServersIPv6 = c.dnsServersIPv6
        return config
    }

    /// A minimal pod as the injector leaves it in CNI mode: istio-validation, istio-proxy, the case's annotations.
    static func podYAML(_ c: CorpusCase) -> String {
        func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "''") + "'" }
        var y = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: \(c.name.lowercased())\n"
        if !c.annotations.isEmpty {
            y += "  annotations:\n"
            for (k, v) in c.annotations.sorted(by: { $0.key < $1.key }) { y += "    \(k): \(quoted(v))\n" }
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
        if !c.proxyEnv.isEmpty {
            y += "    env:\n"
            for (k, v) in c.proxyEnv.sorted(by: { $0.key < $1.key }) { y += "    - name: \(k)\n      value: \(quoted(v))\n" }
        }
        if c.runAsUser != nil || c.runAsGroup != nil {
            y += "    securityContext:\n"
            if let u = c.runAsUser { y += "      runAsUser: \(u)\n" }
            if let g = c.runAsGroup { y += "      runAsGroup: \(g)\n" }
        }
        return y
    }

    /// Splits iptables-save output into `*table ... COMMIT` blocks, comment lines removed.
    static func tables(inSave text: String) -> [String: String] {
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
}
