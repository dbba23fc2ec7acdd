import CorpusSupport
import IstioCapture
import NetfilterModel
import RuleReaders
import Testing
import TestSupport

/// Ambient's nftables backend against the kernel: each of istio-cni's `ambient-nftables` goldens loaded with
/// `nft -f` into a private namespace and read back through libnftables is, handles aside, exactly what
/// `ExpectedAmbient` builds for the case's node-agent settings and pod annotations.
@Suite("Ambient nf_tables: what ExpectedAmbient expects is what a live read of istio-cni's rules returns")
struct ExpectedAmbientLiveTests {
    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip), arguments: Corpus.ambientNftablesCases.filter { !$0.isHostRules })
    func builtEqualsLiveRead(_ c: CorpusCase) throws {
        let ns = try TestNamespace()
        try ns.mustRun(["nft", "-f", Fixtures.url("istio/master/ambient-nftables/\(c.golden).golden").path])
        let read = try NftablesReader(namespacePath: ns.path).read().map(\.withoutHandles)
        let built = try ExpectedNftables.tables(for: try c.configurationThroughText())
        #expect(built.map(\.name) == read.map(\.name))
        for table in read {
            let mine = built.first { $0.name == table.name }
            for chain in table.chains where mine?.chain(chain.name) != chain {
                Issue.record("\(table.name) \(chain.name): built\n\(mine?.chain(chain.name).map { $0.rules.map { NftSyntax.render($0) }.joined(separator: "\n") } ?? "")\nread\n\(chain.rules.map { NftSyntax.render($0) }.joined(separator: "\n"))")
            }
        }
        let equal = built == read
        #expect(equal)
    }
}
