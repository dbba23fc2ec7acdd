import Foundation
import NetfilterModel
import Testing
import TestSupport

/// `show --format list` is `iptables -L -v -n --line-numbers -t TABLE` byte for byte: every corpus dump (sidecar,
/// CNI and ambient, both families) and the kube-proxy workload are loaded into a private namespace, and each table
/// block iptaudit prints for the live read is compared with what iptables-legacy (ip6tables-legacy) lists there.
@Suite("show --format list equals iptables -L -v -n --line-numbers")
struct ListingConformanceTests {
    struct Dump: CustomTestStringConvertible, Sendable {
        var name: String
        var family: Family
        var save: String
        var testDescription: String { "\(name) \(family == .ipv4 ? "IPv4" : "IPv6")" }
    }

    /// Every `live-save` dump of the corpus (what iptables-legacy-save printed after loading each golden).
    static let dumps: [Dump] = Fixtures.files(under: "istio", suffix: ".save").filter { $0.path.contains("/live-save/") }.compactMap { url in
        guard let save = try? String(contentsOf: url, encoding: .utf8) else { return nil }
        let name = url.path.components(separatedBy: "/istio/").last ?? url.lastPathComponent
        return Dump(name: name, family: url.path.hasSuffix(".ipv6.save") ? .ipv6 : .ipv4, save: save)
    }

    /// The `# iptables -L … -t TABLE` separator followed by that table's block, for each table shown.
    static func blocks(_ listing: String) -> [(command: String, text: String)] {
        var out: [(command: String, text: String)] = []
        for line in listing.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# ") {
                // The blank line before a separator belongs to neither block.
                if !out.isEmpty, out[out.count - 1].text.hasSuffix("\n\n") { out[out.count - 1].text.removeLast() }
                out.append((String(line.dropFirst(2)), ""))
            } else if !out.isEmpty {
                out[out.count - 1].text += line + "\n"
            }
        }
        if !out.isEmpty, out[out.count - 1].text.hasSuffix("\n\n") { out[out.count - 1].text.removeLast() }
        return out
    }

    /// Loads the dump (creating the ipsets it names first, as ambient's host-probe rules need) and compares.
    static func expectIdentical(_ save: String, family: Family, name: String, skipping skipped: Set<String> = []) throws {
        let ns = try TestNamespace()
        let v6 = family == .ipv6
        for line in save.split(separator: "\n") where line.contains("--match-set ") {
            let words = line.split(separator: " ")
            guard let i = words.firstIndex(of: "--match-set"), i + 1 < words.count else { continue }
            _ = try ns.run(["ipset", "create", String(words[i + 1]), "hash:ip"] + (v6 ? ["family", "inet6"] : []))
        }
        try ns.mustRun([v6 ? "ip6tables-legacy-restore" : "iptables-legacy-restore"], stdin: save)
        let shown = try Binary.run(["show", "--netns", ns.path, "--backend", "legacy", "--format", "list",
                                    "--family", v6 ? "ipv6" : "ipv4"])
        #expect(shown.status == 0, "\(shown.stderr)")
        let tables = save.split(separator: "\n").filter { $0.hasPrefix("*") }.map { String($0.dropFirst()) }
        // One table is the command's output alone, with no separator line.
        let blocks = tables.count == 1
            ? [("\(v6 ? "ip6tables" : "iptables") -L -v -n --line-numbers -t \(tables[0])", shown.stdout)] : Self.blocks(shown.stdout)
        #expect(Set(blocks.map { String($0.command.split(separator: " ").last ?? "") }) == Set(tables), "\(name)")
        for block in blocks {
            let table = String(block.command.split(separator: " ").last ?? "")
            if skipped.contains(table) { continue }
            let expected = try ns.mustRun([v6 ? "ip6tables-legacy" : "iptables-legacy", "-L", "-v", "-n", "--line-numbers", "-t", table])
            #expect(block.command == "\(v6 ? "ip6tables" : "iptables") -L -v -n --line-numbers -t \(table)")
            #expect(block.text == expected, "\(name) \(table):\n\(firstDifference(block.text, expected))")
        }
    }

    @Test("the corpus is there") func corpusIsThere() {
        // 156 dumps (sidecar, CNI and ambient of four refs) when this was written.
        #expect(Self.dumps.count >= 150)
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), arguments: dumps)
    func corpusDumpListsAsIptablesDoes(_ dump: Dump) throws {
        try Self.expectIdentical(dump.save, family: dump.family, name: dump.testDescription)
    }

    /// kube-proxy's shape (statistic, comments, DNAT, MARK, masquerade), from the benchmark generator.
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func kubeProxyWorkloadListsAsIptablesDoes() throws {
        let generated = try runCommand(["python3", Fixtures.repositoryPath("scripts/gen-kube-proxy-rules.py"), "--services", "40"])
        try #require(generated.status == 0, "\(generated.stderr)")
        try Self.expectIdentical(generated.stdout, family: .ipv4, name: "kube-proxy")
    }

    /// The extension fixture (every match and target option iptaudit decodes, IPv4 and IPv6). Its IPv4 filter
    /// table holds `-m icmp` and `-m limit`, which iptaudit keeps undecoded and cannot print as iptables does.
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), arguments: [Family.ipv4, .ipv6])
    func extensionFixtureListsAsIptablesDoes(_ family: Family) throws {
        let save = try Fixtures.text("extensions/\(family == .ipv4 ? "ipv4" : "ipv6").save")
        try Self.expectIdentical(save, family: family, name: "extensions", skipping: family == .ipv4 ? ["filter"] : [])
    }

    static func firstDifference(_ got: String, _ expected: String) -> String {
        let g = got.split(separator: "\n", omittingEmptySubsequences: false)
        let e = expected.split(separator: "\n", omittingEmptySubsequences: false)
        for i in 0..<max(g.count, e.count) where (i < g.count ? g[i] : nil) != (i < e.count ? e[i] : nil) {
            return "line \(i + 1)\n  iptaudit: \(i < g.count ? String(g[i]) : "<none>")\n  iptables: \(i < e.count ? String(e[i]) : "<none>")"
        }
        return "same lines"
    }
}
