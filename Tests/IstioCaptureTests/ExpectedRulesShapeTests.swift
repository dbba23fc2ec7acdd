import IstioCapture
import NetfilterModel
import Testing

/// Version shapes the corpus does not sample (1.18, 1.22) and behaviours docs/capture-model.md §9/§14 call out.
@Suite struct ExpectedRulesShapeTests {
    /// The `-A ...` lines of one table, as iptables-save prints them.
    static func lines(_ config: CaptureConfiguration, _ table: TableName, family: Family = .ipv4,
                      groups: @escaping ExpectedRules.GroupResolver = { _ in nil }) -> [String] {
        guard let t = ExpectedRules.tables(for: config, family: family, groupResolver: groups).first(where: { $0.name == table })
        else { return [] }
        return SaveSyntax.render(t).split(separator: "\n").filter { $0.hasPrefix("-A") }.map(String.init)
    }

    static func config(_ args: String, version: IstioVersion, dns: [String] = [],
                       env: [String: String] = [:]) throws -> CaptureConfiguration {
        var c = try IstioArguments.parse(args)
        try c.applyEnvironment(env)
        c.istioVersion = version
        c.dnsServersIPv4 = dns
        return c
    }

    @Test func selfCallRuleByVersion() throws {
        let dns = "-u 1337 --redirect-dns"
        let v114 = Self.lines(try Self.config(dns, version: IstioVersion(1, 14), dns: ["10.96.0.10"]), .nat)
        #expect(v114.contains("-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 53 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT"))
        #expect(v114.contains("-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT"))
        for minor in [18, 22, 26] {
            let l = Self.lines(try Self.config(dns, version: IstioVersion(1, minor), dns: ["10.96.0.10"]), .nat)
            #expect(l.contains("-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m multiport ! --dports 53,15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT"))
            #expect(l.contains("-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT"))
        }
    }

    @Test func loopbackCIDREnvironmentFrom122() throws {
        let env = ["ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR": "127.0.0.1/8"]
        let v118 = Self.lines(try Self.config("-i '*'", version: IstioVersion(1, 18, 7), env: env), .nat)
        let v122 = Self.lines(try Self.config("-i '*'", version: IstioVersion(1, 22, 8), env: env), .nat)
        #expect(v118.contains("-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN"))
        #expect(v122.contains("-A ISTIO_OUTPUT -d 127.0.0.0/8 -j RETURN"))
        #expect(!v122.contains { $0.contains("127.0.0.1/32") })
    }

    @Test func dnsAnswerZoneMatchesSourceFrom122() throws {
        let v118 = Self.lines(try Self.config("--redirect-dns", version: IstioVersion(1, 18), dns: ["10.96.0.10"]), .raw)
        let v122 = Self.lines(try Self.config("--redirect-dns", version: IstioVersion(1, 22), dns: ["10.96.0.10"]), .raw)
        #expect(v118.contains("-A PREROUTING -d 10.96.0.10/32 -p udp -m udp --sport 53 -j CT --zone 1"))
        #expect(v122.contains("-A PREROUTING -s 10.96.0.10/32 -p udp -m udp --sport 53 -j CT --zone 1"))
        // 1.26 moves the zones into ISTIO_OUTPUT_DNS / ISTIO_INBOUND.
        let v126 = Self.lines(try Self.config("--redirect-dns", version: IstioVersion(1, 26), dns: ["10.96.0.10"]), .raw)
        #expect(v126.contains("-A PREROUTING -j ISTIO_INBOUND"))
        #expect(v126.contains("-A ISTIO_INBOUND -s 10.96.0.10/32 -p udp -m udp --sport 53 -j CT --zone 1"))
    }

    @Test func outputHookAndUDPHandling() throws {
        let args = "-i '*' -o 8080 --redirect-dns"
        let v122 = Self.lines(try Self.config(args, version: IstioVersion(1, 22), dns: ["10.96.0.10"]), .nat)
        #expect(v122.contains("-A OUTPUT -p tcp -j ISTIO_OUTPUT"))
        #expect(v122.contains("-A OUTPUT -d 10.96.0.10/32 -p udp -m udp --dport 53 -j REDIRECT --to-ports 15053"))
        #expect(!v122.contains("-A ISTIO_OUTPUT -p udp -m udp --dport 8080 -j RETURN"))
        let v126 = Self.lines(try Self.config(args, version: IstioVersion(1, 26), dns: ["10.96.0.10"]), .nat)
        #expect(v126.contains("-A OUTPUT -j ISTIO_OUTPUT"))
        #expect(v126.contains("-A ISTIO_OUTPUT -p udp -m udp --dport 8080 -j RETURN"))
        #expect(v126.contains("-A ISTIO_OUTPUT_DNS -d 10.96.0.10/32 -p udp -m udp --dport 53 -j REDIRECT --to-ports 15053"))
    }

