import CorpusSupport
import IstioCapture
import NetfilterModel
import Testing

/// `ExpectedRules` against what iptables-legacy-save printed after loading each of Istio's goldens:
/// the configuration comes from the case's flags/env/runtime inputs (CNI: a pod manifest) through the
/// product parsers, and every table of every family must print byte for byte as the live dump.
@Suite struct ExpectedRulesConformanceTests {
    @Test(arguments: Corpus.cases)
    func matchesLiveSave(_ c: CorpusCase) throws {
        let config = try Corpus.configuration(c)
        for family in Family.allCases where !c.failedToLoad(family) {
            let expected = c.liveSave(family).map(Corpus.tables(inSave:)) ?? [:]
            // Every case has IPv4 rules, and IPv6 ones exactly when the case enables IPv6.
            #expect(expected.isEmpty == (family == .ipv6 && !c.ipv6), "\(family) live dump present")
            var actual: [String: String] = [:]
            for table in ExpectedRules.tables(for: config, family: family, groupResolver: Corpus.groups) {
                actual[table.name.rawValue] = SaveSyntax.render(table)
            }
            #expect(actual.keys.sorted() == expected.keys.sorted(), "\(family) tables")
            for (name, text) in expected.sorted(by: { $0.key < $1.key }) {
                #expect(actual[name] == text, "\(family) \(name)")
            }
        }
    }

    @Test func corpusIsComplete() {
        // 4 full-run 1.10 cases, 27 each for 1.14, 1.26 and master, 9 CNI cases.
        let counts = Dictionary(grouping: Corpus.cases, by: { "\($0.ref)/\($0.kind)" }).mapValues(\.count)
        #expect(counts["1.10.6/sidecar-iptables"] == 4)
        #expect(counts["1.14.6/sidecar-iptables"] == 27)
        #expect(counts["1.26.8/sidecar-iptables"] == 27)
        #expect(counts["master/sidecar-iptables"] == 27)
        #expect(counts["master/cni-sidecar-iptables"] == 9)
    }
}
