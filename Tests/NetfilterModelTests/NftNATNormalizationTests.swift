import Testing
@testable import NetfilterModel

/// nft's NAT statements mean what iptables' DNAT, SNAT and MASQUERADE mean, so a foreign `dnat` is judged as a
/// foreign `-j DNAT` is (a decided bypass), not as an undecoded target evaluated both ways.
@Suite struct NftNATNormalizationTests {
    /// The rules one nft rule becomes in one family's view of its table.
    static func view(_ family: NftFamily, _ statements: [NftStatement], as ipFamily: Family = .ipv4) -> [Rule] {
        let table = NftTable(family: family, name: "other", chains: [NftChain(name: "out", rules: [NftRule(handle: 2, statements: statements)])])
        return table.normalized().first { $0.family == ipFamily }?.chains.first?.rules ?? []
    }

    static let tcp80: NftStatement = .match(NftMatch(.payload(.field(protocol: "tcp", field: "dport")), .equal, .integer(80)))

    @Test func dnatToOneAddressAndPortIsDNAT() {
        let rules = Self.view(.ip, [Self.tcp80, .dnat(NftNAT(address: .string("10.9.9.9"), port: .integer(8080)))])
        #expect(rules.count == 1)
        #expect(rules.first?.target == .dnat(NATTarget(range: NATRange(minAddress: IPAddress("10.9.9.9"), ports: 8080...8080))))
        #expect(rules.first.map { SaveSyntax.targetText($0.target, family: .ipv4) } == " -j DNAT --to-destination 10.9.9.9:8080")
    }

    @Test func snatRangesAndFlagsAreKept() {
        let nat = NftNAT(address: .range(.string("192.0.2.1"), .string("192.0.2.9")), port: .range(.integer(1024), .integer(2048)),
                         flags: ["fully-random", "persistent"])
        let rules = Self.view(.ip, [.snat(nat)])
        #expect(rules.first?.target == .snat(NATTarget(range: NATRange(minAddress: IPAddress("192.0.2.1"), maxAddress: IPAddress("192.0.2.9"),
                                                                       ports: 1024...2048), randomFully: true, persistent: true)))
    }

    @Test func masqueradeIsMASQUERADE() {
        #expect(Self.view(.ip, [.masquerade(NftNAT(flags: ["random"]))]).first?.target == .masquerade(PortRewriteTarget(random: true)))
    }

    /// `dnat ip to …` in an inet table acts on IPv4 packets only: the kernel skips it for IPv6 and goes on with the
    /// rule (here, the counter only), so the IPv6 view keeps the rule without the NAT.
    @Test func aFamilysNATIsNotInTheOtherFamilysView() {
        let statements: [NftStatement] = [Self.tcp80, .dnat(NftNAT(family: "ip", address: .string("10.9.9.9")))]
        #expect(Self.view(.inet, statements, as: .ipv4).first?.target == .dnat(NATTarget(range: NATRange(minAddress: IPAddress("10.9.9.9")))))
        let v6 = Self.view(.inet, statements, as: .ipv6)
        #expect(v6.count == 1 && v6.first?.target == .continue, "\(v6)")
    }

    /// What iptables' targets cannot say (a map, a prefix translation) stays undecoded, evaluated both ways.
    @Test func whatDNATCannotSayStaysUndecoded() {
        let map = NftNAT(address: .map(key: .payload(.field(protocol: "tcp", field: "dport")), data: .setReference("targets")))
        guard case .unrecognized = Self.view(.ip, [.dnat(map)]).first?.target else {
            Issue.record("a dnat map was decoded")
            return
        }
        guard case .unrecognized = Self.view(.ip, [.snat(NftNAT(address: .string("10.0.0.0"), typeFlags: ["prefix"]))]).first?.target else {
            Issue.record("a prefix snat was decoded")
            return
        }
    }
}
