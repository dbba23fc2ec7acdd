import Foundation
import IstioCapture
import NetfilterModel
import RuleReaders
import Testing
import TestSupport

/// Goldens that load with a backend, per `load-results.tsv` (result `ok`), as (golden path, family).
func loadableGoldens(backend: String) -> [String] {
    guard let tsv = try? Fixtures.text("istio/load-results.tsv") else { return [] }
    let ext = ["sidecar-iptables": ".golden", "ambient-iptables": ".golden", "cni-sidecar-iptables": ".txt.golden"]
    return tsv.split(separator: "\n").dropFirst().compactMap { line in
        let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        guard f.count >= 6, f[4] == backend, f[5] == "ok", let suffix = ext[f[1]] else { return nil }
        return "\(f[0])/\(f[1])/\(f[2])\(suffix)#\(f[3])"
    }
}

/// Issue 2: the goldens loaded with the nft backend are found by `--backend auto` and print the same rules.
@Suite struct NftBackendTests {
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), arguments: loadableGoldens(backend: "nft"))
    func autoDetectsNftAndRendersLikeIptablesNftSave(_ entry: String) throws {
        let parts = entry.split(separator: "#")
        let golden = String(parts[0]), familyNumber = String(parts[1])
        let family: Family = familyNumber == "6" ? .ipv6 : .ipv4
        let ns = try TestNamespace()
        try ns.mustRun(["sh", Fixtures.loadGolden.path, Fixtures.istio.appendingPathComponent(golden).path, familyNumber, "nft"])
        let ruleset = try LiveRulesetReader(backend: .auto, namespacePath: ns.path, readPolicyRouting: false)
            .read(ReadRequest(families: [family]))
        #expect(ruleset.backends[family] == .nft)
        #expect(ruleset.populatedBackends[family] == [.nft])
        #expect(!ruleset.tables.isEmpty)
        let tool = family == .ipv4 ? "iptables-nft-save" : "ip6tables-nft-save"
        for table in ruleset.tables {
            let theirs = try ns.mustRun([tool, "-t", table.name.rawValue])
            #expect(SaveSyntax.render(table) == withoutSaveComments(theirs), "\(golden) \(family) \(table.name)")
        }
        // Reading never created a legacy table.
        #expect(try ns.mustRun(["cat", family == .ipv4 ? "/proc/net/ip_tables_names" : "/proc/net/ip6_tables_names"]).isEmpty)
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func rulesInBothBackendsAreReportedAsSplit() throws {
        let ns = try TestNamespace()
        let golden = Fixtures.istio.appendingPathComponent("master/cni-sidecar-iptables/basic.txt.golden").path
        try ns.mustRun(["sh", Fixtures.loadGolden.path, golden, "4", "nft"])
        try ns.mustRun(["iptables-legacy-restore", "--noflush"], stdin: "*mangle\n-A OUTPUT -j ACCEPT\nCOMMIT\n")
        let ruleset = try LiveRulesetReader(backend: .auto, namespacePath: ns.path, readPolicyRouting: false,
                                            preferredChains: IstioNames.isIstioChain)
            .read(ReadRequest(families: [.ipv4]))
        #expect(ruleset.populatedBackends[.ipv4] == [.legacy, .nft])
        #expect(ruleset.backends[.ipv4] == .nft, "the backend holding Istio's chains is read")
    }

    /// The reader knows no Istio: without a preference a split reads legacy, whichever store holds Istio's chains.
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func withoutAPreferenceASplitReadsLegacy() throws {
        let ns = try TestNamespace()
        let golden = Fixtures.istio.appendingPathComponent("master/cni-sidecar-iptables/basic.txt.golden").path
        try ns.mustRun(["sh", Fixtures.loadGolden.path, golden, "4", "nft"])
        try ns.mustRun(["iptables-legacy-restore", "--noflush"], stdin: "*mangle\n-A OUTPUT -j ACCEPT\nCOMMIT\n")
        let ruleset = try LiveRulesetReader(backend: .auto, namespacePath: ns.path, readPolicyRouting: false)
            .read(ReadRequest(families: [.ipv4]))
        #expect(ruleset.populatedBackends[.ipv4] == [.legacy, .nft])
        #expect(ruleset.backends[.ipv4] == .legacy)
    }
}
