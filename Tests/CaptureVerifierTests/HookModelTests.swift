@testable import CaptureVerifier
import IstioCapture
import NetfilterModel
import Testing

/// The kernel's order at a hook: every base chain registered there, by priority, across tables; `accept` ends
/// only its own chain, `drop` ends everything, the first nat chain that binds the connection decides, and after
/// the loopback hop nat does not run again.
@Suite("One hook model across tables")
struct HookModelTests {
    static let redirect15001 = Rule(protocol: ProtocolMatch(6), target: .redirect(PortRewriteTarget(ports: 15001...15001)))

    /// iptables' nat OUTPUT redirecting application TCP to 15001 (the sidecar's capture, reduced to one rule).
    static let istio = Table(family: .ipv4, name: .nat, chains: [Chain(name: .output, policy: .accept, rules: [redirect15001])])

    /// A native nftables table with one base chain at `hook`/`priority` holding `rules`.
    static func foreign(_ type: HookRegistration.ChainType, priority: Int, hook: Hook = .output, _ rules: [Rule]) -> Table {
        Table(family: .ipv4, name: "inet other", chains: [
            Chain(name: "out", policy: .accept, rules: rules, registration: HookRegistration(hook: hook, priority: priority, type: type)),
        ])
    }

    static func verdict(_ tables: [Table], _ pipeline: Pipeline = .localOutput, packet: Packet = appPacket()) -> (Verdict, [TraceStep]) {
        let t = ConcreteEvaluator(family: .ipv4, tables: tables).trace(packet, pipeline: pipeline)
        // The symbolic walk agrees with the concrete one on this packet.
        let space = PacketSpace(family: .ipv4, tables: tables)
        if let box = space.box(for: packet) {
            let o = SymbolicEvaluator(space: space, tables: tables).evaluate(PacketSet([box]), pipeline: pipeline)
            #expect(o.map(\.verdict) == [t.verdict])
            #expect(o.map(\.path) == [t.path])
        }
        return (t.verdict, t.path)
    }

    @Test("base chains run in priority order across tables; iptables' fixed priorities place nat at -100")
    func order() {
        let resolved = ChainWalker(domain: ConcreteDomain(family: .ipv4, assumptions: [], records: false),
                                   tables: [Self.istio, Self.foreign(.filter, priority: -120, []), Self.foreign(.nat, priority: -100, [])])
            .resolve(.localOutputThenLoopback)
        #expect(resolved.description == "raw OUTPUT → mangle OUTPUT → inet other out → nat OUTPUT → lo → raw PREROUTING → mangle PREROUTING")
    }

