import Foundation
import NetfilterModel
@testable import RuleReaders
import Testing
import TestSupport

/// The owner-group goldens were loaded with a private /etc/group holding these (see the corpus README).
let corpusGroups: SaveTextParser.NameResolver = { ["java": 2001, "ftp": 2002][$0] }
let noUsers: SaveTextParser.NameResolver = { _ in nil }

func corpusParser(_ name: String, family: Family? = nil) -> SaveTextParser {
    SaveTextParser(fileName: name, family: family, groupResolver: corpusGroups, userResolver: noUsers)
}

/// `*name` … `COMMIT` blocks of save text, by table name.
func saveBlocks(_ text: String) -> [String: String] {
    var blocks: [String: String] = [:]
    var current: (String, String)?
    for line in withoutSaveComments(text).split(separator: "\n", omittingEmptySubsequences: true) {
        if line.hasPrefix("*") { current = (String(line.dropFirst()), "") }
        guard var c = current else { continue }
        c.1 += line + "\n"
        current = c
        if line == "COMMIT" {
            blocks[c.0] = c.1
            current = nil
        }
    }
    return blocks
}

func rendered(_ tables: [Table]) -> [String: String] {
    Dictionary(tables.map { ($0.name.rawValue, SaveSyntax.render($0)) }, uniquingKeysWith: { a, _ in a })
}

@Suite("Save text: fixtures round-trip through the model")
struct SaveTextFixtureTests {
    static let liveSaves: [String] = Fixtures.files(under: "istio", suffix: ".save")
        .map { String($0.path.dropFirst(Fixtures.root.path.count + 1)) }
        .filter { $0.contains("/live-save/") }

    @Test func thereAreLiveSaves() {
        #expect(Self.liveSaves.count > 100)
    }

    /// What iptables-legacy-save printed, read and rendered again, is what it printed.
    @Test(arguments: liveSaves)
    func liveSaveRoundTrips(_ relative: String) throws {
        let text = try Fixtures.text(relative)
        let tables = try corpusParser(relative).parse(text)
        #expect(tables.map { SaveSyntax.render($0) }.joined() == withoutSaveComments(text))
    }

    @Test(arguments: [("extensions/ipv4.save", Family.ipv4), ("extensions/ipv6.save", Family.ipv6)])
    func extensionSaveRoundTrips(_ relative: String, family: Family) throws {
        let text = try Fixtures.text(relative)
        let tables = try corpusParser(relative).parse(text)
        #expect(tables.allSatisfy { $0.family == family })
        #expect(tables.map { SaveSyntax.render($0) }.joined() == text)
    }

    /// The restore input normalises exactly as iptables-restore + iptables-save did (the .save is their output).
    @Test(arguments: [("extensions/ipv4.rules", "extensions/ipv4.save", Family.ipv4),
                      ("extensions/ipv6.rules", "extensions/ipv6.save", Family.ipv6)])
    func extensionRestoreInputNormalisesLikeIptables(_ rules: String, save: String, family: Family) throws {
        let tables = try corpusParser(rules).parse(try Fixtures.text(rules))
        #expect(tables.allSatisfy { $0.family == family })
        let expected = saveBlocks(try Fixtures.text(save))
        let got = rendered(tables)
        #expect(Set(got.keys) == Set(expected.keys))
        for (name, text) in expected {
            #expect(got[name] == text, "table \(name)")
        }
    }

    /// Parsing the restore input and parsing iptables-save's dump of it give equal tables.
    @Test(arguments: [("extensions/ipv4.rules", "extensions/ipv4.save"), ("extensions/ipv6.rules", "extensions/ipv6.save")])
    func restoreAndSaveParseToEqualModels(_ rules: String, save: String) throws {
        let fromRules = try corpusParser(rules).parse(try Fixtures.text(rules)).map(\.withoutCounters)
        let fromSave = try corpusParser(save).parse(try Fixtures.text(save)).map(\.withoutCounters)
        for table in fromSave {
            #expect(fromRules.first { $0.name == table.name } == table, "table \(table.name)")
        }
        #expect(fromRules.count == fromSave.count)
    }
}

/// One golden × family that iptables-legacy-restore loaded, with the dump it produced.
struct GoldenCase: CustomTestStringConvertible, Sendable {
    var ref: String
    var kind: String
    var name: String
    var family: Family

    var testDescription: String { "\(ref)/\(kind)/\(name) IPv\(family == .ipv4 ? 4 : 6)" }

    var goldenPath: String {
        let dir = "istio/\(ref)/\(kind)/"
        let txt = dir + name + ".txt.golden"
        return FileManager.default.fileExists(atPath: Fixtures.url(txt).path) ? txt : dir + name + ".golden"
    }

    var savePath: String { "istio/\(ref)/live-save/\(kind)/\(name).\(family == .ipv4 ? "ipv4" : "ipv6").save" }

    /// Rows of load-results.tsv for the legacy backend that loaded, in the formats this reader takes.
    static func all(formats kinds: Set<String>, refs: Set<String>) -> [GoldenCase] {
        guard let tsv = try? Fixtures.text("istio/load-results.tsv") else { return [] }
        return tsv.split(separator: "\n").dropFirst().compactMap { line in
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard f.count >= 6, f[4] == "legacy", f[5].hasPrefix("ok"), refs.contains(f[0]), kinds.contains(f[1]) else { return nil }
            return GoldenCase(ref: f[0], kind: f[1], name: f[2], family: f[3] == "6" ? .ipv6 : .ipv4)
        }
    }
}

@Suite("Save text: Istio goldens read like iptables-restore loads them")
struct SaveTextGoldenTests {
    static let restoreStubs = GoldenCase.all(formats: ["sidecar-iptables"], refs: ["1.26.8", "master"])
        + GoldenCase.all(formats: ["ambient-iptables", "cni-sidecar-iptables"], refs: ["master"])
    static let commandLists = GoldenCase.all(formats: ["sidecar-iptables"], refs: ["1.14.6", "1.10.6"])

    @Test func casesWereFound() {
        #expect(Self.restoreStubs.count > 60)
        #expect(Self.commandLists.count > 40)
    }

    @Test(arguments: restoreStubs + commandLists)
    func goldenMatchesLiveSave(_ c: GoldenCase) throws {
        let tables = try corpusParser(c.goldenPath).parse(try Fixtures.text(c.goldenPath)).filter { $0.family == c.family }
        let expected = saveBlocks(try Fixtures.text(c.savePath))
        let got = rendered(tables)
        #expect(Set(got.keys) == Set(expected.keys))
        for (name, text) in expected {
            #expect(got[name] == text, "table \(name)")
        }
        // And the model agrees with the one read back from the dump.
        let fromSave = try corpusParser(c.savePath, family: c.family).parse(try Fixtures.text(c.savePath))
        for table in fromSave {
            #expect(tables.first { $0.name == table.name }?.withoutCounters == table.withoutCounters, "table \(table.name)")
        }
    }
}
