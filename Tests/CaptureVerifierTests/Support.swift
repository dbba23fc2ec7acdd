import CaptureVerifier
import Foundation
import IstioCapture
import NetfilterModel
import RuleReaders
import TestSupport
import Testing

/// Parses iptables-save text of one family (empty text: no tables).
func tables(_ text: String, _ family: Family) throws -> [Table] {
    guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return [] }
    return try SaveTextParser(fileName: "test.\(family)", family: family, groupResolver: { UInt32($0) },
                              userResolver: { UInt32($0) }).parse(text)
}

func ruleset(ipv4: String, ipv6: String? = nil) throws -> Ruleset {
    var t = try tables(ipv4, .ipv4)
    if let ipv6 { t += try tables(ipv6, .ipv6) }
    return Ruleset(tables: t, backends: [.ipv4: .text, .ipv6: .text])
}

/// Replays every witness concretely: the tracer must take exactly the reported path to the reported verdict.
func expectWitnessesReplay(_ report: VerificationReport, _ ruleset: Ruleset, sourceLocation: SourceLocation = #_sourceLocation) {
    for f in report.obligations.flatMap(\.findings) {
        guard let w = f.witness else { continue }
        let tracer = ConcreteEvaluator(family: f.family, tables: ruleset.tables)
        let trace = tracer.trace(w.packet, pipeline: w.pipeline, assumptions: w.assumptions)
        #expect(trace.path == f.path, "witness of \(f.kind) (\(w.text)) takes another path:\n\(trace.path.map(\.description).joined(separator: "\n"))\nreported:\n\(f.path.map(\.description).joined(separator: "\n"))", sourceLocation: sourceLocation)
        #expect(trace.verdict == w.verdict, "witness of \(f.kind) ends at \(trace.verdict), reported \(w.verdict)", sourceLocation: sourceLocation)
        #expect(w.text == w.packet.description, sourceLocation: sourceLocation)
    }
}

func describe(_ findings: [Finding]) -> String {
    findings.map { "[\($0.severity) \($0.kind) \($0.family) \($0.obligation)] \($0.location): \($0.message)" }.joined(separator: "\n")
}

/// One golden of Istio's corpus with the inputs that produced it and its live dumps.
struct CorpusCase: CustomTestStringConvertible, Sendable {
    var ref: String
    var kind: String
    var name: String
    var golden: String
    var flags: [String]
    var env: [String: String]
    var ipv6: Bool
    var dnsServersIPv4: [String]
    var dnsServersIPv6: [String]
    var annotations: [String: String]
    var proxyEnv: [String: String]
    var runAsUser: Int?
    var runAsGroup: Int?

    var testDescription: String { "\(ref)/\(kind)/\(name)" }
    var isCNI: Bool { kind == "cni-sidecar-iptables" }

    func liveSave(_ family: Family) -> String? {
        try? Fixtures.text("istio/\(ref)/live-save/\(kind)/\(golden).\(family == .ipv4 ? "ipv4" : "ipv6").save")
    }

    /// The tables as `iptables-legacy-save` printed them after loading the golden.
    func ruleset() throws -> Ruleset {
        try CaptureVerifierTests.ruleset(ipv4: liveSave(.ipv4) ?? "", ipv6: liveSave(.ipv6))
    }

    /// The configuration the case describes: flags through istio-iptables' parser, env, runtime inputs, the
    /// ref's version; CNI cases through the plugin's defaults and the pod's annotations.
    func configuration() throws -> CaptureConfiguration {
        var config: CaptureConfiguration
        if isCNI {
            // As istio-cni sees the pod: the injector's annotations, the proxy's env and securityContext.
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
        config = try IstioArguments.parse(arguments: ["istio-iptables"] + flags, environment: env)
        config.istioVersion = IstioVersion(ref) ?? .latest
        config.ipv6Enabled = ipv6
        config.dnsServersIPv4 = dnsServersIPv4
        config.dnsServersIPv6 = dnsServersIPv6
        return config
    }
}

enum Corpus {
    static let sidecarRefs = ["1.10.6", "1.14.6", "1.26.8", "master"]

    /// Every sidecar case with a live dump whose golden is a complete rule set (1.10: scope `run` only), and
    /// every CNI case.
    static let cases: [CorpusCase] = {
        var out: [CorpusCase] = []
        for ref in sidecarRefs {
            guard let cases = object("istio/\(ref)/sidecar-iptables/cases.json")?["cases"] as? [String: [String: Any]] else { continue }
            for (name, c) in cases.sorted(by: { $0.key < $1.key }) {
                if ref == "1.10.6", c["scope"] as? String != "run" { continue }
                let runtime = c["runtime_inputs"] as? [String: [String: Any]] ?? [:]
                let ipv6 = (runtime["EnableIPv6"]?["value"] ?? runtime["EnableInboundIPv6"]?["value"]) as? Bool ?? false
                out.append(CorpusCase(ref: ref, kind: "sidecar-iptables", name: name, golden: golden(c, name),
                                      flags: c["flags"] as? [String] ?? [], env: c["env"] as? [String: String] ?? [:], ipv6: ipv6,
                                      dnsServersIPv4: runtime["DNSServersV4"]?["value"] as? [String] ?? [],
                                      dnsServersIPv6: runtime["DNSServersV6"]?["value"] as? [String] ?? [],
                                      annotations: [:], proxyEnv: [:], runAsUser: nil, runAsGroup: nil))
            }
        }
        if let cases = object("istio/master/cni-sidecar-iptables/cases.json")?["cases"] as? [String: [String: Any]] {
            for (name, c) in cases.sorted(by: { $0.key < $1.key }) {
                let sc = c["proxy_container_securityContext"] as? [String: Any] ?? [:]
                out.append(CorpusCase(ref: "master", kind: "cni-sidecar-iptables", name: name, golden: golden(c, name),
                                      flags: [], env: [:], ipv6: false, dnsServersIPv4: [], dnsServersIPv6: [],
                                      annotations: c["pod_annotations"] as? [String: String] ?? [:],
                                      proxyEnv: c["proxy_container_env"] as? [String: String] ?? [:],
                                      runAsUser: sc["runAsUser"] as? Int, runAsGroup: sc["runAsGroup"] as? Int))
            }
        }
        return out.filter { $0.liveSave(.ipv4) != nil || $0.liveSave(.ipv6) != nil }
    }()

    static func golden(_ c: [String: Any], _ name: String) -> String {
        let file = c["golden"] as? String ?? name
        return file.replacingOccurrences(of: ".txt.golden", with: "").replacingOccurrences(of: ".golden", with: "")
    }

    static func object(_ path: String) -> [String: Any]? {
        guard let data = try? Data(contentsOf: Fixtures.url(path)) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }

    /// The loader's private /etc/group (corpus README).
    static let groups: [String: UInt32] = ["java": 2001, "ftp": 2002]

    static func named(_ id: String) -> CorpusCase? { cases.first { $0.testDescription == id } }
}
