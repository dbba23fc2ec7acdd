import Foundation
import NetfilterModel
import Testing
import TestSupport

/// `show --format save` prints tables in the order iptables-save does: a dump's own order for `--input`, and for a
/// live read the kernel's (`/proc/net/ip_tables_names`, newest table first), whole output, both families.
@Suite("show --format save keeps iptables-save's table order")
struct SaveOrderConformanceTests {
    typealias Dump = ListingConformanceTests.Dump

    static func tableOrder(_ save: String) -> [String] {
        save.split(separator: "\n").filter { $0.hasPrefix("*") }.map { String($0.dropFirst()) }
    }

    @Test func theCorpusHoldsOrdersOtherThanTheFixedOne() {
        // Without dumps in another order than raw, mangle, nat, filter this suite would prove nothing.
        let fixed = ["raw", "mangle", "nat", "filter"]
        let other = ListingConformanceTests.dumps.filter { dump in
            let order = Self.tableOrder(dump.save)
            return order != fixed.filter(order.contains)
        }
        #expect(other.count > 0)
    }

    @Test(arguments: ListingConformanceTests.dumps)
    func savedDumpPrintsBackByteForByte(_ dump: Dump) throws {
        let file = NSTemporaryDirectory() + "iptaudit-order-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).save"
        try dump.save.write(toFile: file, atomically: false, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let shown = try Binary.run(["show", "--input", file, "--format", "save"])
        #expect(shown.status == 0, "\(shown.stderr)")
        #expect(withoutSaveComments(shown.stdout) == withoutSaveComments(dump.save),
                "\(dump.testDescription):\n\(ListingConformanceTests.firstDifference(withoutSaveComments(shown.stdout), withoutSaveComments(dump.save)))")
    }

    /// Tables given in an order no fixed list has (filter before nat before raw) come back in that order.
    @Test func anyOrderOfTheInputIsKept() throws {
        let dump = try #require(ListingConformanceTests.dumps.first { Self.tableOrder($0.save).count >= 3 })
        let blocks = dump.save.components(separatedBy: "\n*").enumerated().map { $0.offset == 0 ? $0.element : "*" + $0.element }
        let reversed = blocks.reversed().map { $0.hasSuffix("\n") ? $0 : $0 + "\n" }.joined()
        let shown = try Binary.run(["show", "--input", "-", "--format", "save"], stdin: reversed)
        #expect(shown.status == 0, "\(shown.stderr)")
        #expect(Self.tableOrder(shown.stdout) == Self.tableOrder(dump.save).reversed())
        #expect(withoutSaveComments(shown.stdout) == reversed)
    }

    /// Every table iptables-legacy-save prints, `security` included, in both families, created in an order no fixed
    /// list has.
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func everyTableOfBothFamiliesIsPrinted() throws {
        let ns = try TestNamespace()
        for (tool, table) in [("iptables-legacy", "filter"), ("iptables-legacy", "security"), ("ip6tables-legacy", "nat"),
                              ("iptables-legacy", "raw"), ("ip6tables-legacy", "security"), ("iptables-legacy", "mangle")] {
            try ns.mustRun([tool, "-t", table, "-A", "OUTPUT", "-p", "tcp", "--dport", "80", "-j", "ACCEPT"])
        }
        let shown = try Binary.run(["show", "--netns", ns.path, "--backend", "legacy", "--format", "save"])
        #expect(shown.status == 0, "\(shown.stderr)")
        let expected = withoutSaveComments(try ns.mustRun(["iptables-legacy-save"]))
            + withoutSaveComments(try ns.mustRun(["ip6tables-legacy-save"]))
        #expect(Self.tableOrder(expected).count == 6)
        #expect(withoutSaveComments(shown.stdout) == expected, "\(ListingConformanceTests.firstDifference(withoutSaveComments(shown.stdout), expected))")
    }

    /// Each dump restored into a private namespace: iptaudit's whole save output (every table, both families) is
    /// iptables-legacy-save's followed by ip6tables-legacy-save's, comment lines aside.
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), arguments: ListingConformanceTests.dumps)
    func liveReadPrintsAsIptablesLegacySave(_ dump: Dump) throws {
        let ns = try TestNamespace()
        let v6 = dump.family == .ipv6
        for line in dump.save.split(separator: "\n") where line.contains("--match-set ") {
            let words = line.split(separator: " ")
            guard let i = words.firstIndex(of: "--match-set"), i + 1 < words.count else { continue }
            _ = try ns.run(["ipset", "create", String(words[i + 1]), "hash:ip"] + (v6 ? ["family", "inet6"] : []))
        }
        try ns.mustRun([v6 ? "ip6tables-legacy-restore" : "iptables-legacy-restore"], stdin: dump.save)
        let shown = try Binary.run(["show", "--netns", ns.path, "--backend", "legacy", "--format", "save"])
        #expect(shown.status == 0, "\(shown.stderr)")
        let expected = withoutSaveComments(try ns.mustRun(["iptables-legacy-save"]))
            + withoutSaveComments(try ns.mustRun(["ip6tables-legacy-save"]))
        #expect(withoutSaveComments(shown.stdout) == expected, "\(dump.testDescription):\n\(ListingConformanceTests.firstDifference(withoutSaveComments(shown.stdout), expected))")
        #expect(Self.tableOrder(shown.stdout) == Self.tableOrder(expected))
    }
}
