import CorpusSupport
import IstioCapture
import NetfilterModel
import Testing

/// `ExpectedAmbient` against istio-cni's ambient goldens: the configuration comes from each case's node-agent
/// settings and pod annotations (the annotations through a pod manifest the product reads); the iptables form
/// must print byte for byte as iptables-legacy-save printed the loaded golden. The nftables form is checked
/// against the kernel (`ExpectedAmbientLiveTests`).
@Suite struct ExpectedAmbientConformanceTests {
    @Test(arguments: Corpus.ambientIPTablesCases.filter { !$0.isHostRules })
    func iptablesMatchLiveSave(_ c: CorpusCase) throws {
        let config = try Corpus.configuration(c)
        #expect(config.ambient != nil)
        for family in Family.allCases {
            let expected = c.liveSave(family).map(Corpus.tables(inSave:)) ?? [:]
            #expect(expected.isEmpty == (family == .ipv6 && !c.ipv6), "\(family) live dump present")
            var actual: [String: String] = [:]
            for table in ExpectedRules.tables(for: config, family: family) { actual[table.name.rawValue] = SaveSyntax.render(table) }
            #expect(actual.keys.sorted() == expected.keys.sorted(), "\(family) tables")
            for (name, text) in expected.sorted(by: { $0.key < $1.key }) {
                #expect(actual[name] == text, "\(family) \(name)")
            }
        }
    }

    @Test func corpusIsComplete() {
        #expect(Corpus.ambientIPTablesCases.count == 14)
        #expect(Corpus.ambientNftablesCases.count == 14)
        #expect(Corpus.ambientIPTablesCases.filter(\.isHostRules).map(\.name) == ["hostprobe", "hostprobe_ipv6"])
    }

    /// What changed between releases (istio/istio history of cni/pkg/iptables and cni/pkg/nftables).
    @Test func versionShapes() throws {
        func config(_ v: String, _ edit: (inout AmbientSettings) -> Void = { _ in }) -> CaptureConfiguration {
            var c = CaptureConfiguration()
            var a = AmbientSettings()
            edit(&a)
            c.ambient = a
            c.istioVersion = IstioVersion(v)!
            return c
        }
        func save(_ c: CaptureConfiguration) -> String { ExpectedRules.tables(for: c, family: .ipv4).map { SaveSyntax.render($0) }.joined() }
        // 1.24's chart leaves DNS capture off; 1.25 turns it on.
        #expect(!save(config("1.24.3")).contains("15053"))
        #expect(save(config("1.25.0")).contains("--to-ports 15053"))
        // The pod's DNS annotation and virtual interfaces are read from 1.25.
        #expect(!save(config("1.24.3") { $0.podDNSCapture = true }).contains("15053"))
        #expect(!save(config("1.24.3") { $0.virtualInterfaces = ["net1"] }).contains("net1"))
        #expect(save(config("1.25.0") { $0.virtualInterfaces = ["net1"] }).contains("-A ISTIO_PRERT -i net1 -p tcp -j REDIRECT --to-ports 15001"))
        // Ingress mode drops mangle's CONNMARK set before 1.29.
        #expect(!save(config("1.28.2") { $0.bypassInboundCapture = true }).contains("--set-xmark"))
        #expect(save(config("1.29.0") { $0.bypassInboundCapture = true }).contains("--set-xmark 0x111/0xfff"))
        // 1.28.0's nftables backend wrote IPv6 rules with IPv6 off.
        var n = config("1.28.0")
        n.nativeNftables = true
        #expect(NftSyntax.render(try ExpectedNftables.tables(for: n)).contains("ip6 daddr"))
        n.istioVersion = IstioVersion(1, 28, 1)
        #expect(!NftSyntax.render(try ExpectedNftables.tables(for: n)).contains("ip6 daddr"))
        // Releases without the modelled shape are refused, not guessed.
        #expect(throws: IstioCaptureError.self) { try AmbientSettings.check(version: IstioVersion(1, 23, 2), nativeNftables: false) }
        #expect(throws: IstioCaptureError.self) { try AmbientSettings.check(version: IstioVersion(1, 27, 0), nativeNftables: true) }
        try AmbientSettings.check(version: IstioVersion(1, 28, 0), nativeNftables: true)
    }
}
