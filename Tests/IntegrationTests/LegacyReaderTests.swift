import Foundation
import NetfilterModel
import RuleReaders
import TestSupport
import Testing

/// Helpers for reading a test namespace's legacy tables and comparing them with iptables-legacy-save there.
enum LegacyLive {
    /// Every table ip_tables knows, so nothing the kernel holds is left out of a comparison.
    static let allTables: [TableName] = [.raw, .mangle, .nat, .filter, .security]

    static func saveCommand(_ family: Family) -> String { family == .ipv4 ? "iptables-legacy-save" : "ip6tables-legacy-save" }
    static func restoreCommand(_ family: Family) -> String { family == .ipv4 ? "iptables-legacy-restore" : "ip6tables-legacy-restore" }
    static func familyArgument(_ family: Family) -> String { family == .ipv4 ? "4" : "6" }

    /// Reads the namespace's legacy tables through libiptc, from a thread that joined the namespace.
    static func read(_ ns: TestNamespace, families: [Family] = Family.allCases,
                     reader: LegacyTableReader = LegacyTableReader()) throws -> Ruleset {
        try NetworkNamespace(path: ns.path).perform {
            try reader.read(ReadRequest(tables: allTables, families: families))
        }
    }

    /// The tables the kernel has instantiated in the namespace (empty when ip_tables is not loaded at all).
    static func liveTables(_ ns: TestNamespace, _ family: Family) throws -> [TableName] {
        let file = family == .ipv4 ? "/proc/net/ip_tables_names" : "/proc/net/ip6_tables_names"
        let r = try ns.run(["cat", file])
        guard r.status == 0 else { return [] }
        return r.stdout.split(separator: "\n").map { TableName(String($0)) }
    }

    /// `ip[6]tables-legacy-save -t TABLE` in the namespace, without its timestamp comments.
    static func save(_ ns: TestNamespace, _ family: Family, _ table: TableName, counters: Bool = false) throws -> String {
        withoutSaveComments(try ns.mustRun([saveCommand(family)] + (counters ? ["-c"] : []) + ["-t", table.rawValue]))
    }

    /// The first line where two renderings differ, or nil when they are identical (keeps failures readable for
    /// tables of thousands of lines).
    static func difference(expected: String, actual: String) -> String? {
        if expected == actual { return nil }
        let e = expected.split(separator: "\n", omittingEmptySubsequences: false)
        let a = actual.split(separator: "\n", omittingEmptySubsequences: false)
        for i in 0..<max(e.count, a.count) {
            let el = i < e.count ? String(e[i]) : "<end>"
            let al = i < a.count ? String(a[i]) : "<end>"
            if el != al { return "line \(i + 1):\n  iptables-legacy-save: \(el)\n  reader rendered:      \(al)" }
        }
        return "the texts differ only in trailing bytes"
    }

    /// Splits save output into one `*table ... COMMIT` text per table.
    static func tableBlocks(_ text: String) -> [String] {
        var blocks: [String] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            if line.hasPrefix("*") || blocks.isEmpty { blocks.append("") }
            blocks[blocks.count - 1] += line + "\n"
        }
        return blocks
    }

    /// Checks that the reader saw exactly the tables the kernel has, and that each renders byte for byte as
    /// iptables-legacy-save prints it. Returns the number of tables compared.
    @discardableResult
    static func expectIdenticalToSave(_ ruleset: Ruleset, in ns: TestNamespace, family: Family, counters: Bool = false,
                                      sourceLocation: SourceLocation = #_sourceLocation) throws -> Int {
        let live = Set(try liveTables(ns, family))
        let read = ruleset.tables.filter { $0.family == family }
        #expect(Set(read.map(\.name)) == live, "tables read vs tables in ip_tables_names", sourceLocation: sourceLocation)
        for table in read {
            let expected = try save(ns, family, table.name, counters: counters)
            let rendered = SaveSyntax.render(table, counters: counters)
            let diff = difference(expected: expected, actual: rendered)
            #expect(diff == nil, "\(family) \(table.name): \(diff ?? "")", sourceLocation: sourceLocation)
        }
        return read.count
    }
}

