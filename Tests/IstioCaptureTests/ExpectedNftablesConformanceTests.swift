import CorpusSupport
import IstioCapture
import NetfilterModel
import Testing

/// `ExpectedNftables` against Istio's native-nftables goldens: the configuration comes from the case's flags,
/// env and runtime inputs through the product's parsers; the golden transaction is replayed into the tables
/// `nft -f` leaves (`NftTransaction`); both must agree table by table, chain by chain, rule for rule, and
/// render as `nft list ruleset` printed them when the corpus was recorded.
@Suite struct ExpectedNftablesConformanceTests {
    @Test(arguments: Corpus.nftablesCases)
    func matchesGoldenTransaction(_ c: CorpusCase) throws {
        let config = try Corpus.configuration(c)
        #expect(config.nativeNftables, "the flags carry --native-nftables")
        let golden = try NftTransaction.replay(try c.goldenText(), groups: { Corpus.groupIDs[$0] })
        let built = try ExpectedNftables.tables(for: config, groupResolver: Corpus.groups)

        #expect(built.map(\.name) == golden.map(\.name), "tables")
        for expected in golden {
            guard let actual = built.first(where: { $0.name == expected.name }) else { continue }
            #expect(actual.family == expected.family, "\(expected.name) family")
            #expect(actual.chains.map(\.name) == expected.chains.map(\.name), "\(expected.name) chains")
            for chain in expected.chains {
                guard let mine = actual.chain(chain.name) else { continue }
                let place = "\(expected.name) \(chain.name)"
                #expect(mine.base == chain.base, "\(place) hook")
                #expect(mine.rules.count == chain.rules.count, "\(place) rule count")
                for (i, (a, e)) in zip(mine.rules, chain.rules).enumerated() where a != e {
                    Issue.record("\(place) #\(i + 1): built \(NftSyntax.render(a)), golden \(NftSyntax.render(e)) (\(a.statements) vs \(e.statements))")
                }
            }
        }
        let equal = built == golden
        #expect(equal, "the model values, handles and all")
        #expect(NftSyntax.render(built) == NftSyntax.render(golden))
    }

    /// The replay is a model of what nft does to a transaction; this holds it to what nft really listed.
    @Test(arguments: Corpus.nftablesCases)
    func goldenReplayRendersAsRecordedListing(_ c: CorpusCase) throws {
        let golden = try NftTransaction.replay(try c.goldenText(), groups: { Corpus.groupIDs[$0] })
        #expect(NftSyntax.render(golden) == (try c.recordedListing()))
    }

    /// So the expectation is what a live read of the pod shows: the builder's tables print exactly as the kernel
    /// listed them after loading the golden.
    @Test(arguments: Corpus.nftablesCases)
    func rendersAsRecordedListing(_ c: CorpusCase) throws {
        let built = try ExpectedNftables.tables(for: try Corpus.configuration(c), groupResolver: Corpus.groups)
        #expect(NftSyntax.render(built) == (try c.recordedListing()))
    }

    @Test func corpusIsComplete() {
        #expect(Corpus.nftablesCases.count == 28)
        #expect(Corpus.nftablesCases.filter { !$0.env.isEmpty }.map(\.name)
                == ["host-ipv4-loopback-cidr", "ipv6-dns-outbound-owner-groups", "ipv6-dns-outbound-owner-groups-exclude",
                    "outbound-owner-groups", "outbound-owner-groups-exclude"])
        #expect(Corpus.nftablesCases.allSatisfy { $0.flags.contains("--native-nftables") })
    }
}
