import CaptureVerifier
import CorpusSupport
import IstioCapture
import NetfilterModel
import Testing

/// Every in-pod ambient golden of istio-cni, as iptables-legacy-save printed it after loading, verified against
/// the node-agent settings and pod annotations that produced it: no error, no warning, no drift, and the
/// report says which data plane it checked.
@Suite("Ambient corpus conformance")
struct AmbientConformanceTests {
    @Test("live dump verifies without findings", arguments: Corpus.ambientIPTablesCases.filter { !$0.isHostRules })
    func liveDumpVerifies(_ c: CorpusCase) throws {
        let rules = try c.ruleset()
        let config = try c.configuration()
        let report = verify(rules, configuration: config)
        let serious = report.findings.filter { $0.severity >= .warning }
        #expect(serious.isEmpty, "\(c.testDescription):\n\(describe(serious))")
        #expect(report.ok)
        #expect(report.findings(ofKind: .ruleDrift).isEmpty, "\(describe(report.findings(ofKind: .ruleDrift)))")
        #expect(report.obligations.contains { $0.id == "ambient-outbound" && $0.status == .passed })
        #expect(!report.obligations.contains { $0.id == "outbound-hook" }, "no sidecar obligation runs on an ambient pod")
        #expect(report.configuration.first?.contains("ambient") == true)
        expectWitnessesReplay(report, rules)
    }

    /// The same rules checked with the wrong node-agent setting are caught: DNS rules present with DNS capture
    /// off, and absent with it on.
    @Test("DNS capture disagreeing with the rules is an error")
    func dnsSettingMismatch() throws {
        let on = try #require(Corpus.ambientIPTablesCases.first { $0.name == "default" })
        let off = try #require(Corpus.ambientIPTablesCases.first { $0.name == "dns_pod_disabled_and_on_globally" })
        var config = try on.configuration()
        config.ambient?.podDNSCapture = false
        let withRulesButOff = verify(try on.ruleset(), configuration: config)
        #expect(withRulesButOff.findings(ofKind: .dnsCapture).contains { $0.severity == .error })
        var onConfig = try off.configuration()
        onConfig.ambient?.podDNSCapture = true
        let withoutRulesButOn = verify(try off.ruleset(), configuration: onConfig)
        let missing = withoutRulesButOn.findings(ofKind: .dnsCapture).filter { $0.severity == .error }
        #expect(!missing.isEmpty)
        #expect(missing.first?.witness?.packet.destinationPort == 53)
    }
}

/// `trace` on ambient rules names ztunnel, and takes ztunnel's mark and the reply connmark into account.
@Suite("Ambient trace")
struct AmbientTraceTests {
    @Test func tracesNameZtunnelAndFollowMarks() throws {
        let c = try #require(Corpus.ambientIPTablesCases.first { $0.name == "default" })
        let tracer = PacketTracer(family: .ipv4, tables: try c.ruleset().tables)
        func outcome(_ mark: UInt32 = 0, connmark: UInt32 = 0, state: ConntrackState = .new, inbound: Bool = false, port: UInt16 = 443,
                     dst: String = "1.2.3.4") -> Disposition? {
            let q = PacketQuery(direction: inbound ? .inbound : .outbound, family: .ipv4, protocolNumber: ProtocolMatch.tcp,
                                destination: IPAddress(dst)!, destinationPort: port, source: inbound ? IPAddress("10.9.9.9") : nil,
                                inInterface: inbound ? "eth0" : nil, mark: mark, connmark: connmark, state: state)
            let r = tracer.trace(q)
            #expect(Set(r.outcomes.map(\.disposition)).count == 1, "one disposition for a fully given packet")
            return r.outcomes.first?.disposition
        }
        #expect(outcome()?.summary == "ztunnel's outbound listener 15001")
        #expect(outcome(0x539)?.summary == "1.2.3.4:443 directly — not through ztunnel")
        #expect(outcome(0x10539)?.summary == "1.2.3.4:443 directly — not through ztunnel", "the mask ignores the upper bits")
        #expect(outcome(inbound: true, port: 8080, dst: "10.0.0.1")?.summary == "ztunnel's inbound plaintext listener 15006")
        #expect(outcome(inbound: true, port: 15008, dst: "10.0.0.1")?.action == "ACCEPT")
        // A reply on a ztunnel-delivered connection: nat sees only first packets; mangle gives it mark 0x111.
        let reply = tracer.trace(PacketQuery(direction: .outbound, family: .ipv4, protocolNumber: ProtocolMatch.tcp,
                                             destination: IPAddress("10.9.9.9")!, destinationPort: 40000, connmark: 0x111, state: .established))
        #expect(reply.outcomes.count == 1)
        #expect(reply.outcomes.first?.path.contains { $0.table == .mangle && $0.chain == .istioOutput && $0.ruleNumber == 1 } == true)
        #expect(reply.outcomes.first?.path.contains { $0.table == .nat } == false, "nat is skipped for ESTABLISHED")
    }
}
