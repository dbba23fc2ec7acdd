import CaptureVerifier
import CorpusSupport
import IstioCapture
import NetfilterModel
import Testing

/// A fix that quotes a rule quotes it in the syntax of the store holding the pod's rules: in native nftables mode
/// as `nft list ruleset` prints it, so the operator finds it (or its absence) in nft's listing; on iptables as
/// iptables takes it. Each case removes one of Istio's rules from its own golden, replayed, and the finding's fix
/// must quote exactly the removed rule (its counter aside).
@Suite struct FixSyntaxTests {
    struct Removal: CustomTestStringConvertible, Sendable {
        var golden: String
        /// The rule as `nft list ruleset` prints it (without its counter).
        var rule: String
        /// The same rule as iptables-legacy-save printed the iptables golden.
        var save: String
        var testDescription: String { "\(golden): \(rule)" }
    }

    static let removals: [Removal] = [
        Removal(golden: "kube-virt-interfaces", rule: "ip daddr 127.0.0.1 return", save: "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN"),
        Removal(golden: "empty", rule: #"oifname "lo" ip saddr 127.0.0.6 return"#, save: "-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN"),
        Removal(golden: "inbound-ports-wildcard", rule: "tcp dport 15008 return", save: "-A ISTIO_INBOUND -p tcp -m tcp --dport 15008 -j RETURN"),
        Removal(golden: "kube-virt-interfaces", rule: #"iifname "eth1" jump istio-redirect"#, save: "-A PREROUTING -i eth1 -j ISTIO_REDIRECT"),
        Removal(golden: "tproxy", rule: "meta l4proto tcp ct mark 0x00000539 meta mark set ct mark",
                save: "-A OUTPUT -p tcp -m connmark --mark 0x539 -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff"),
        Removal(golden: "tproxy", rule: "meta l4proto tcp meta mark 0x00000539 ct mark set meta mark",
                save: "-A PREROUTING -p tcp -m mark --mark 0x539 -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff"),
        Removal(golden: "tproxy", rule: #"iifname "lo" meta l4proto tcp ip saddr 127.0.0.6 return"#, save: "-A ISTIO_INBOUND -s 127.0.0.6/32 -i lo -p tcp -j RETURN"),
        Removal(golden: "drop-invalid", rule: "meta l4proto tcp ct state invalid jump istio-drop", save: "-A PREROUTING -m conntrack --ctstate INVALID -j ISTIO_DROP"),
    ]

    /// A native rule's text without its counter, as the fix would quote it.
    static func quoted(_ rule: Rule) -> String? {
        rule.native.map { $0.text.replacing(try! Regex(" counter( packets [0-9]+ bytes [0-9]+)?"), with: "") }
    }

    @Test(arguments: removals)
    func nativeFixQuotesTheMissingRuleAsNftListsIt(_ r: Removal) throws {
        let c = try #require(Corpus.nftablesCases.first { $0.golden == r.golden })
        var rules = try c.ruleset()
        var removed = 0
        for t in rules.tables.indices where t == rules.tables.firstIndex(where: { $0.family == .ipv4 && $0.chains.contains { $0.rules.contains { Self.quoted($0) == r.rule } } }) {
            for ch in rules.tables[t].chains.indices {
                let before = rules.tables[t].chains[ch].rules.count
                rules.tables[t].chains[ch].rules.removeAll { Self.quoted($0) == r.rule }
                removed += before - rules.tables[t].chains[ch].rules.count
            }
        }
        #expect(removed == 1, "the golden holds the rule once in its IPv4 tables")
        let report = verify(rules, configuration: try c.configuration())
        let fixes = report.findings.filter { $0.severity >= .warning }.compactMap(\.fix)
        #expect(fixes.contains { $0.contains("`\(r.rule)`") }, "\(fixes)")
        #expect(!fixes.contains { $0.contains(" -j ") }, "no iptables syntax for a native pod: \(fixes)")
    }

    /// The same defects in the iptables twin of each golden: the fix speaks iptables and never nft.
    @Test(arguments: removals)
    func iptablesFixSpeaksIptables(_ r: Removal) throws {
        let c = try #require(Corpus.cases.first { $0.ref == "master" && $0.golden == r.golden })
        let text = try #require(c.liveSave(.ipv4))
        let line = try #require(text.range(of: "\n" + r.save + "\n"), "the iptables golden holds the rule")
        let rules = try Corpus.ruleset(ipv4: text.replacingCharacters(in: line, with: "\n"), ipv6: c.liveSave(.ipv6))
        let report = verify(rules, configuration: try c.configuration())
        let fixes = report.findings.filter { $0.severity >= .warning }.compactMap(\.fix)
        #expect(fixes.contains { $0.contains(" -j ") }, "\(fixes)")
        #expect(!fixes.contains { $0.contains("`\(r.rule)`") || $0.contains("istio-proxy") }, "\(fixes)")
    }
}