/// One golden x family that `load-results.tsv` says loads into the legacy backend.
struct GoldenLoad: Sendable, CustomTestStringConvertible {
    var ref: String
    var kind: String
    var name: String
    var family: Family
    /// The tsv's reason for `ok-with-prereq` rows, "" for plain `ok`.
    var prerequisite: String

    /// `<case>.golden`, or `<case>.txt.golden` as the CNI plugin's test data names them.
    var golden: URL {
        let plain = Fixtures.istio.appendingPathComponent("\(ref)/\(kind)/\(name).golden")
        let txt = Fixtures.istio.appendingPathComponent("\(ref)/\(kind)/\(name).txt.golden")
        return FileManager.default.fileExists(atPath: plain.path) ? plain : txt
    }
    var recordedSave: URL {
        Fixtures.istio.appendingPathComponent("\(ref)/live-save/\(kind)/\(name).ipv\(LegacyLive.familyArgument(family)).save")
    }
    /// Owner-group goldens name groups `java` and `ftp`, which iptables resolves through /etc/group.
    var needsGroupNames: Bool { prerequisite.contains("group") }
    /// Ambient host-probe goldens match on ipsets that must exist before the rules load.
    var needsSets: Bool { prerequisite.contains("ipset") }

    var testDescription: String { "\(ref)/\(kind)/\(name) IPv\(LegacyLive.familyArgument(family))" }

    static let all: [GoldenLoad] = {
        guard let tsv = try? Fixtures.text("istio/load-results.tsv") else { return [] }
        return tsv.split(separator: "\n").dropFirst().compactMap { line in
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard f.count >= 6, f[4] == "legacy", f[5] == "ok" || f[5] == "ok-with-prereq" else { return nil }
            return GoldenLoad(ref: f[0], kind: f[1], name: f[2], family: f[3] == "6" ? .ipv6 : .ipv4,
                              prerequisite: f[5] == "ok" ? "" : (f.count > 6 ? f[6] : "prerequisite"))
        }
    }()

    /// Loads the golden into the namespace with load-golden.sh, meeting its prerequisites on the way:
    /// `-I` creates the ipsets (inside the namespace, where sets live), and group names come from a private
    /// /etc/group bind-mounted in a throw-away mount namespace, so the host's file is never touched.
    func load(into ns: TestNamespace) throws {
        var argv = ["sh", Fixtures.loadGolden.path] + (needsSets ? ["-I"] : [])
            + [golden.path, LegacyLive.familyArgument(family), "legacy"]
        var groupFile: String?
        if needsGroupNames {
            let path = NSTemporaryDirectory() + "/\(ns.name).group"
            let hostGroups = (try? String(contentsOfFile: "/etc/group", encoding: .utf8)) ?? ""
            try (hostGroups + "java:x:2001:\nftp:x:2002:\n").write(toFile: path, atomically: true, encoding: .utf8)
            groupFile = path
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    "mount --bind \"$0\" /etc/group && exec \"$@\"", path] + argv
        }
        defer { if let groupFile { try? FileManager.default.removeItem(atPath: groupFile) } }
        try ns.mustRun(argv)
    }
}

@Suite("Legacy reader: Istio goldens read back as iptables-legacy-save prints them")
struct LegacyReaderGoldenTests {
    @Test("the corpus lists the legacy loads") func corpusIsThere() {
        // 135 `ok` + 21 `ok-with-prereq` rows when this was written; guard against a silently empty argument list.
        #expect(GoldenLoad.all.count >= 150)
        #expect(GoldenLoad.all.contains { $0.needsGroupNames })
        #expect(GoldenLoad.all.contains { $0.needsSets })
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), arguments: GoldenLoad.all)
    func goldenReadsBackIdentically(_ golden: GoldenLoad) throws {
        let ns = try TestNamespace()
        try golden.load(into: ns)
        let ruleset = try LegacyLive.read(ns, families: [golden.family])
        #expect(ruleset.backends[golden.family] == .legacy)
        let compared = try LegacyLive.expectIdenticalToSave(ruleset, in: ns, family: golden.family)
        #expect(compared > 0)

        // The dump recorded when the corpus was made says the same, table by table.
        let recorded = try String(contentsOf: golden.recordedSave, encoding: .utf8)
        let recordedTables = Set(LegacyLive.tableBlocks(recorded))
        let renderedTables = Set(ruleset.tables.map { SaveSyntax.render($0) })
        #expect(renderedTables == recordedTables)
    }
}

