import CaptureVerifier
import IstioCapture
import NetfilterModel
import Testing

/// TPROXY depends on `ip rule fwmark <mark> lookup <table>` and a `local` default route via `lo` in that table;
/// a live read carries them in `Ruleset.policyRouting`.
@Suite("TPROXY policy routing")
struct PolicyRoutingTests {
    static let correct = PolicyRouting(
        rules: [.init(family: .ipv4, priority: 32765, fwmark: 0x539, table: "133")],
        routes: [.init(family: .ipv4, type: "local", destination: "default", device: "lo", table: "133")])

    func verify(routing: PolicyRouting?) throws -> VerificationReport {
        var rules = try ruleset(ipv4: ExampleRules.save(ExampleRules.tproxyPod))
        rules.policyRouting = routing
        return CaptureVerifier.verify(rules, configuration: ExampleRules.tproxyPod)
    }

    @Test("the rule and route for the TPROXY mark are proven when present")
    func complete() throws {
        let r = try verify(routing: Self.correct)
        let result = try #require(r.result("tproxy"))
        #expect(result.status == .passed)
        #expect(result.proven.contains { $0.contains("ip rule fwmark 0x539 lookup 133") })
        // Routing without `routeTablesRead` is an older bundle's: the rules before the mark's were not all recorded.
        #expect(!result.proven.contains { $0.contains("no rule before it") })
        #expect(result.notes.contains { $0.contains("whether a rule before the mark's takes the marked replies was not checked") })
        var read = Self.correct
        read.routeTablesRead = [.ipv4: ["133"]]
        let now = try #require(try verify(routing: read).result("tproxy"))
        #expect(now.proven.contains { $0.contains("and no rule before it takes the marked replies") })
        #expect(!now.notes.contains { $0.contains("was not checked") })
    }

    @Test("a missing ip rule or local route black-holes TPROXYed connections", arguments: [
        PolicyRouting(rules: [], routes: correct.routes),
        PolicyRouting(rules: correct.rules, routes: []),
        PolicyRouting(rules: [.init(family: .ipv4, fwmark: 0x540, table: "133")], routes: correct.routes),
        // `not fwmark 0x539`: every packet but the marked ones goes to table 133.
        PolicyRouting(rules: [.init(family: .ipv4, fwmark: 0x539, table: "133", inverted: true)], routes: correct.routes),
        PolicyRouting(rules: correct.rules, routes: [.init(family: .ipv4, type: "unicast", destination: "default", device: "eth0", table: "133")]),
    ])
    func incomplete(_ routing: PolicyRouting) throws {
        let r = try verify(routing: routing)
        let errors = r.errors
        #expect(Set(errors.map(\.kind)) == [.tproxy], "\(describe(errors))")
        let f = try #require(errors.first)
        // The witness is an inbound connection the TPROXY rule takes, marked for the missing route.
        #expect(f.witness?.packet.inInterface == "eth0")
        #expect(f.witness?.verdict == .tproxy(port: 15006, markValue: 0x539, markMask: 0xFFFF_FFFF))
        #expect(f.message.contains("black-holed"))
    }

    @Test("a rule before the TPROXY mark's that takes the marked replies is a finding, as in ambient")
    func preempted() throws {
        let early = PolicyRouting.RoutingRule(family: .ipv4, priority: 100, table: "main")
        let routing = PolicyRouting(rules: [early] + Self.correct.rules,
                                    routes: Self.correct.routes + [.init(family: .ipv4, type: "unicast", destination: "default", device: "eth0", table: "main")],
                                    routeTablesRead: [.ipv4: ["133", "main"]])
        let r = try verify(routing: routing)
        let result = try #require(r.result("tproxy"))
        #expect(result.status == .failed)
        #expect(r.errors.map(\.message) == ["The ip rule `100: from all lookup main` is consulted before "
            + "`32765: from all fwmark 0x539 lookup 133` (IPv4) and takes the replies marked 0x539 on TPROXYed connections: those to "
            + "destinations table main routes (`default dev eth0`) leave by that route instead of going back to the proxy."])
        #expect(!result.proven.contains { $0.contains("lookup 133") })
        // The same rule after the mark's takes nothing.
        let after = PolicyRouting(rules: Self.correct.rules + [PolicyRouting.RoutingRule(family: .ipv4, priority: 32800, table: "main")],
                                  routes: routing.routes, routeTablesRead: routing.routeTablesRead)
        #expect(try verify(routing: after).result("tproxy")?.status == .passed)
    }

    @Test("without a live read the routing is noted as not checked")
    func notRead() throws {
        let result = try #require(try verify(routing: nil).result("tproxy"))
        #expect(result.status == .passed)
        #expect(result.notes.contains { $0.contains("policy routing was not read") })
    }
}
