import Foundation
import NetfilterModel
import RuleReaders
import TestSupport
import Testing

@Suite("Legacy reader: -m set names come from the kernel's ipset index")
struct LegacyReaderSetTests {
    /// Sets created in the namespace (ipsets are per network namespace, like the rules that use them).
    static let sets: [Family: [[String]]] = [
        .ipv4: [["allow4", "hash:ip"], ["pairs4", "hash:ip,port"], ["counted4", "hash:ip", "counters"]],
        .ipv6: [["allow6", "hash:ip", "family", "inet6"], ["pairs6", "hash:ip,port", "family", "inet6"]],
    ]

    static func rules(_ family: Family) -> String {
        let v = family == .ipv4 ? "4" : "6"
        var text = """
            *filter
            -A INPUT -m set --match-set allow\(v) src -j ACCEPT
            -A INPUT -m set ! --match-set pairs\(v) dst,dst -j DROP
            -A INPUT -p tcp -m set --match-set pairs\(v) src,dst --return-nomatch ! --update-counters ! --update-subcounters --packets-gt 5 ! --bytes-eq 10 -j ACCEPT
            -A OUTPUT -m set --match-set allow\(v) dst --bytes-lt 100

            """
        if family == .ipv4 { text += "-A OUTPUT -m set --match-set counted4 dst --packets-eq 1 -j RETURN\n" }
        return text + "COMMIT\n"
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), arguments: [Family.ipv4, .ipv6])
    func setMatchesReadBackIdentically(_ family: Family) throws {
        let ns = try TestNamespace()
        for set in Self.sets[family] ?? [] { try ns.mustRun(["ipset", "create"] + set) }
        try ns.mustRun([LegacyLive.restoreCommand(family)], stdin: Self.rules(family))

        let ruleset = try LegacyLive.read(ns, families: [family])
        try LegacyLive.expectIdenticalToSave(ruleset, in: ns, family: family)
        let names = Set(setMatches(ruleset).map(\.name))
        #expect(names == Set((Self.sets[family] ?? []).map { $0[0] }))
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func withoutTheLookupTheIndexIsKept() throws {
        let ns = try TestNamespace()
        for set in Self.sets[.ipv4] ?? [] { try ns.mustRun(["ipset", "create"] + set) }
        try ns.mustRun(["iptables-legacy-restore"], stdin: Self.rules(.ipv4))
        let ruleset = try LegacyLive.read(ns, families: [.ipv4], reader: LegacyTableReader(resolvesSetNames: false))
        let names = setMatches(ruleset).map(\.name)
        #expect(!names.isEmpty)
        // Sets are indexed in creation order.
        #expect(Set(names) == ["#0", "#1", "#2"])
    }

    private func setMatches(_ ruleset: Ruleset) -> [SetMatch] {
        ruleset.tables.flatMap(\.chains).flatMap(\.rules).flatMap(\.matches).compactMap {
            if case .set(let s) = $0 { s } else { nil }
        }
    }
}
