import CaptureVerifier
import CorpusSupport
import IstioCapture
import NetfilterModel
import Testing

/// Issue 9 item 5: when the pod's nameservers are unknown (a saved dump, a live read without the pod's pid),
/// DNS capture is judged by the servers the rules name, not against "no nameservers" and not against the
/// caller's resolv.conf; an explicit empty list still means none.
@Suite("Unknown nameservers")
struct UnknownNameserverTests {
    static let dnsCases = Corpus.cases.filter { !($0.dnsServersIPv4 + $0.dnsServersIPv6).isEmpty }

    @Test("the rules name the case's nameservers, and verify is as clean as with them", arguments: dnsCases)
    func inferredFromTheRules(_ c: CorpusCase) throws {
        let rules = try c.ruleset()
        var config = try c.configuration()
        let servers = Set(config.dnsServersIPv4 + config.dnsServersIPv6)
        if config.redirectDNS, !config.captureAllDNS {
            #expect(Set(DNSServersFromRules.servers(in: rules.tables)) == servers.filter { s in
                config.families.contains(IPAddress(s)?.family ?? .ipv4)
            })
        }
        config.dnsServersIPv4 = []
        config.dnsServersIPv6 = []
        config.dnsServersUnknown = true
        let report = verify(rules, configuration: config, options: VerifierOptions(groupIDs: Corpus.groups))
        #expect(report.errors.isEmpty, "\(c.testDescription):\n\(describe(report.errors))")
        #expect(report.findings(ofKind: .ruleDrift).isEmpty, "\(describe(report.findings(ofKind: .ruleDrift)))")
        if config.redirectDNS, !config.captureAllDNS {
            #expect(report.configuration.contains { $0.contains("nameservers are not known") })
        }
    }

    /// Known-empty is not unknown: with `--redirect-dns` and no nameservers (1.26+) Istio captures no DNS, so
    /// rules that capture DNS to a server are then a finding, while the same rules with unknown servers are clean.
    @Test func knownEmptyIsNotUnknown() throws {
        let c = try #require(Corpus.named("master/sidecar-iptables/ip-range"))
        var config = try c.configuration()
        config.dnsServersIPv4 = []
        let empty = verify(try c.ruleset(), configuration: config)
        #expect(!empty.findings.filter { $0.severity >= .warning || $0.kind == .ruleDrift }.isEmpty)
        config.dnsServersUnknown = true
        #expect(verify(try c.ruleset(), configuration: config).findings.filter { $0.severity >= .warning || $0.kind == .ruleDrift }.isEmpty)
    }
}

extension UnknownNameserverTests {
    @Test func theCorpusHasDNSCases() {
        #expect(Self.dnsCases.count >= 10)
    }
}
