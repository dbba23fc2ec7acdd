import CaptureVerifier
import CorpusSupport
import IstioCapture
import NetfilterModel
import RuleReaders
import Testing
import TestSupport

/// Ambient end to end on a real kernel: each of istio-cni's in-pod cases loaded into a private namespace (iptables
/// through iptables-legacy-restore and iptables-nft-restore, nftables through `nft -f`) with the policy routing
/// the node agent adds over netlink (`ip rule fwmark 0x111/0xfff lookup 100`, a local default route in table 100),
/// read live and verified with the case's node-agent settings and annotations.
@Suite("Ambient: istio-cni's in-pod rules verify live")
struct AmbientLiveTests {
    struct Load: CustomTestStringConvertible, Sendable {
        var corpusCase: CorpusCase
        /// legacy, nft (iptables-nft) or nftables (native, `nft -f`).
        var backend: String
        var testDescription: String { "\(corpusCase.testDescription) (\(backend))" }
    }

    static let loads: [Load] = Corpus.ambientIPTablesCases.filter { !$0.isHostRules }.flatMap { c in
        ["legacy", "nft"].map { Load(corpusCase: c, backend: $0) }
    } + Corpus.ambientNftablesCases.filter { !$0.isHostRules }.map { Load(corpusCase: $0, backend: "nftables") }

    /// Loads the rules and, unless told not to, the node agent's reply routing for every family it configures.
    static func load(_ load: Load, into ns: TestNamespace, routing: Bool = true) throws -> CaptureConfiguration {
        let c = load.corpusCase
        let config = try c.configurationThroughText()
        try ns.mustRun(["ip", "link", "set", "lo", "up"])
        if load.backend == "nftables" {
            try ns.mustRun(["nft", "-f", Fixtures.url("istio/master/ambient-nftables/\(c.golden).golden").path])
        } else {
            for family in Family.allCases {
                guard let save = c.liveSave(family) else { continue }
                try ns.mustRun([(family == .ipv4 ? "iptables-" : "ip6tables-") + load.backend + "-restore"], stdin: save)
            }
        }
        if routing {
            for family in config.families {
                let f = family == .ipv4 ? "-4" : "-6"
                try ns.mustRun(["ip", f, "rule", "add", "fwmark", "0x111/0xfff", "lookup", "100", "pref", "32764"])
                try ns.mustRun(["ip", f, "route", "add", "local", family == .ipv4 ? "0.0.0.0/0" : "::/0", "dev", "lo", "table", "100"])
            }
        }
        return config
    }

    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip), arguments: loads)
    func verifiesWithoutFindings(_ load: Load) throws {
        let ns = try TestNamespace()
        let config = try Self.load(load, into: ns)
        let rules = try LiveRulesetReader(backend: .auto, namespacePath: ns.path).read(ReadRequest())
        #expect(IstioDataPlane(detectedIn: rules).mode == .ambient)
        #expect(rules.policyRouting != nil, "a live read brings the namespace's policy routing")
        let report = verify(rules, configuration: config)
        let serious = report.findings.filter { $0.severity >= .warning }
        #expect(serious.isEmpty, "\(load.testDescription):\n\(serious.map { "\($0.kind) \($0.location): \($0.message)" }.joined(separator: "\n"))")
        #expect(report.ok)
        #expect(report.findings(ofKind: .ruleDrift).isEmpty)
        #expect(report.obligations.first { $0.id == "ambient-return-path" }?.proven.contains { $0.contains("lookup 100") } == true)
        // `expect` is what was loaded: the live tables, rendered, are the expected ones (native: their normalized form).
        for family in config.families {
            let live = rules.tables.filter { $0.family == family && ($0.hasIstioChains || IstioLayout.isNativeAmbientTable($0.name)) }
            let expected = load.backend == "nftables"
                ? try ExpectedNftables.tables(for: config).flatMap { $0.normalized() }.filter { $0.family == family }
                : ExpectedRules.tables(for: config, family: family)
            #expect(live.sorted { $0.name < $1.name }.map { SaveSyntax.render($0.withoutCounters) }
                    == expected.sorted { $0.name < $1.name }.map { SaveSyntax.render($0) }, "\(family)")
        }
    }

    /// Without the node agent's ip rule or table-100 route, replies on ztunnel-delivered connections leave the pod:
    /// a return-path error, per missing piece, live only.
    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip), arguments: ["rule", "route"])
    func missingReplyRoutingIsAFinding(_ missing: String) throws {
        let c = try #require(Corpus.ambientIPTablesCases.first { $0.name == "default" })
        let ns = try TestNamespace()
        let config = try Self.load(Load(corpusCase: c, backend: "legacy"), into: ns, routing: false)
        if missing == "route" {
            try ns.mustRun(["ip", "-4", "rule", "add", "fwmark", "0x111/0xfff", "lookup", "100", "pref", "32764"])
        } else {
            try ns.mustRun(["ip", "-4", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100"])
        }
        let report = verify(try LiveRulesetReader(namespacePath: ns.path).read(ReadRequest()), configuration: config)
        let found = report.findings(ofKind: .returnPath)
        #expect(found.count == 1 && found.first?.severity == .error, "\(found.map(\.message))")
        #expect(found.first?.message.contains(missing == "rule" ? "ip rule fwmark 0x111/0xfff lookup 100" : "`local default dev lo` route") == true)
        #expect(!report.ok)
    }
}