    @Test("at equal priority input order decides between non-Istio tables; a nat chain after -100 is kept, a filter one is not")
    func ties() {
        let walker = { (tables: [Table]) in ChainWalker(domain: ConcreteDomain(family: .ipv4, assumptions: [], records: false), tables: tables) }
        #expect(walker([Self.istio, Self.foreign(.nat, priority: -100, [])]).resolve(.localOutput).description
                == "raw OUTPUT → mangle OUTPUT → nat OUTPUT → inet other out")
        #expect(walker([Self.istio, Self.foreign(.nat, priority: 50, [])]).resolve(.localOutput).description
                == "raw OUTPUT → mangle OUTPUT → nat OUTPUT → inet other out")
        #expect(walker([Self.istio, Self.foreign(.filter, priority: 0, [])]).resolve(.localOutput).description
                == "raw OUTPUT → mangle OUTPUT → nat OUTPUT")
    }

    @Test("accept ends only its own base chain: Istio's nat chain still redirects")
    func acceptEndsOnlyItsChain() {
        let (v, path) = Self.verdict([Self.istio, Self.foreign(.filter, priority: -150, [Rule(target: .accept)])])
        #expect(v == .redirect(ports: 15001...15001))
        #expect(path.contains { $0.table == "inet other" && $0.action == .verdict(.accept) })
    }

    @Test("drop ends everything: nat never runs")
    func dropEndsEverything() {
        let (v, path) = Self.verdict([Self.istio, Self.foreign(.filter, priority: -150, [Rule(target: .drop)])])
        #expect(v == .drop)
        #expect(!path.contains { $0.table == .nat })
    }

    @Test("the first nat chain that binds the connection decides; one that accepts lets the next decide")
    func firstBindingDecides() {
        let earlier = Rule(protocol: ProtocolMatch(6), target: .redirect(PortRewriteTarget(ports: 9999...9999)))
        #expect(Self.verdict([Self.istio, Self.foreign(.nat, priority: -150, [earlier])]).0 == .redirect(ports: 9999...9999))
        #expect(Self.verdict([Self.istio, Self.foreign(.nat, priority: -150, [Rule(target: .accept)])]).0 == .redirect(ports: 15001...15001))
        // Neither table is Istio's here: at equal priority the order given decides.
        #expect(Self.verdict([Self.istio, Self.foreign(.nat, priority: -100, [earlier])]).0 == .redirect(ports: 15001...15001))
    }

    @Test("nat chains see only a connection's first packet, and not again after the loopback hop")
    func natOnlyOnce() {
        var established = appPacket()
        established.state = .established
        let foreign = Self.foreign(.nat, priority: -150, [Rule(target: .drop)])
        #expect(Self.verdict([Self.istio, foreign], packet: established).0 == .policy(.accept))
        let inboundNat = Self.foreign(.nat, priority: -100, hook: .prerouting, [Rule(target: .drop)])
        var toSelf = appPacket()
        toSelf.outInterface = "lo"
        toSelf.uid = 1337
        let istioExempt = Table(family: .ipv4, name: .nat, chains: [Chain(name: .output, policy: .accept, rules: [])])
        let (v, path) = Self.verdict([istioExempt, inboundNat], .localOutputThenLoopback, packet: toSelf)
        #expect(v == .policy(.accept))
        #expect(path.contains { $0.action == .loopback })
        #expect(!path.contains { $0.table == "inet other" })
    }
}

extension HookModelTests {
    @Test("at equal priority another table's chain is taken to run before Istio's (the kernel runs the later registration first)")
    func istioLastAmongEquals() {
        let istioNat = Table(family: .ipv4, name: .nat, chains: [
            Chain(name: .output, policy: .accept, rules: [Rule(protocol: ProtocolMatch(6), target: .jump("ISTIO_OUTPUT"))]),
            Chain(name: "ISTIO_OUTPUT", rules: [Self.redirect15001]),
        ])
        let foreign = Self.foreign(.nat, priority: -100, [Rule(protocol: ProtocolMatch(6), target: .redirect(PortRewriteTarget(ports: 15006...15006)))])
        #expect(Self.verdict([istioNat, foreign]).0 == .redirect(ports: 15006...15006))
        var native = Self.foreign(.nat, priority: -100, [Self.redirect15001])
        native.name = "inet istio-proxy-nat"
        let legacy = Table(family: .ipv4, name: .nat, chains: [
            Chain(name: .output, policy: .accept, rules: [Rule(protocol: ProtocolMatch(6), target: .redirect(PortRewriteTarget(ports: 15006...15006)))]),
        ])
        #expect(Self.verdict([legacy, native]).0 == .redirect(ports: 15006...15006))
        #expect(Self.verdict([native, legacy]).0 == .redirect(ports: 15006...15006))
    }