    @Test func redirectDNSWithoutServers() throws {
        // <= 1.22 still carves port 53 out; 1.26+ turns DNS capture off entirely.
        let v122 = try Self.config("--redirect-dns", version: IstioVersion(1, 22))
        #expect(Self.lines(v122, .nat).contains("-A ISTIO_OUTPUT -o lo -p tcp -m tcp ! --dport 53 -m owner ! --uid-owner 1337 -j RETURN"))
        #expect(!Self.lines(v122, .raw).isEmpty)
        let v126 = try Self.config("--redirect-dns", version: IstioVersion(1, 26))
        #expect(Self.lines(v126, .nat).contains("-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN"))
        #expect(!ExpectedRules.tables(for: v126).contains { $0.name == .raw })
    }

    @Test func dropInvalidShape() throws {
        let v122 = try Self.config("--drop-invalid", version: IstioVersion(1, 22))
        #expect(Self.lines(v122, .mangle) == ["-A PREROUTING -m conntrack --ctstate INVALID -j DROP"])
        let v126 = try Self.config("--drop-invalid", version: IstioVersion(1, 26))
        #expect(Self.lines(v126, .mangle) == ["-A PREROUTING -m conntrack --ctstate INVALID -j ISTIO_DROP", "-A ISTIO_DROP -j DROP"])
    }

    @Test func unresolvedGroupKeepsItsName() throws {
        let c = try Self.config("", version: .latest, env: ["ISTIO_OUTBOUND_OWNER_GROUPS": "java,no-such-group,202"])
        let l = Self.lines(c, .nat, groups: { $0 == "java" ? 2001 : nil })
        #expect(l.contains("-A ISTIO_OUTPUT -m owner ! --gid-owner 2001 -m owner ! --gid-owner no-such-group -m owner ! --gid-owner 202 -j RETURN"))
        // An empty include list (not "*") returns everything after the owner rules.
        let none = try Self.config("", version: .latest, env: ["ISTIO_OUTBOUND_OWNER_GROUPS": ""])
        #expect(Self.lines(none, .nat).contains("-A ISTIO_OUTPUT -j RETURN"))
    }

    @Test func outboundIncludeSelection() throws {
        let none = Self.lines(try Self.config("-i ''", version: .latest), .nat)
        #expect(!none.contains { $0.hasSuffix("-j ISTIO_REDIRECT") && $0.hasPrefix("-A ISTIO_OUTPUT") })
        let all = Self.lines(try Self.config("-i '*' -q 3306", version: .latest), .nat)
        #expect(all.suffix(3) == [
            "-A ISTIO_OUTPUT -p tcp -m tcp --dport 3306 -j ISTIO_REDIRECT",
            "-A ISTIO_OUTPUT -j ISTIO_REDIRECT",
            "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
        ])
    }

    @Test func familiesFollowIPv6Enablement() throws {
        var c = try Self.config("-i '*' -b '*'", version: .latest)
        #expect(ExpectedRules.tables(for: c).allSatisfy { $0.family == .ipv4 })
        #expect(ExpectedRules.tables(for: c, family: .ipv6).isEmpty)
        c.ipv6Enabled = true
        let v6 = Self.lines(c, .nat, family: .ipv6)
        #expect(v6.contains("-A ISTIO_OUTPUT -s ::6/128 -o lo -j RETURN"))
        #expect(v6.contains("-A ISTIO_OUTPUT -d ::1/128 -j RETURN"))
    }

    @Test func legacy110IPv6KubeVirtReturns() throws {
        var c = try Self.config("-i '*' -k eth1", version: IstioVersion(1, 10, 6))
        c.ipv6Enabled = true
        #expect(Self.lines(c, .nat).prefix(2) == ["-A PREROUTING -i eth1 -j ISTIO_REDIRECT", "-A PREROUTING -i eth1 -j RETURN"])
        #expect(Self.lines(c, .nat, family: .ipv6).prefix(2) == ["-A PREROUTING -i eth1 -j RETURN", "-A PREROUTING -i eth1 -j RETURN"])
    }

    @Test func tableShape() throws {
        let tables = ExpectedRules.tables(for: try Self.config("-m TPROXY -b '*' --redirect-dns --capture-all-dns", version: .latest))
        #expect(tables.map(\.name) == [.mangle, .nat, .raw])
        for t in tables {
            // Built-in chains first, in hook order, with policy ACCEPT; then user chains by name.
            let builtins = t.chains.prefix { $0.isBuiltin }
            #expect(builtins.map(\.name) == t.name.builtinChains)
            #expect(builtins.allSatisfy { $0.policy == .accept })
            let user = t.chains.dropFirst(builtins.count).map(\.name.rawValue)
            #expect(user == user.sorted() && user.allSatisfy { $0.hasPrefix("ISTIO_") })
        }
    }

    @Test func describeSummarises() throws {
        var c = CaptureConfiguration.injectorDefault
        c.redirectDNS = true
        c.dnsServersIPv4 = ["10.96.0.10"]
        c.proxyRunAsUser = 0
        c.proxyRunAsGroup = 1337
        let text = ExpectedRules.describe(c).joined(separator: "\n")
        #expect(text.contains("all ports except 15090,15021,15020"))
        #expect(text.contains("all destinations -> 15001"))
        #expect(text.contains("runs as 0:1337"))
        #expect(text.contains("nameservers 10.96.0.10"))
    }
}
