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
}