    @Test("a trace says which order it assumed for base chains of equal priority, and only then")
    func traceSaysTheOrderItAssumed() {
        let istioNat = Table(family: .ipv4, name: .nat, chains: [Chain(name: .output, policy: .accept, rules: [Self.redirect15001])])
        let query = PacketQuery(direction: .outbound, family: .ipv4, protocolNumber: ProtocolMatch.tcp,
                                destination: IPAddress("10.0.0.2")!, destinationPort: 80)
        let tied = PacketTracer(family: .ipv4, tables: [istioNat, Self.foreign(.nat, priority: -100, [])]).trace(query)
        // Neither table holds Istio's chains: the order given decides, and the trace says it is an assumption.
        #expect(tied.assumedOrders == [AssumedOrder(hook: .output, priority: -100, order: ["nat OUTPUT", "inet other out"])])
        #expect(tied.assumedOrders.first?.description == "nat OUTPUT, inet other out are registered at the OUTPUT hook with the same priority "
                + "(-100): the kernel runs the one registered last first, which no read shows; this trace assumes the order nat OUTPUT → inet other out")
        // Another priority, or a tie with a table that is not loaded (iptables' raw), is no assumption.
        #expect(PacketTracer(family: .ipv4, tables: [istioNat, Self.foreign(.nat, priority: -150, [])]).trace(query).assumedOrders.isEmpty)
        #expect(PacketTracer(family: .ipv4, tables: [istioNat, Self.foreign(.filter, priority: -300, [])]).trace(query).assumedOrders.isEmpty)
        // A tie at a hook the packet never meets: out eth0, it does not come back through PREROUTING.
        let prerouting = Table(family: .ipv4, name: .nat, chains: [Chain(name: .output, policy: .accept, rules: [Self.redirect15001]),
                                                                    Chain(name: .prerouting, policy: .accept, rules: [])])
        var outEth0 = query
        outEth0.outInterface = "eth0"
        #expect(PacketTracer(family: .ipv4, tables: [prerouting, Self.foreign(.nat, priority: -100, hook: .prerouting, [])])
                    .trace(outEth0).assumedOrders.isEmpty)
    }
}

/// A configuration whose own native-nftables install fails (1.28.0, TPROXY, no inbound ports: nft rejects
/// istio-iptables' transaction) expects no rules; verify says why once instead of reporting every chain as drift.
@Suite struct NativeExpectationRefusedTests {
    @Test func refusalIsANoteNotDrift() throws {
        var release = CaptureConfiguration()
        release.istioVersion = IstioVersion(1, 28, 0)
        let config = try IstioArguments.parse("--native-nftables -m TPROXY -b ''", environment: [:], base: release)
        let table = Table(family: .ipv4, name: "inet istio-proxy-nat", chains: [
            Chain(name: "output", policy: .accept, rules: [Rule(target: .jump("istio-output"))],
                  registration: HookRegistration(hook: .output, priority: -100, type: .nat)),
            Chain(name: "istio-output", rules: []),
        ])
        let report = verify(Ruleset(tables: [table]), configuration: config)
        let hygiene = try #require(report.obligations.first { $0.id == "chain-hygiene" })
        #expect(hygiene.notes.contains { $0.contains("IPv4: no rules to compare with") && $0.contains("index 1 of istio-proxy-mangle istio-inbound") },
                "\(hygiene.notes)")
        #expect(!report.findings.contains { $0.kind == .ruleDrift }, "\(report.findings.map(\.message))")
    }
}

/// Chain hygiene shares the walk's call graph; a ruleset that repeats a table (no reader gives one now: save text
/// and bundles refuse it) must still not change which copy it reads: the first, as `FamilyContext.table(_:)` finds it.
@Suite struct RepeatedTableHygieneTests {
    @Test func chainHygieneReadsTheFirstCopyOfARepeatedTable() {
        let dangling = Table(family: .ipv4, name: .nat, chains: [
            Chain(name: .output, policy: .accept, rules: [Rule(target: .jump("A"))]),
            Chain(name: "A", rules: [Rule(target: .jump("GONE"))]),
        ])
        let clean = Table(family: .ipv4, name: .nat, chains: [Chain(name: .output, policy: .accept)])
        func danglingFound(_ tables: [Table]) -> Bool {
            verify(Ruleset(tables: tables), configuration: ExampleRules.pod).obligations
                .first { $0.id == "chain-hygiene" }?.findings
                .contains { $0.message.contains("nat A#1 jumps to a chain that does not exist") } ?? false
        }
        #expect(danglingFound([dangling]))
        #expect(danglingFound([dangling, clean]))
        #expect(!danglingFound([clean, dangling]))
    }
}
