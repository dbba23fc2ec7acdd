import CaptureVerifier
import CorpusSupport
import IstioCapture
import NetfilterModel
import RuleReaders
import Testing
import TestSupport

/// Native nftables mode end to end on a real kernel: each of Istio's `--native-nftables` cases loaded with
/// `nft -f` (TPROXY: with its `ip rule` and local route) is read live, walked in hook order beside iptables'
/// (empty) tables, and verified with its configuration.
@Suite("Native nftables: Istio's rules verify live")
struct NativeNftablesVerifyTests {
    static func load(_ c: CorpusCase, into ns: TestNamespace) throws -> CaptureConfiguration {
        let golden = try #require(NftablesGolden.all.first { $0.name == c.golden })
        try ns.mustRun(["ip", "link", "set", "lo", "up"])
        try golden.load(into: ns)
        let config = try c.configuration()
        if config.interceptionMode == .tproxy {
            for family in config.families {
                let f = family == .ipv4 ? "-4" : "-6"
                try ns.mustRun(["ip", f, "rule", "add", "fwmark", "\(config.tproxyMark)", "lookup", "\(config.tproxyRouteTable)"])
                try ns.mustRun(["ip", f, "route", "add", "local", family == .ipv4 ? "0.0.0.0/0" : "::/0", "dev", "lo",
                                "table", "\(config.tproxyRouteTable)"])
            }
        }
        return config
    }

    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip), arguments: Corpus.nftablesCases)
    func verifiesWithoutErrors(_ c: CorpusCase) throws {
        let ns = try TestNamespace()
        let config = try Self.load(c, into: ns)
        let rules = try LiveRulesetReader(namespacePath: ns.path).read(ReadRequest())
        #expect(rules.nativeTables.contains { $0.name == "istio-proxy-nat" } || rules.nativeTables.isEmpty)
        let report = verify(rules, configuration: config, options: VerifierOptions(groupIDs: Corpus.groupIDs))
        let errors = report.findings.filter { $0.severity == .error }
        #expect(errors.isEmpty, "\(c.testDescription):\n\(errors.map { "\($0.kind) \($0.location): \($0.message)" }.joined(separator: "\n"))")
        let drift = report.findings.filter { $0.kind == .ruleDrift }
        #expect(drift.isEmpty, "\(drift.map { "\($0.location): \($0.message)" }.joined(separator: "\n"))")
    }

    /// Rules Istio wrote for an IPv4-only pod, judged with IPv6 configured: the `inet` table carries IPv6 packets
    /// too, so IPv6 is judged through it and its real gaps are named (the proxy's self-call, the loopback range),
    /// not reported as "IPv6 has no Istio rules".
    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip))
    func ipv4OnlyRulesJudgedForIPv6NameTheIPv6Gaps() throws {
        let c = try #require(try Corpus.nftablesCases.first { c in
            let config = try c.configuration()
            return config.families == [.ipv4] && config.interceptionMode == .redirect && !config.redirectDNS
        })
        let ns = try TestNamespace()
        var config = try Self.load(c, into: ns)
        config.ipv6Enabled = true
        let rules = try LiveRulesetReader(namespacePath: ns.path).read(ReadRequest())
        let report = verify(rules, configuration: config, options: VerifierOptions(groupIDs: Corpus.groupIDs))
        #expect(!report.ok && report.families == [.ipv4, .ipv6], "\(c.testDescription)")
        #expect(!report.findings.contains { $0.message.contains("has no Istio rules") }, "\(report.findings.map(\.message))")
        let v6 = report.findings.filter { $0.family == .ipv6 && $0.severity == .error }
        #expect(v6.contains { $0.kind == .missingRedirect && $0.witness?.packet.outInterface == "lo" && $0.witness?.packet.uid == 1337 },
                "the proxy calling its own pod over IPv6 skips the inbound listener: \(v6.map(\.message))")
        #expect(v6.allSatisfy { $0.table?.rawValue == "inet istio-proxy-nat" }, "\(v6.map(\.location))")
        #expect(report.findings.filter { $0.family == .ipv4 && $0.severity == .error }.isEmpty)
    }

    /// A native rule that is missing is named as nft prints it (the live rules are), not in iptables-save syntax.
    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip))
    func aMissingNativeRuleIsNamedInNftSyntax() throws {
        // Inbound ports only, no outbound range: istio-redirect's REDIRECT is installed but no packet reaches it,
        // so its absence is drift alone (a rule some packet needs is reported by the check that needs it).
        let c = try #require(Corpus.nftablesCases.first { $0.golden == "inbound-ports-include" })
        let ns = try TestNamespace()
        let config = try Self.load(c, into: ns)
        let listed = try ns.mustRun(["nft", "-a", "list", "chain", "inet", "istio-proxy-nat", "istio-redirect"])
        let line = try #require(listed.split(separator: "\n").first { $0.contains("redirect to :15001") })
        let handle = try #require(line.split(separator: " ").last.map(String.init))
        try ns.mustRun(["nft", "delete", "rule", "inet", "istio-proxy-nat", "istio-redirect", "handle", handle])
        let report = verify(try LiveRulesetReader(namespacePath: ns.path).read(ReadRequest()), configuration: config,
                            options: VerifierOptions(groupIDs: Corpus.groupIDs))
        let drift = report.findings.filter { $0.kind == .ruleDrift && $0.chain?.rawValue == "istio-redirect" }
        #expect(drift.map(\.message) == ["istio-iptables installs `meta l4proto tcp counter packets 0 bytes 0 redirect to :15001`, which is absent."],
                "\(c.testDescription)")
    }
}
