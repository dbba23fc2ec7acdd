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

    /// A rule the kernel consults before ztunnel's (wg-quick's `lookup main suppress_prefixlength 0`, a `goto`
    /// past it, an `unreachable` rule or error route, a rule of its priority listed first) takes the application's
    /// marked replies away from table 100. Each case is asked of the kernel itself (`ip route get <peer> from
    /// <pod> mark 0x111 ipproto tcp`, a route query that sends nothing, for a peer on the pod's subnet and one
    /// beyond it) and iptaudit must agree: an error when the kernel takes the replies to every peer through a
    /// default route or the rule itself; a warning where only some may be taken (a selector iptaudit does not
    /// evaluate, a table with specific routes only), the kernel's answer then stated per case; nothing for a rule
    /// after it, one that skips the mark, a goto to nowhere or over a rule, a throw-only or local-only table.
    struct Preempting: CustomTestStringConvertible, Sendable {
        var rule: [String]
        /// nil: no finding; else the severity of the one return-path finding.
        var severity: Severity?
        /// Whether the kernel routes one of the two replies elsewhere.
        var kernelTakes: Bool
        /// Add the rule before ztunnel's of the same priority (delete and re-add ztunnel's after it).
        var listedFirst = false
        /// Rules added before it.
        var others: [[String]] = []
        var testDescription: String { (others.map { $0.joined(separator: " ") } + [rule.joined(separator: " ")]).joined(separator: "; ") + (listedFirst ? " (listed first)" : "") }
    }

    static let preempting: [Preempting] = [
        Preempting(rule: ["pref", "100", "lookup", "main", "suppress_prefixlength", "0"], severity: .warning, kernelTakes: true),
        Preempting(rule: ["pref", "100", "lookup", "main"], severity: .error, kernelTakes: true),
        Preempting(rule: ["pref", "100", "not", "l3mdev"], severity: .error, kernelTakes: true),
        Preempting(rule: ["pref", "100", "lookup", "203"], severity: .warning, kernelTakes: false),
        Preempting(rule: ["pref", "100", "goto", "40000"], severity: nil, kernelTakes: false),
        Preempting(rule: ["pref", "300", "nop"], severity: nil, kernelTakes: false,
                   others: [["pref", "100", "goto", "300"], ["pref", "200", "lookup", "main"]]),
        Preempting(rule: ["pref", "100", "from", "10.0.0.1", "lookup", "200"], severity: .warning, kernelTakes: true),
        Preempting(rule: ["pref", "100", "lookup", "200"], severity: .error, kernelTakes: true),
        Preempting(rule: ["pref", "100", "goto", "32766"], severity: .error, kernelTakes: true),
        Preempting(rule: ["pref", "100", "fwmark", "0x111/0xfff", "unreachable"], severity: .error, kernelTakes: true),
        Preempting(rule: ["pref", "100", "lookup", "201", "suppress_prefixlength", "0"], severity: .error, kernelTakes: true),
        Preempting(rule: ["pref", "100", "not", "ipproto", "udp", "lookup", "main"], severity: .warning, kernelTakes: true),
        Preempting(rule: ["pref", "32764", "lookup", "main"], severity: .error, kernelTakes: true, listedFirst: true),
        Preempting(rule: ["pref", "100", "tos", "0x10", "lookup", "main"], severity: .warning, kernelTakes: false),
        Preempting(rule: ["pref", "100", "ipproto", "udp", "lookup", "main"], severity: .warning, kernelTakes: false),
        Preempting(rule: ["pref", "100", "iif", "l+", "lookup", "main", "suppress_prefixlength", "0"], severity: nil, kernelTakes: false),
        Preempting(rule: ["pref", "100", "not", "fwmark", "0x111/0xfff", "lookup", "main"], severity: nil, kernelTakes: false),
        Preempting(rule: ["pref", "100", "fwmark", "0x2/0x2", "lookup", "main"], severity: nil, kernelTakes: false),
        Preempting(rule: ["pref", "100", "lookup", "300"], severity: nil, kernelTakes: false),
        Preempting(rule: ["pref", "100", "lookup", "202"], severity: nil, kernelTakes: false),
        Preempting(rule: ["pref", "100", "nop"], severity: nil, kernelTakes: false),
        Preempting(rule: ["pref", "100", "lookup", "main", "suppress_prefixlength", "24"], severity: nil, kernelTakes: false),
        Preempting(rule: ["pref", "40000", "lookup", "200"], severity: nil, kernelTakes: false),
    ]

    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip), arguments: preempting)
    func aRuleBeforeZtunnelsThatTakesTheMarkedRepliesIsAFinding(_ case_: Preempting) throws {
        let c = try #require(Corpus.ambientIPTablesCases.first { $0.name == "default" })
        let ns = try TestNamespace()
        let config = try Self.load(Load(corpusCase: c, backend: "legacy"), into: ns)
        let ztunnels = ["fwmark", "0x111/0xfff", "lookup", "100", "pref", "32764"]
        var commands = [["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0"], ["ip", "link", "set", "peer0", "up"],
                        ["ip", "addr", "add", "10.0.0.1/24", "dev", "eth0"],
                        ["ip", "link", "set", "eth0", "up"], ["ip", "route", "add", "default", "via", "10.0.0.254", "dev", "eth0"],
                        ["ip", "route", "add", "default", "via", "10.0.0.253", "dev", "eth0", "table", "200"],
                        ["ip", "route", "add", "unreachable", "default", "table", "201"],
                        ["ip", "route", "add", "local", "default", "dev", "lo", "table", "202"],
                        ["ip", "route", "add", "throw", "default", "table", "300"],
                        ["ip", "route", "add", "198.51.100.0/24", "via", "10.0.0.253", "dev", "eth0", "table", "203"]]
        if case_.listedFirst { commands.append(["ip", "rule", "del"] + ztunnels) }
        commands += case_.others.map { ["ip", "rule", "add"] + $0 }
        commands.append(["ip", "rule", "add"] + case_.rule)
        if case_.listedFirst { commands.append(["ip", "rule", "add"] + ztunnels) }
        for cmd in commands { try ns.mustRun(cmd) }
        // What the kernel does with a reply to a peer on the pod's subnet and to one beyond it.
        var kernelTakes = false
        for peer in ["10.0.0.2", "192.0.2.7"] {
            let answer = try ns.run(["ip", "route", "get", peer, "from", "10.0.0.1", "mark", "0x111", "ipproto", "tcp"])
            if answer.status != 0 || !answer.stdout.hasPrefix("local ") { kernelTakes = true }
        }
        #expect(kernelTakes == case_.kernelTakes, "the kernel's answer is not the one the case states")
        let report = verify(try LiveRulesetReader(namespacePath: ns.path).read(ReadRequest()), configuration: config)
        let found = report.findings(ofKind: .returnPath)
        if let severity = case_.severity {
            #expect(found.count == 1 && found.first?.severity == severity, "\(found.map(\.message))")
            #expect(found.first?.message.hasPrefix("The ip rule `\(case_.rule[1]): ") == true, "\(found.map(\.message))")
            #expect(report.ok == (severity != .error))
        } else {
            #expect(found.isEmpty, "\(found.map(\.message))")
            #expect(report.obligations.first { $0.id == "ambient-return-path" }?.proven.contains { $0.contains("no rule before it") } == true)
        }
    }
}
