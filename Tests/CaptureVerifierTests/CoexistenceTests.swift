import CaptureVerifier
import CorpusSupport
import IstioCapture
import NetfilterModel
import TestSupport
import Testing

/// Other components' rules in the same tables (kube-proxy-style service chains): harmless after Istio's jumps,
/// a `foreign-rule` when they decide first.
@Suite("Rules of other components")
struct CoexistenceTests {
    /// The default CNI pod with a kube-proxy-style nat dispatch appended (two services, one with two endpoints
    /// balanced by `-m statistic`, which iptaudit evaluates both ways).
    static func podWithServices(serviceJumpFirst: Bool) throws -> (Ruleset, CaptureConfiguration) {
        let c = try #require(Corpus.named("master/cni-sidecar-iptables/basic"))
        var text = try #require(c.liveSave(.ipv4))
        let kubeChains = """
            :KUBE-SERVICES - [0:0]
            :KUBE-SVC-A - [0:0]
            :KUBE-SVC-B - [0:0]
            :KUBE-SEP-A1 - [0:0]
            :KUBE-SEP-A2 - [0:0]
            :KUBE-SEP-B1 - [0:0]
            """
        let kubeRules = """
            -A KUBE-SERVICES -d 10.96.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP" -m udp --dport 53 -j KUBE-SVC-A
            -A KUBE-SERVICES -d 10.96.12.34/32 -p tcp -m comment --comment "shop/web:http cluster IP" -m tcp --dport 80 -j KUBE-SVC-B
            -A KUBE-SVC-A -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-A1
            -A KUBE-SVC-A -j KUBE-SEP-A2
            -A KUBE-SVC-B -j KUBE-SEP-B1
            -A KUBE-SEP-A1 -p udp -m udp -j DNAT --to-destination 10.244.1.5:53
            -A KUBE-SEP-A2 -p udp -m udp -j DNAT --to-destination 10.244.2.7:53
            -A KUBE-SEP-B1 -p tcp -m tcp -j DNAT --to-destination 10.244.3.9:8080
            """
        text = text.replacingOccurrences(of: ":ISTIO_INBOUND - [0:0]", with: ":ISTIO_INBOUND - [0:0]\n" + kubeChains)
        let jump = "-A OUTPUT -j KUBE-SERVICES"
        text = text.replacingOccurrences(of: "-A OUTPUT -j ISTIO_OUTPUT",
                                         with: serviceJumpFirst ? "\(jump)\n-A OUTPUT -j ISTIO_OUTPUT" : "-A OUTPUT -j ISTIO_OUTPUT\n\(jump)")
        text = text.replacingOccurrences(of: "-A PREROUTING -p tcp -j ISTIO_INBOUND", with: "-A PREROUTING -p tcp -j ISTIO_INBOUND\n-A PREROUTING -j KUBE-SERVICES")
        text = text.replacingOccurrences(of: "COMMIT", with: kubeRules + "\nCOMMIT")
        return (try ruleset(ipv4: text), try c.configuration())
    }

    @Test("service chains after Istio's jumps change nothing and are not reported")
    func afterIstio() throws {
        let (rules, config) = try Self.podWithServices(serviceJumpFirst: false)
        let report = verify(rules, configuration: config)
        #expect(report.errors.count == 0, "\(describe(report.errors))")
        // Only the two jumps into KUBE-SERVICES differ from what Istio installs (informational drift).
        let drift = report.findings(ofKind: .ruleDrift)
        #expect(drift.count == 2 && drift.allSatisfy { $0.severity == .info && $0.ruleText?.contains("KUBE-SERVICES") == true },
                "\(describe(report.findings))")
        // Witnesses that walk into the service chains (both ways through the statistic match) replay exactly.
        expectWitnessesReplay(report, rules)
    }

    @Test("a service dispatch above ISTIO_OUTPUT is a foreign rule")
    func beforeIstio() throws {
        let (rules, config) = try Self.podWithServices(serviceJumpFirst: true)
        let report = verify(rules, configuration: config)
        let errors = report.errors
        #expect(Set(errors.map(\.kind)) == [.foreignRule], "\(describe(errors))")
        // The application's call to the web Service is DNATed to the endpoint before Istio sees it.
        let web = errors.first { $0.witness?.packet.destination == IPAddress("10.96.12.34") }
        #expect(web?.witness?.verdict == .nat("DNAT --to-destination 10.244.3.9:8080"), "\(describe(errors))")
        #expect(web?.ruleText == "-A KUBE-SEP-B1 -p tcp -m tcp -j DNAT --to-destination 10.244.3.9:8080")
        #expect(web?.path.first { $0.action == .jump("KUBE-SERVICES") }?.ruleNumber == 1)
        expectWitnessesReplay(report, rules)
    }

    @Test("a pre-empting rule iptaudit cannot evaluate makes a warning that says so")
    func unknownMatch() throws {
        let c = try #require(Corpus.named("master/cni-sidecar-iptables/basic"))
        let text = try #require(c.liveSave(.ipv4)).replacingOccurrences(
            of: "-A OUTPUT -j ISTIO_OUTPUT", with: "-A OUTPUT -m set --match-set mesh-bypass dst -j RETURN\n-A OUTPUT -j ISTIO_OUTPUT")
        let rules = try ruleset(ipv4: text)
        let report = verify(rules, configuration: try c.configuration())
        // Whether the ipset holds a destination is not in the tables: the bypass is possible, not proven.
        #expect(report.errors.isEmpty, "\(describe(report.errors))")
        let bypass = report.findings.filter { $0.kind == .foreignRule && $0.severity == .warning }
        #expect(!bypass.isEmpty, "\(describe(report.findings))")
        #expect(bypass.allSatisfy { $0.message.contains("cannot evaluate") && $0.witness?.assumptions.first?.what == ["set"] })
        #expect(bypass.allSatisfy { $0.ruleText == "-A OUTPUT -m set --match-set mesh-bypass dst -j RETURN" })
        expectWitnessesReplay(report, rules)
    }
}
