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
        .init(family: .ipv4, type: "unreachable", destination: "default", device: nil, table: "201"),
        .init(family: .ipv4, type: "local", destination: "default", device: "lo", table: "202"),
    ]
    static let read: [Family: [String]] = [.ipv4: ["100", "main", "201", "202", "300", "400", "500", "600"], .ipv6: ["600"]]

    func reach(_ rule: PolicyRouting.RoutingRule, iif: String? = "lo") -> PolicyRouting.Reach {
        PolicyRouting(rules: [rule, Self.ztunnel], routes: Self.routes, routeTablesRead: Self.read)
            .preemptions(of: Self.ztunnel, mark: 0x111, inputInterface: iif).first?.reach ?? .none
    }

    func rule(priority: UInt32 = 100, fwmark: UInt32? = nil, fwmask: UInt32? = nil, table: String = "main", inverted: Bool = false,
              source: String? = nil, iif: String? = nil, oif: String? = nil, suppress: Int? = nil, family: Family = .ipv4) -> PolicyRouting.RoutingRule {
        .init(family: family, priority: priority, fwmark: fwmark, fwmask: fwmask, table: table, inverted: inverted, source: source,
              inputInterface: iif, outputInterface: oif, suppressPrefixLength: suppress)
    }

    @Test func selectorsDecideHowMuchARuleTakes() {
        #expect(reach(rule()) == .all)
        #expect(reach(rule(suppress: 0)) == .some, "main's 10.0.0.0/24 survives suppress_prefixlength 0: the replies to that prefix")
        #expect(reach(rule(suppress: 24)) == .none, "every route of main has 24 bits or fewer")
        #expect(reach(rule(fwmark: 0x111, fwmask: 0xfff)) == .all)
        #expect(reach(rule(fwmark: 0x2, fwmask: 0x2)) == .none)
        #expect(reach(rule(fwmark: 0x111, fwmask: 0xfff, inverted: true)) == .none)
        #expect(reach(rule(fwmark: 0x222, fwmask: 0xfff, inverted: true)) == .all)
        #expect(reach(rule(source: "10.0.0.1")) == .some)
        #expect(reach(rule(inverted: true, source: "10.0.0.1")) == .some)
        #expect(reach(rule(iif: "lo")) == .all)
        #expect(reach(rule(iif: "eth0")) == .none)
        #expect(reach(rule(iif: "eth+"), iif: "eth0") == .none, "ip rule names an interface exactly; + is iptables' syntax")
        #expect(reach(rule(iif: "eth0"), iif: nil) == .some)
        #expect(reach(rule(oif: "eth0")) == .none, "an oif rule reaches only sockets bound to the device")
        #expect(reach(rule(oif: "eth0").with(action: nil, gotoTarget: nil, ipProtocol: nil, otherSelectors: nil).inverting) == .all)
        // A reply rerouted after mangle OUTPUT carries its protocol only when some rule needs it: ipproto may go either way.
        #expect(reach(rule().with(action: nil, gotoTarget: nil, ipProtocol: 17, otherSelectors: nil)) == .some)
        #expect(reach(rule().with(action: nil, gotoTarget: nil, ipProtocol: 6, otherSelectors: nil)) == .some)
        #expect(reach(rule().with(action: nil, gotoTarget: nil, ipProtocol: 17, otherSelectors: nil).inverting) == .some)
        #expect(reach(rule().with(action: nil, gotoTarget: nil, ipProtocol: nil, otherSelectors: ["l3mdev"])) == .none, "outside a VRF")
        #expect(reach(rule().with(action: nil, gotoTarget: nil, ipProtocol: nil, otherSelectors: ["l3mdev"]).inverting) == .all)
        #expect(reach(rule().with(action: nil, gotoTarget: nil, ipProtocol: nil, otherSelectors: ["tos 0x10"])) == .some,
                "a selector iptaudit does not evaluate may take some")
    }

    @Test func actionsAndErrorRoutes() {
        let main = rule(priority: 32766)
        func effect(_ r: PolicyRouting.RoutingRule) -> PolicyRouting.Preemption.Effect? {
            PolicyRouting(rules: [r, Self.ztunnel, main], routes: Self.routes, routeTablesRead: Self.read)
                .preemptions(of: Self.ztunnel, mark: 0x111, inputInterface: "lo").first?.effect
        }
        let bare = rule(table: "")
        #expect(effect(bare.with(action: .goto, gotoTarget: 32766, ipProtocol: nil, otherSelectors: nil)) == .skips(to: 32766))
        #expect(effect(bare.with(action: .goto, gotoTarget: 32000, ipProtocol: nil, otherSelectors: nil)) == nil, "lands before ztunnel's rule")
        #expect(effect(bare.with(action: .goto, gotoTarget: 40000, ipProtocol: nil, otherSelectors: nil)) == nil, "no rule of that priority: it goes on")
        // A goto every reply takes skips the rules before the priority it lands on.
        let over = PolicyRouting(rules: [bare.with(action: .goto, gotoTarget: 30000, ipProtocol: nil, otherSelectors: nil), rule(priority: 200),
                                         rule(priority: 30000, table: "").with(action: .nop, gotoTarget: nil, ipProtocol: nil, otherSelectors: nil),
                                         rule(priority: 30001, table: "400"), Self.ztunnel],
                                 routes: Self.routes, routeTablesRead: Self.read).preemptions(of: Self.ztunnel, mark: 0x111, inputInterface: "lo")
        #expect(over.map(\.rule.priority) == [30001], "the lookup at 200 is jumped over; the one after the landing is consulted")
        #expect(over.first?.reach == .some, "table 400 routes one host only")
        #expect(effect(bare.with(action: .nop, gotoTarget: nil, ipProtocol: nil, otherSelectors: nil)) == nil)
        #expect(effect(bare.with(action: .unreachable, gotoTarget: nil, ipProtocol: nil, otherSelectors: nil)) == .dropped(by: nil))
        #expect(effect(rule(table: "201", suppress: 0)) == .dropped(by: Self.routes[6]),
                "suppress_prefixlength applies to routes found, not to an error route")
        #expect(effect(rule(table: "202")) == nil, "a local route delivers in the pod")
        #expect(effect(rule(table: "500")) == nil, "an empty table that was read")
        #expect(PolicyRouting(rules: [rule(table: "500"), Self.ztunnel], routes: Self.routes)
                    .preemptions(of: Self.ztunnel, mark: 0x111, inputInterface: "lo").first?.effect == .routesNotRead,
                "a bundle that did not record which tables it read")
        // Dump order decides, not the priority alone: a rule of ztunnel's priority listed first is consulted first.
        let same = rule(priority: 32764, suppress: 0)
        #expect(PolicyRouting(rules: [same, Self.ztunnel], routes: Self.routes, routeTablesRead: Self.read)
                    .preemptions(of: Self.ztunnel, mark: 0x111, inputInterface: "lo").count == 1)
        #expect(PolicyRouting(rules: [Self.ztunnel, same], routes: Self.routes, routeTablesRead: Self.read)
                    .preemptions(of: Self.ztunnel, mark: 0x111, inputInterface: "lo").isEmpty)
    }

    @Test func onlyRulesBeforeItWithARouteTakeOver() {
        #expect(PolicyRouting(rules: [Self.ztunnel, rule(priority: 32765)], routes: Self.routes, routeTablesRead: Self.read)
                    .preemptions(of: Self.ztunnel, mark: 0x111, inputInterface: "lo").isEmpty, "after the fwmark rule")
        #expect(reach(rule(priority: 0, table: "local")) == .none, "local routes only the namespace's own addresses")
        #expect(reach(rule(table: "300")) == .none, "a throw route goes on to the next rule")
        #expect(reach(rule(table: "500")) == .none, "an empty table: the lookup fails and the walk goes on")
        #expect(reach(rule(table: "100")) == .none, "the same table routes the same way")
        #expect(reach(rule(table: "600")) == .none, "another family's routes")
        #expect(reach(rule(family: .ipv6)) == .none, "another family's rule")
        let p = PolicyRouting(rules: [rule(table: "400"), Self.ztunnel], routes: Self.routes, routeTablesRead: Self.read)
            .preemptions(of: Self.ztunnel, mark: 0x111, inputInterface: "lo")
        #expect(p.map(\.effect) == [.routes([Self.routes[4]])])
    }

    @Test func rulesAndRoutesReadAsIpPrintsThem() {
        #expect(rule(fwmark: 0x111, fwmask: 0xfff, table: "100", inverted: true, source: "10.0.0.0/8", iif: "lo", suppress: 0).text
                == "100: not from 10.0.0.0/8 fwmark 0x111/0xfff iif lo lookup 100 suppress_prefixlength 0")
        #expect(Self.ztunnel.text == "32764: from all fwmark 0x111/0xfff lookup 100")
        #expect(rule(table: "").with(action: .goto, gotoTarget: 32766, ipProtocol: 17, otherSelectors: ["tos 0x10", "suppress_ifgroup 3"]).text
                == "100: from all ipproto udp tos 0x10 goto 32766 suppress_ifgroup 3")
        #expect(rule(table: "").with(action: .blackhole, gotoTarget: nil, ipProtocol: nil, otherSelectors: nil).text == "100: from all blackhole")
        #expect(Self.routes.map(\.text) == ["local default dev lo", "default dev eth0", "10.0.0.0/24 dev eth0", "throw default",
                                            "10.9.9.9 dev eth1", "default dev eth0", "unreachable default", "local default dev lo"])
        #expect(Self.routes.map(\.prefixLength) == [0, 0, 24, 0, 32, 0, 0, 0])
    }

    @Test("the mark's ip rule: one that tests only bits the marking sets, with the mark's value under its mask")
    func markRuleMasks() {
        func found(_ fwmark: UInt32, _ fwmask: UInt32?, mark: UInt32 = 0x111, mask: UInt32 = 0xfff, priority: UInt32 = 100,
                   action: PolicyRouting.RoutingRule.Action? = nil) -> Bool {
            let r = rule(priority: priority, fwmark: fwmark, fwmask: fwmask, table: "100").with(action: action, gotoTarget: nil, ipProtocol: nil, otherSelectors: nil)
            return PolicyRouting(rules: [r]).markRule(family: .ipv4, mark: mark, mask: mask, table: "100") != nil
        }
        // Ambient's replies carry 0x111 under 0xfff, the other bits as they were.
        #expect(found(0x111, 0xfff))
        #expect(found(0x1, 0x1), "tests one bit the marking sets: every reply matches")
        #expect(found(0x111, 0x111))
        #expect(!found(0x111, nil), "tests all 32 bits: a reply whose upper bits are set does not match")
        #expect(!found(0x111, 0xffff))
        #expect(!found(0x011, 0xfff), "another value under the same mask")
        // TPROXY sets the whole mark.
        #expect(found(0x539, nil, mark: 0x539, mask: 0xffff_ffff))
        #expect(found(0x539, 0x7ff, mark: 0x539, mask: 0xffff_ffff), "any mask: the mark is known whole")
        #expect(!found(0x539, 0xff, mark: 0x539, mask: 0xffff_ffff), "0x539 & 0xff is 0x39, not 0x539")
        // Not a lookup, or after main: it routes nothing the marks need.
        #expect(!found(0x111, 0xfff, action: .blackhole))
        #expect(!found(0x111, 0xfff, priority: 32767))
    }
}

extension PolicyRouting.RoutingRule {
    /// The rule with `not`.
    var inverting: Self {
        var r = self
        r.inverted = true
        return r
    }
}
