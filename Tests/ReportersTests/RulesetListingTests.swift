import Foundation
import NetfilterModel
import Reporters
import RuleReaders
import Testing
import TestSupport

/// `show --format list` is `iptables -L -v -n --line-numbers -t TABLE`, byte for byte. These run without root
/// against listings recorded once from iptables v1.8.9 (each fixture's `##` header says how); the live suite
/// `ListingConformanceTests` compares every corpus dump with the real command.
@Suite struct RulesetListingTests {
    static func ruleset(_ save: String, family: Family = .ipv4) throws -> Ruleset {
        let tables = try SaveTextParser(fileName: "t.save", family: family).parse(save)
        return Ruleset(tables: tables, backends: [family: .text])
    }

    struct Recorded: CustomTestStringConvertible, Sendable {
        var listing: String
        var dump: String
        var family: Family
        var testDescription: String { listing }
    }

    static let recorded: [Recorded] = [
        .init(listing: "master-sidecar-tproxy.ipv4", dump: "istio/master/live-save/sidecar-iptables/tproxy.ipv4.save", family: .ipv4),
        .init(listing: "master-sidecar-dns-uid-gid.ipv6", dump: "istio/master/live-save/sidecar-iptables/dns-uid-gid.ipv6.save", family: .ipv6),
        .init(listing: "master-ambient-default.ipv4", dump: "istio/master/live-save/ambient-iptables/default.ipv4.save", family: .ipv4),
        .init(listing: "1.14.6-sidecar-ipnets-with-kube-virt-interfaces.ipv4",
              dump: "istio/1.14.6/live-save/sidecar-iptables/ipnets-with-kube-virt-interfaces.ipv4.save", family: .ipv4),
    ]

    @Test(arguments: recorded)
    func equalsTheRecordedIptablesListing(_ r: Recorded) throws {
        let recorded = try Fixtures.text("listing/\(r.listing).txt")
        let expected = recorded.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("##") }.joined(separator: "\n")
        let text = RulesetListing.render(try Self.ruleset(try Fixtures.text(r.dump), family: r.family))
        #expect(text == expected)
    }

    /// One table alone is the command's output with nothing added, so it can be diffed with iptables directly.
    @Test func oneTableIsTheCommandOutputAlone() throws {
        let ruleset = try Self.ruleset("""
            *nat
            :PREROUTING ACCEPT [3:180]
            :OUTPUT ACCEPT [123456:98765432]
            :ISTIO_OUTPUT - [0:0]
            :LEFTOVER - [0:0]
            [7:420] -A OUTPUT ! -o lo -p tcp -j ISTIO_OUTPUT
            [100000:99999] -A OUTPUT -g ISTIO_OUTPUT
            -A ISTIO_OUTPUT -d 10.0.0.0/8 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 15001
            COMMIT

            """)
        // As `iptables-legacy-restore -c` of this text and `iptables-legacy -L -v -n --line-numbers -t nat` print it
        // (counters over 99999 rounded to K and M, the goto marked, references counted, empty chains with a header).
        let expected = [
            "Chain PREROUTING (policy ACCEPT 3 packets, 180 bytes)",
            "num   pkts bytes target     prot opt in     out     source               destination         ",
            "",
            "Chain INPUT (policy ACCEPT 0 packets, 0 bytes)",
            "num   pkts bytes target     prot opt in     out     source               destination         ",
            "",
            "Chain OUTPUT (policy ACCEPT 123K packets, 99M bytes)",
            "num   pkts bytes target     prot opt in     out     source               destination         ",
            "1        7   420 ISTIO_OUTPUT  6    --  *      !lo     0.0.0.0/0            0.0.0.0/0           ",
            "2     100K 99999 ISTIO_OUTPUT  0    --  *      *       0.0.0.0/0            0.0.0.0/0           [goto] ",
            "",
            "Chain POSTROUTING (policy ACCEPT 0 packets, 0 bytes)",
            "num   pkts bytes target     prot opt in     out     source               destination         ",
            "",
            "Chain ISTIO_OUTPUT (2 references)",
            "num   pkts bytes target     prot opt in     out     source               destination         ",
            "1        0     0 REDIRECT   6    --  *      *       0.0.0.0/0            10.0.0.0/8           tcp dpt:80 redir ports 15001",
            "",
            "Chain LEFTOVER (0 references)",
            "num   pkts bytes target     prot opt in     out     source               destination         ",
        ].map { $0 + "\n" }.joined()
        #expect(RulesetListing.render(ruleset) == expected)
    }

    /// Roles are an option on top: they end a rule's line, after iptables' text.
    @Test func annotationsEndTheRuleLine() throws {
        let ruleset = try Self.ruleset("*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -p tcp -j REDIRECT --to-ports 15001\nCOMMIT\n")
        let text = RulesetListing.render(ruleset, annotate: { _, pos, _ in "role of \(pos.number)" })
        #expect(text.split(separator: "\n").first { $0.hasPrefix("1 ") } == "1        0     0 REDIRECT   6    --  *      *       0.0.0.0/0            0.0.0.0/0            redir ports 15001  # role of 1")
    }
}
