import CaptureVerifier
import CorpusSupport
import Foundation
import IstioCapture
import NetfilterModel
import RuleReaders
import Testing
import TestSupport

/// Issue 3 conformance, on a real kernel: every corpus case loaded into a private network namespace (legacy
/// x_tables and nf_tables), read back live with backend detection, and verified with its configuration.
@Suite("Live corpus conformance")
struct LiveConformanceTests {
    enum LoadBackend: String, CaseIterable, Sendable { case legacy, nft }

    struct Load: CustomTestStringConvertible, Sendable {
        var corpusCase: CorpusCase
        var backend: LoadBackend
        var testDescription: String { "\(corpusCase.testDescription) (\(backend.rawValue))" }
    }

    static let loads: [Load] = Corpus.cases.flatMap { c in LoadBackend.allCases.map { Load(corpusCase: c, backend: $0) } }

    /// Loads the case's recorded dumps (numeric owner groups, so no /etc/group set-up is needed) and, for TPROXY,
    /// the policy routing istio-iptables adds through netlink.
    static func load(_ load: Load, into ns: TestNamespace, config: CaptureConfiguration) throws {
        for family in Family.allCases {
            guard let save = load.corpusCase.liveSave(family) else { continue }
            let tool = (family == .ipv4 ? "iptables-" : "ip6tables-") + load.backend.rawValue + "-restore"
            try ns.mustRun([tool], stdin: save)
            if config.interceptionMode == .tproxy {
                let f = family == .ipv4 ? "-4" : "-6"
                try ns.mustRun(["ip", f, "rule", "add", "fwmark", "\(config.tproxyMark)", "lookup", "\(config.tproxyRouteTable)"])
                try ns.mustRun(["ip", f, "route", "add", "local", family == .ipv4 ? "0.0.0.0/0" : "::/0", "dev", "lo",
                                "table", "\(config.tproxyRouteTable)"])
            }
        }
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), arguments: loads)
    func liveTablesVerifyWithoutErrors(_ load: Load) throws {
        let config = try load.corpusCase.configuration()
        let ns = try TestNamespace()
        try ns.mustRun(["ip", "link", "set", "lo", "up"])
        try Self.load(load, into: ns, config: config)
        let rules = try LiveRulesetReader(backend: .auto, namespacePath: ns.path).read(ReadRequest())
        for family in config.families where load.corpusCase.liveSave(family) != nil {
            #expect(rules.backends[family] == (load.backend == .legacy ? .legacy : .nft))
        }
        let report = verify(rules, configuration: config, options: VerifierOptions(groupIDs: Corpus.groups))
        #expect(report.errors.isEmpty, "\(load.testDescription):\n\(describe(report.errors))")
        #expect(report.findings(ofKind: .ruleDrift).isEmpty, "\(describe(report.findings(ofKind: .ruleDrift)))")
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func tproxyWithoutPolicyRoutingIsAFinding() throws {
        let c = try #require(Corpus.named("master/sidecar-iptables/tproxy"))
        let config = try c.configuration()
        let ns = try TestNamespace()
        try ns.mustRun(["iptables-legacy-restore"], stdin: try #require(c.liveSave(.ipv4)))
        let rules = try LiveRulesetReader(backend: .auto, namespacePath: ns.path).read(ReadRequest())
        #expect(rules.policyRouting != nil)
        let report = verify(rules, configuration: config, options: VerifierOptions(groupIDs: Corpus.groups))
        #expect(report.findings(ofKind: .tproxy).contains { $0.severity == .error && $0.message.contains("133") },
                "\(describe(report.findings))")
    }
}
