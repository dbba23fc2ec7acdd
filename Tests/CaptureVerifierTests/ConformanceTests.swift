import CaptureVerifier
import CorpusSupport
import IstioCapture
import NetfilterModel
import Testing

/// Every live dump of Istio's corpus, verified against the configuration that produced it, has no error:
/// what istio-iptables installs satisfies every obligation that applies to its version.
@Suite("Corpus conformance")
struct ConformanceTests {
    @Test("live dump verifies without errors", arguments: Corpus.cases)
    func liveDumpVerifies(_ c: CorpusCase) throws {
        let rules = try c.ruleset()
        let config = try c.configuration()
        let report = verify(rules, configuration: config, options: VerifierOptions(groupIDs: Corpus.groups))
        let errors = report.errors
        #expect(errors.count == 0, "\(c.testDescription):\n\(describe(errors))")
        #expect(report.ok == errors.isEmpty)
        expectWitnessesReplay(report, rules)
        // Nothing the configuration says differs from what istio-iptables installs.
        let drift = report.findings(ofKind: .ruleDrift)
        #expect(drift.count == 0, "\(c.testDescription):\n\(describe(drift))")
    }

    @Test("the corpus is all there")
    func corpusIsComplete() {
        // 4 full 1.10 runs, 27 + 28 + 28 sidecar cases in 1.14 / 1.26 / master with a dump, 9 CNI cases.
        #expect(Corpus.cases.filter { $0.ref == "1.10.6" }.count == 4)
        #expect(Corpus.cases.filter { $0.isCNI }.count == 9)
        #expect(Corpus.cases.count > 80)
    }
}

/// Where the corpus shows one of the model's §14 quirks, the verifier reports it at the severity it deserves:
/// not an error (Istio installs it that way in every pod of that shape), but visible.
@Suite("Corpus quirks")
struct CorpusQuirkTests {
    func report(_ id: String) throws -> VerificationReport {
        let c = try #require(Corpus.named(id))
        return verify(try c.ruleset(), configuration: try c.configuration(), options: VerifierOptions(groupIDs: Corpus.groups))
    }

    @Test("only the first proxy UID gets self-call redirection (info)")
    func onlyFirstUIDSelfCalls() throws {
        // -u 3,4: UID 4's lo traffic hits `-o lo -m owner ! --uid-owner 3 -j RETURN` before its own self-call rule.
        let r = try report("master/sidecar-iptables/ipv6-uid-gid")
        let quirk = try #require(r.result("self-call")).findings.filter { $0.kind == .ownerMatchGap }
        #expect(Set(quirk.map(\.family)) == [.ipv4, .ipv6])
        #expect(quirk.allSatisfy { $0.severity == .info && $0.witness?.packet.uid == 4 && $0.witness?.packet.outInterface == "lo" })
        #expect(quirk.allSatisfy { $0.ruleText?.contains("! --uid-owner 3 -j RETURN") ?? false })
        #expect(r.ok)
    }

    @Test("TPROXY captures the tunnel port (warning)")
    func tproxyTunnelPort() throws {
        // The 15008 RETURN lives in nat ISTIO_INBOUND, which nothing jumps to in TPROXY mode: HBONE lands on 15006.
        // It breaks HBONE to such a pod, so it is a warning, but it is how Istio installs every TPROXY pod.
        let r = try report("master/sidecar-iptables/tproxy")
        let inbound = try #require(r.result("inbound-ports")).findings.filter { $0.kind == .tproxy }
        #expect(!inbound.isEmpty)
        #expect(inbound.allSatisfy { $0.severity == .warning && $0.witness?.packet.destinationPort == 15008 })
        #expect(inbound.allSatisfy { if case .tproxy(15006, _, _) = $0.witness?.verdict { true } else { false } })
        #expect(r.ok)
    }

    @Test("before 1.22 the DNS answer zone rule never matches (warning)")
    func answerZoneByDestination() throws {
        // 1.14 wrote `-A PREROUTING -d 127.0.0.53/32 -p udp --sport 53 -j CT --zone 1`: an answer comes *from* the server.
        let r = try report("1.14.6/sidecar-iptables/dns-uid-gid")
        let zones = try #require(r.result("dns-conntrack-zones")).findings
        #expect(!zones.isEmpty)
        #expect(zones.allSatisfy { $0.kind == .dnsCapture && $0.severity == .warning && $0.table == .raw })
        #expect(zones.allSatisfy { $0.witness?.packet.sourcePort == 53 })
        // The same shape on 1.26 is an error: there Istio matches by source.
        var config = try #require(Corpus.named("1.14.6/sidecar-iptables/dns-uid-gid")).configuration()
        config.istioVersion = IstioVersion(1, 26, 0)
        let rules = try #require(Corpus.named("1.14.6/sidecar-iptables/dns-uid-gid")).ruleset()
        let newer = verify(rules, configuration: config)
        #expect(newer.errors.contains { $0.obligation == "dns-conntrack-zones" && $0.table == .raw })
    }

    @Test("Istio 1.10 did not exempt loopback in TPROXY mode (warning)")
    func legacyTProxyLoopback() throws {
        let r = try report("1.10.6/sidecar-iptables/rules-with-tproxy")
        let forward = try #require(r.result("inbound-forward-source")).findings
        #expect(!forward.isEmpty && forward.allSatisfy { $0.kind == .unexpectedCapture && $0.severity == .warning })
        let local = try #require(r.result("app-local-traffic")).findings
        #expect(!local.isEmpty && local.allSatisfy { $0.severity == .warning })
        #expect(r.ok)
    }
}