@Suite("Legacy reader: every decoded extension")
struct LegacyReaderExtensionTests {
    /// Rules whose extensions the model does not decode: iptables-save prints their options, the model keeps bytes.
    static let undecoded: [Family: [String]] = [.ipv4: ["icmp", "limit"], .ipv6: []]

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), arguments: [Family.ipv4, .ipv6])
    func extensionsFixtureReadsBackIdentically(_ family: Family) throws {
        let ns = try TestNamespace()
        let rules = try Fixtures.text("extensions/\(family).rules")
        try ns.mustRun([LegacyLive.restoreCommand(family)], stdin: rules)
        let ruleset = try LegacyLive.read(ns, families: [family])
        let tables = ruleset.tables.filter { $0.family == family }
        #expect(Set(tables.map(\.name)) == Set(try LegacyLive.liveTables(ns, family)))

        var unrecognized: [String] = []
        for table in tables {
            let save = try LegacyLive.save(ns, family, table.name)
            let saveLines = save.split(separator: "\n").map(String.init)
            let rendered = SaveSyntax.render(table).split(separator: "\n").map(String.init)
            // Table header, chain declarations and COMMIT.
            #expect(saveLines.filter { !$0.hasPrefix("-A ") } == rendered.filter { !$0.hasPrefix("-A ") })
            let saveRules = saveLines.filter { $0.hasPrefix("-A ") }
            let rules = table.chains.flatMap { chain in chain.rules.map { (chain.name, $0) } }
            try #require(saveRules.count == rules.count, "\(table.name): rule count")
            for ((chain, rule), saveLine) in zip(rules, saveRules) {
                let unknown = rule.matches.compactMap { m -> UnrecognizedExtension? in
                    if case .unrecognized(let u) = m { return u } else { return nil }
                }
                if unknown.isEmpty {
                    #expect(SaveSyntax.render(rule, in: chain, family: family) == saveLine)
                } else {
                    for u in unknown {
                        unrecognized.append(u.name)
                        #expect(saveLine.contains("-m \(u.name) "), "\(saveLine)")
                        #expect(u.revision != nil)
                        #expect((u.payload?.count ?? 0) > 0, "kept with its kernel payload")
                    }
                }
                if case .unrecognized = rule.target { Issue.record("target not decoded: \(saveLine)") }
            }
        }
        #expect(unrecognized.sorted() == Self.undecoded[family])
        // Also exactly the recorded ground truth of the fixture, outside the undecoded rules.
        let recorded = try Fixtures.text("extensions/\(family).save")
        let differing = tables.flatMap { SaveSyntax.render($0).split(separator: "\n").map(String.init) }
            .filter { !recorded.contains($0 + "\n") }
        #expect(differing.count == Self.undecoded[family]?.count, "\(differing)")
    }
}

@Suite("Legacy reader: a kube-proxy sized nat table")
struct LegacyReaderKubeProxyTests {
    static let generator = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/gen-kube-proxy-rules.py")

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func thousandsOfChainsReadBackIdentically() throws {
        let rules = try runCommand(["python3", Self.generator.path, "--services", "2000", "--endpoints", "3"])
        try #require(rules.status == 0, "\(rules.stderr)")
        let ns = try TestNamespace()
        try ns.mustRun(["iptables-legacy-restore"], stdin: rules.stdout)
        let ruleset = try LegacyLive.read(ns, families: [.ipv4])
        let nat = try #require(ruleset.table(.nat, family: .ipv4))
        #expect(nat.chains.count >= 8_000)
        #expect(nat.ruleCount >= 20_000)
        let targets = nat.chains.flatMap(\.rules).map(\.target)
        #expect(targets.contains { if case .dnat = $0 { true } else { false } })
        #expect(targets.contains { if case .masquerade = $0 { true } else { false } })
        #expect(targets.contains { if case .mark = $0 { true } else { false } })
        try LegacyLive.expectIdenticalToSave(ruleset, in: ns, family: .ipv4)
    }
}
