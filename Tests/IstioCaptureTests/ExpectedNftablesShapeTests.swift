import IstioCapture
import NetfilterModel
import Testing

/// Which tables and chains native nftables mode creates for which knobs, the version shapes the corpus (master
/// only) does not sample, and the configurations nft would reject.
@Suite struct ExpectedNftablesShapeTests {
    static let master = IstioVersion(1, 32, 0)

    static func config(_ args: String, version: IstioVersion = master, dns: [String] = [], dns6: [String] = [],
                       ipv6: Bool = false, env: [String: String] = [:]) throws -> CaptureConfiguration {
        var c = try IstioArguments.parse("--native-nftables " + args)
        try c.applyEnvironment(env)
        c.istioVersion = version
        c.dnsServersIPv4 = dns
        c.dnsServersIPv6 = dns6
        c.ipv6Enabled = ipv6
        return c
    }

    static func tables(_ args: String, version: IstioVersion = master, dns: [String] = [], dns6: [String] = [],
                       ipv6: Bool = false, env: [String: String] = [:]) throws -> [NftTable] {
        try ExpectedNftables.tables(for: config(args, version: version, dns: dns, dns6: dns6, ipv6: ipv6, env: env))
    }

    /// Each chain's name, with its hook and priority when it is a base chain.
    static func chains(_ table: NftTable?) -> [String] {
        (table?.chains ?? []).map { c in
            c.base.map { "\(c.name) \($0.type.rawValue) \($0.hook.rawValue) \($0.priority)" } ?? c.name
        }
    }

    /// One table's rules, one line each, as `nft list ruleset` prints them.
    static func rules(_ tables: [NftTable], _ name: String) -> [String] {
        guard let t = tables.first(where: { $0.name == name }) else { return [] }
        return t.chains.flatMap { c in c.rules.map { "\(c.name): " + NftSyntax.render($0) } }
    }

    /// With istio-iptables' own defaults (no inbound ports, no outbound ranges) the nat table still gets the
    /// outbound hook, the owner rules and the three fixed chains; no prerouting, no mangle, no raw.
    @Test func defaultsGiveTheNatTableOnly() throws {
        let tables = try Self.tables("")
        #expect(tables.map(\.name) == ["istio-proxy-nat"])
        #expect(tables.allSatisfy { $0.family == .inet })
        #expect(Self.chains(tables.first) == ["output nat output -100", "istio-inbound", "istio-redirect", "istio-in-redirect", "istio-output"])
        let nat = Self.rules(tables, "istio-proxy-nat")
        #expect(nat.first == "output: counter packets 0 bytes 0 jump istio-output")
        #expect(nat.last == "istio-output: ip daddr 127.0.0.1 counter packets 0 bytes 0 return")
        #expect(!nat.contains { $0.contains("istio-redirect") && $0.hasPrefix("istio-output") }, "no -i, no capture-all jump")
    }

    @Test func withoutTheFlagIstioWritesNoNativeTables() throws {
        var c = try Self.config("-b '*' -i '*'")
        c.nativeNftables = false
        #expect(try ExpectedNftables.tables(for: c).isEmpty)
    }

