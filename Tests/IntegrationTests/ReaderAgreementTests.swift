import Foundation
import NetfilterModel
import RuleReaders
import Testing
import TestSupport

/// Issue 2: the text reader and the libiptc reader give equal models for the same rules.
@Suite struct ReaderAgreementTests {
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)),
          arguments: loadableGoldens(backend: "legacy"))
    func libiptcModelEqualsTextModel(_ entry: String) throws {
        let parts = entry.split(separator: "#")
        let golden = Fixtures.istio.appendingPathComponent(String(parts[0])).path
        let family: Family = parts[1] == "6" ? .ipv6 : .ipv4
        let ns = try TestNamespace()
        try ns.mustRun(["sh", Fixtures.loadGolden.path, golden, String(parts[1]), "legacy"])
        let live = try NetworkNamespace(path: ns.path).perform {
            try LegacyTableReader().read(ReadRequest(families: [family]))
        }.tables.map(\.withoutCounters)
        #expect(!live.isEmpty)

        // The same rules as iptables-legacy-save prints them…
        let save = try ns.mustRun([family == .ipv4 ? "iptables-legacy-save" : "ip6tables-legacy-save"])
        let fromSave = try SaveTextParser(fileName: "save", family: family).parse(save).map(\.withoutCounters)
        #expect(Self.byName(live) == Self.byName(fromSave))

        // …and as the restore script that loaded them.
        let restore = try runCommand(["sh", Fixtures.loadGolden.path, "-n", golden, String(parts[1]), "legacy"]).stdout
        let fromRestore = try SaveTextParser(fileName: golden, family: family).parse(restore).map(\.withoutCounters)
        #expect(Self.byName(live) == Self.byName(fromRestore))
    }

    static func byName(_ tables: [Table]) -> [String: Table] {
        Dictionary(uniqueKeysWithValues: tables.map { ("\($0.family) \($0.name)", $0) })
    }
}
