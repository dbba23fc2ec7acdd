import NetfilterModel
import Testing

/// Which `ip rule`s before a fwmark rule take its marked packets, the kernel's way: by priority, selectors (`not`
/// inverting them), and only where the table has a route `suppress_prefixlength` keeps. The kernel's own answers
/// for the same rules are compared in AmbientLiveTests.
@Suite("Policy routing: rules before a fwmark rule")
struct PolicyRoutingTests {
    static let ztunnel = PolicyRouting.RoutingRule(family: .ipv4, priority: 32764, fwmark: 0x111, fwmask: 0xfff, table: "100")
    static let routes: [PolicyRouting.Route] = [
        .init(family: .ipv4, type: "local", destination: "default", device: "lo", table: "100"),
        .init(family: .ipv4, type: "unicast", destination: "default", device: "eth0", table: "main"),
        .init(family: .ipv4, type: "unicast", destination: "10.0.0.0/24", device: "eth0", table: "main"),
        .init(family: .ipv4, type: "throw", destination: "default", device: nil, table: "300"),
        .init(family: .ipv4, type: "unicast", destination: "10.9.9.9", device: "eth1", table: "400"),
        .init(family: .ipv6, type: "unicast", destination: "default", device: "eth0", table: "600"),
    ]

    func reach(_ rule: PolicyRouting.RoutingRule, iif: String? = "lo") -> PolicyRouting.Reach {
        PolicyRouting(rules: [rule, Self.ztunnel], routes: Self.routes)
            .preemptions(of: Self.ztunnel, mark: 0x111, inputInterface: iif).first?.reach ?? .none
    }

    func rule(priority: UInt32 = 100, fwmark: UInt32? = nil, fwmask: UInt32? = nil, table: String = "main", inverted: Bool = false,
              source: String? = nil, iif: String? = nil, oif: String? = nil, suppress: Int? = nil, family: Family = .ipv4) -> PolicyRouting.RoutingRule {
        .init(family: family, priority: priority, fwmark: fwmark, fwmask: fwmask, table: table, inverted: inverted, source: source,
              inputInterface: iif, outputInterface: oif, suppressPrefixLength: suppress)
    }

    @Test func selectorsDecideHowMuchARuleTakes() {
        #expect(reach(rule()) == .all)
        #expect(reach(rule(suppress: 0)) == .all, "main's 10.0.0.0/24 survives suppress_prefixlength 0")
        #expect(reach(rule(suppress: 24)) == .none, "every route of main has 24 bits or fewer")
        #expect(reach(rule(fwmark: 0x111, fwmask: 0xfff)) == .all)
        #expect(reach(rule(fwmark: 0x2, fwmask: 0x2)) == .none)
        #expect(reach(rule(fwmark: 0x111, fwmask: 0xfff, inverted: true)) == .none)
        #expect(reach(rule(fwmark: 0x222, fwmask: 0xfff, inverted: true)) == .all)
        #expect(reach(rule(source: "10.0.0.1")) == .some)
        #expect(reach(rule(inverted: true, source: "10.0.0.1")) == .some)
        #expect(reach(rule(iif: "lo")) == .all)
        #expect(reach(rule(iif: "eth0")) == .none)
        #expect(reach(rule(iif: "eth+"), iif: "eth0") == .all)
        #expect(reach(rule(iif: "eth0"), iif: nil) == .some)
        #expect(reach(rule(oif: "eth0")) == .none, "an oif rule reaches only sockets bound to the device")
    }

    @Test func onlyRulesBeforeItWithARouteTakeOver() {
        #expect(reach(rule(priority: 32765)) == .none, "after the fwmark rule")
        #expect(reach(rule(priority: 0, table: "local")) == .none, "local routes only the namespace's own addresses")
        #expect(reach(rule(table: "300")) == .none, "a throw route goes on to the next rule")
        #expect(reach(rule(table: "500")) == .none, "an empty table: the lookup fails and the walk goes on")
        #expect(reach(rule(table: "100")) == .none, "the same table routes the same way")
        #expect(reach(rule(table: "600")) == .none, "another family's routes")
        #expect(reach(rule(family: .ipv6)) == .none, "another family's rule")
        let p = PolicyRouting(rules: [rule(table: "400"), Self.ztunnel], routes: Self.routes).preemptions(of: Self.ztunnel, mark: 0x111, inputInterface: "lo")
        #expect(p.map(\.routes) == [[Self.routes[4]]])
    }

    @Test func rulesAndRoutesReadAsIpPrintsThem() {
        #expect(rule(fwmark: 0x111, fwmask: 0xfff, table: "100", inverted: true, source: "10.0.0.0/8", iif: "lo", suppress: 0).text
                == "100: not from 10.0.0.0/8 fwmark 0x111/0xfff iif lo lookup 100 suppress_prefixlength 0")
        #expect(Self.ztunnel.text == "32764: from all fwmark 0x111/0xfff lookup 100")
        #expect(Self.routes.map(\.text) == ["local default dev lo", "default dev eth0", "10.0.0.0/24 dev eth0", "throw default",
                                            "10.9.9.9 dev eth1", "default dev eth0"])
        #expect(Self.routes.map(\.prefixLength) == [0, 0, 24, 0, 32, 0])
    }
}