    /// istio-iptables before 1.27 has no `--native-nftables`; the configuration's default version is 1.26.
    @Test func versionsBefore127AreRefused() throws {
        #expect(throws: IstioCaptureError.nativeNftablesUnavailable(IstioVersion(1, 26, 8))) {
            try Self.tables("-i '*'", version: IstioVersion(1, 26, 8))
        }
        var c = try IstioArguments.parse("--native-nftables")
        #expect(c.istioVersion == .latest)
        #expect(throws: IstioCaptureError.nativeNftablesUnavailable(.latest)) { try ExpectedNftables.tables(for: c) }
        c.istioVersion = ExpectedNftables.firstVersion
        #expect(try !ExpectedNftables.tables(for: c).isEmpty)
    }

    /// 1.27 writes no `counter`; 1.28 and later one in every rule, and nothing else changes.
    @Test func countersFrom128() throws {
        let args = "-m TPROXY -b '*' -i '*' -x 10.0.0.0/8 --redirect-dns --drop-invalid"
        let v127 = try Self.tables(args, version: IstioVersion(1, 27, 9), dns: ["10.96.0.10"])
        let v128 = try Self.tables(args, version: IstioVersion(1, 28, 0), dns: ["10.96.0.10"])
        let rules127 = v127.flatMap(\.chains).flatMap(\.rules)
        let rules128 = v128.flatMap(\.chains).flatMap(\.rules)
        #expect(rules127.allSatisfy { !$0.statements.contains(.counter(NftCounter())) })
        #expect(rules128.allSatisfy { $0.statements.filter { $0 == .counter(NftCounter()) }.count == 1 })
        #expect(rules128.map { $0.statements.filter { $0 != .counter(NftCounter()) } } == rules127.map(\.statements))
        #expect(v127.map(\.name) == v128.map(\.name))
    }

    @Test func tproxyAddsTheMangleTable() throws {
        let tables = try Self.tables("-m TPROXY -b '*' -d 15020 -i '*'")
        #expect(tables.map(\.name) == ["istio-proxy-nat", "istio-proxy-mangle"])
        #expect(Self.chains(tables[1]) == ["prerouting filter prerouting -150", "output route output -150",
                                           "istio-divert", "istio-tproxy", "istio-inbound"])
        // Inbound moves to mangle: nat keeps no prerouting.
        #expect(tables[0].chain("prerouting") == nil)
        let mangle = Self.rules(tables, "istio-proxy-mangle")
        #expect(mangle.contains("istio-tproxy: meta l4proto tcp ip daddr != 127.0.0.1 tproxy ip to :15006 meta mark set 0x00000539 counter packets 0 bytes 0 accept"))
        #expect(mangle.contains("istio-inbound: tcp dport 15020 counter packets 0 bytes 0 return"))
        // The three RETURNs inserted on top, the tunnel port not among them (docs/capture-model.md §14).
        #expect(mangle.filter { $0.hasPrefix("istio-inbound:") }.prefix(3) == [
            "istio-inbound: meta l4proto tcp meta mark 0x00000539 counter packets 0 bytes 0 return",
            "istio-inbound: iifname \"lo\" meta l4proto tcp ip saddr 127.0.0.6 counter packets 0 bytes 0 return",
            "istio-inbound: iifname \"lo\" meta l4proto tcp meta mark != 0x0000053a counter packets 0 bytes 0 return",
        ][...])
        // With IPv6 the ::6 RETURN goes in at the same index as 127.0.0.6's, so it lands above it, and the
        // mark RETURN inserted next lands between them.
        let dual = Self.rules(try Self.tables("-m TPROXY -b '*' -d 15020 -i '*'", ipv6: true), "istio-proxy-mangle")
        #expect(dual.filter { $0.hasPrefix("istio-inbound:") }.prefix(4).map { $0.contains("::6") ? "::6" : $0.contains("127.0.0.6") ? "127.0.0.6" : "other" }
                == ["other", "::6", "other", "127.0.0.6"])
        #expect(NftSyntax.render(tables[1]).contains("\t\ttype route hook output priority mangle; policy accept;\n"))
    }

    @Test func dropInvalidAloneAddsMangleWithItsDropChain() throws {
        let tables = try Self.tables("--drop-invalid")
        #expect(tables.map(\.name) == ["istio-proxy-nat", "istio-proxy-mangle"])
        #expect(Self.chains(tables[1]) == ["prerouting filter prerouting -150", "istio-drop"])
        // TCP only, unlike the iptables rule (docs/capture-model.md §10).
        #expect(Self.rules(tables, "istio-proxy-mangle") == [
            "prerouting: meta l4proto tcp ct state invalid counter packets 0 bytes 0 jump istio-drop",
            "istio-drop: counter packets 0 bytes 0 drop",
        ])
    }

    @Test func dnsCaptureAddsTheRawTable() throws {
        let tables = try Self.tables("--redirect-dns", dns: ["10.96.0.10"])
        #expect(tables.map(\.name) == ["istio-proxy-nat", "istio-proxy-raw"])
        #expect(Self.chains(tables[1]) == ["prerouting filter prerouting -300", "output filter output -300",
                                           "istio-inbound", "istio-output-dns"])
        #expect(Self.chains(tables[0]).last == "istio-output-dns")
        let raw = Self.rules(tables, "istio-proxy-raw")
        #expect(raw.contains("istio-inbound: udp sport 53 ip saddr 10.96.0.10 counter packets 0 bytes 0 ct zone set 1"))
        #expect(raw.last == "istio-output-dns: udp dport 53 ip daddr 10.96.0.10 counter packets 0 bytes 0 ct zone set 2")

        // Capture-all: no server addresses.
        let all = Self.rules(try Self.tables("--redirect-dns --capture-all-dns"), "istio-proxy-raw")
        #expect(all.contains("istio-inbound: udp sport 53 counter packets 0 bytes 0 ct zone set 1"))
        #expect(!all.contains { $0.contains("addr") })

        // Neither servers nor capture-all: DNS capture is off altogether, as on 1.26+ iptables.
        let off = try Self.tables("--redirect-dns")
        #expect(off.map(\.name) == ["istio-proxy-nat"])
        #expect(off == (try Self.tables("")))
    }

    /// One inet table for both families: without IPv6 there is no `ip6` rule, yet the rules that name no address
    /// (owner RETURNs, `oifname lo` RETURNs, the catch-all jump) apply to IPv6 too (docs/capture-model.md §14).
    @Test func rulesWithoutAddressesCoverBothFamilies() throws {
        let v4 = try Self.tables("-b '*' -i '*'")
        let nat = Self.rules(v4, "istio-proxy-nat")
        #expect(!nat.contains { $0.contains("ip6 ") })
        #expect(nat.contains("istio-output: meta skuid 1337 counter packets 0 bytes 0 return"))
        #expect(nat.contains("istio-output: counter packets 0 bytes 0 jump istio-redirect"))
        let dual = Self.rules(try Self.tables("-b '*' -i '*'", ipv6: true), "istio-proxy-nat")
        #expect(dual.contains("istio-output: oifname \"lo\" ip6 saddr ::6 counter packets 0 bytes 0 return"))
        #expect(dual.contains("istio-output: ip6 daddr ::1 counter packets 0 bytes 0 return"))
        #expect(dual.count == nat.count + 4, "the ::6 and ::1 RETURNs and the UID's and GID's self-call rules")
    }

    /// istio/istio#58135: with TPROXY and no inbound ports, the RETURNs inserted at index 1 and 2 of an
    /// `istio-inbound` holding fewer rules made nft reject the transaction until 1.27.4 and 1.28.1.
    @Test(arguments: [(IstioVersion(1, 27, 3), false), (IstioVersion(1, 27, 4), true), (IstioVersion(1, 28, 0), false),
                      (IstioVersion(1, 28, 1), true), (IstioVersion(1, 29, 0), true)])
    func tproxyWithoutInboundPorts(_ version: IstioVersion, _ installs: Bool) throws {
        if installs {
            let mangle = Self.rules(try Self.tables("-m TPROXY -b ''", version: version), "istio-proxy-mangle")
            #expect(mangle.filter { $0.hasPrefix("istio-inbound:") }.count == 3)
        } else {
            #expect(throws: IstioCaptureError.self) { try Self.tables("-m TPROXY -b ''", version: version) }
            do {
                _ = try Self.tables("-m TPROXY -b ''", version: version)
            } catch let error as IstioCaptureError {
                #expect(error.description.contains("index 1 of istio-proxy-mangle istio-inbound, which holds 1"))
            }
        }
    }

    /// DNS servers of IPv6 only, on a pod istio-iptables found to be IPv4: the jumps to nat `istio-output-dns`
    /// and raw `istio-inbound` are written, their rules are not, so the chains are never created and nft
    /// rejects the transaction.
    @Test func jumpToAChainIstioLeavesOutIsRejected() throws {
        #expect(throws: IstioCaptureError.self) { try Self.tables("--redirect-dns", dns6: ["fd00::10"]) }
        #expect(try !Self.tables("--redirect-dns", dns6: ["fd00::10"], ipv6: true).isEmpty)
    }

    @Test func groupNamesResolveOrStayNames() throws {
        let env = ["ISTIO_OUTBOUND_OWNER_GROUPS": "java,202"]
        let unresolved = Self.rules(try Self.tables("", env: env), "istio-proxy-nat")
        #expect(unresolved.contains("istio-output: meta skgid != java meta skgid != 202 counter packets 0 bytes 0 return"))
        var c = try Self.config("", env: ["ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE": "java"])
        c.istioVersion = Self.master
        let resolved = Self.rules(try ExpectedNftables.tables(for: c, groupResolver: { $0 == "java" ? 2001 : nil }), "istio-proxy-nat")
        #expect(resolved.contains("istio-output: meta skgid 2001 counter packets 0 bytes 0 return"))
    }

    /// nft keeps an anonymous set sorted and without duplicates.
    @Test func selfCallPortSetAsNftKeepsIt() throws {
        let below = Self.rules(try Self.tables("--redirect-dns -e 22", dns: ["10.96.0.10"]), "istio-proxy-nat")
        #expect(below.contains { $0.contains("tcp dport != { 22, 53 } meta skuid 1337") })
        let same = Self.rules(try Self.tables("--redirect-dns -e 53", dns: ["10.96.0.10"]), "istio-proxy-nat")
        #expect(same.contains { $0.contains("tcp dport != { 53 } meta skuid 1337") })
    }
}
