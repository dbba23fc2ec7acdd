import CorpusSupport
import IstioCapture
import NetfilterModel
import RuleReaders
import Testing
import TestSupport

/// `ExpectedNftables` against the kernel: each native-nftables golden loaded with `nft -f` into a private
/// namespace and read back through libnftables (`NftablesReader`) is, handles aside, exactly the tables the
/// builder expects for the case's configuration: the same model values the verifier will compare, not only
/// the same text.
@Suite("Native nf_tables: what ExpectedNftables expects is what a live read of Istio's rules returns")
struct ExpectedNftablesLiveTests {
    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip), arguments: Corpus.nftablesCases)
    func builtEqualsLiveRead(_ c: CorpusCase) throws {
        let golden = try #require(NftablesGolden.all.first { $0.name == c.golden })
        let ns = try TestNamespace()
        try golden.load(into: ns)
        let read = try NftablesReader(namespacePath: ns.path).read().map(\.withoutHandles)
        let built = try ExpectedNftables.tables(for: try c.configuration(), groupResolver: Corpus.groupResolver)
        #expect(built.map(\.name) == read.map(\.name))
        for table in read {
            let mine = built.first { $0.name == table.name }
            for chain in table.chains where mine?.chain(chain.name) != chain {
                Issue.record("\(table.name) \(chain.name): built\n\(mine?.chain(chain.name).map { $0.rules.map(\.statements) } ?? [])\nread\n\(chain.rules.map(\.statements))")
            }
        }
        let equal = built == read
        #expect(equal)
    }
}

extension NftTable {
    /// The same table with the kernel's handles zeroed, as a table that was never loaded has them.
    var withoutHandles: NftTable {
        var t = self
        t.handle = 0
        for c in t.chains.indices {
            t.chains[c].handle = 0
            for r in t.chains[c].rules.indices { t.chains[c].rules[r].handle = 0 }
        }
        return t
    }
}
