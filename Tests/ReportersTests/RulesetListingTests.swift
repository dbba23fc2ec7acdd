import NetfilterModel
import Reporters
import RuleReaders
import Testing
import TestSupport

/// `show --format list`: the `iptables -L -n -v --line-numbers` view, with interfaces, references and empty chains said.
@Suite struct RulesetListingTests {
    static func listing(_ save: String) throws -> String {
        let tables = try SaveTextParser(fileName: "t.save", family: .ipv4).parse(save)
        return RulesetListing.render(Ruleset(tables: tables, backends: [.ipv4: .text]))
    }

    @Test func listsReferencesInterfacesAndEmptyChains() throws {
        let text = try Self.listing("""
            *nat
            :PREROUTING ACCEPT [3:180]
            :OUTPUT ACCEPT [0:0]
            :ISTIO_OUTPUT - [0:0]
            :LEFTOVER - [0:0]
            [7:420] -A OUTPUT ! -o lo -p tcp -j ISTIO_OUTPUT
            -A ISTIO_OUTPUT -d 10.0.0.0/8 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 15001
            COMMIT

            """)
        #expect(text.hasPrefix("Table nat (IPv4 — saved rules)"))
        #expect(text.contains("Chain PREROUTING (policy ACCEPT 3 packets, 180 bytes)\n  (no rules)"))
        #expect(text.contains("Chain ISTIO_OUTPUT (1 reference: OUTPUT#1)"))
        #expect(text.contains("Chain LEFTOVER (0 references — unreachable)"))
        let output = try #require(text.split(separator: "\n").first { $0.contains("ISTIO_OUTPUT tcp") })
        #expect(output.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            == ["1", "7", "420", "ISTIO_OUTPUT", "tcp", "*", "!lo", "0.0.0.0/0", "0.0.0.0/0"])
        let redirect = try #require(text.split(separator: "\n").first { $0.contains("REDIRECT") })
        #expect(redirect.contains("10.0.0.0/8") && redirect.contains("-m tcp --dport 80") && redirect.hasSuffix("--to-ports 15001"))
    }
}
