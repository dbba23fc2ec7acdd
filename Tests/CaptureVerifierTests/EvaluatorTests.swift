@testable import CaptureVerifier
import CorpusSupport
import NetfilterModel
import Testing

func chain(_ name: ChainName, policy: Policy? = nil, _ rules: [Rule] = []) -> Chain {
    Chain(name: name, policy: policy, rules: rules)
}

/// A TCP packet an application (UID 1000) sends out eth0.
func appPacket(_ family: Family = .ipv4, proto: UInt16 = 6, dport: UInt16 = 9080, mark: UInt32 = 0) -> Packet {
    Packet(family: family, protocolNumber: proto, source: Packet.podAddress(family), destination: IPAddress("10.0.0.2")!,
           destinationPort: dport, outInterface: "eth0", uid: 1000, gid: 1000, mark: mark)
}

@Suite("Symbolic and concrete evaluation")
struct EvaluatorTests {
    /// Evaluates everything a local socket can send through one table; returns the outcomes and a tracer.
    func evaluate(_ tables: [Table], _ pipeline: Pipeline = .single(.filter, .output)) -> (PacketSpace, [Outcome], ConcreteEvaluator) {
        let space = PacketSpace(family: .ipv4, tables: tables)
        let evaluator = SymbolicEvaluator(space: space, tables: tables)
        var local = space.universe
        local[.inInterface] = space.noInterface(.inInterface)
        local[.outInterface] = space.noInterface(.outInterface).complement
        local[.mark] = space.atoms(.mark, marks: { $0 == 0 })
        local[.connmark] = space.atoms(.connmark, marks: { $0 == 0 })
        local[.ctState] = space.atoms(states: [.new])
        return (space, evaluator.evaluate(PacketSet([local]), pipeline: pipeline), ConcreteEvaluator(family: .ipv4, tables: tables))
    }

    /// The outcome a concrete packet falls in, checked against its concrete trace.
    func outcome(of p: Packet, in outcomes: [Outcome], _ space: PacketSpace, _ tracer: ConcreteEvaluator,
                 pipeline: Pipeline = .single(.filter, .output), assumptions: [Assumption] = []) throws -> Outcome {
        let hits = outcomes.filter { space.contains($0.packets, p) && $0.assumptions == (assumptions.isEmpty ? $0.assumptions : assumptions) }
        let o = try #require(hits.count == 1 ? hits.first : nil, "\(p) falls in \(hits.count) outcomes")
        let t = tracer.trace(p, pipeline: pipeline, assumptions: o.assumptions)
        #expect(t.path == o.path)
        #expect(t.verdict == o.verdict)
        #expect(t.ctZone == o.ctZone)
        return o
    }

    @Test("jumps, RETURN and built-in policies")
    func jumpsAndReturn() throws {
        let filter = Table(family: .ipv4, name: .filter, chains: [
            chain(.output, policy: .drop, [Rule(target: .jump("A")), Rule(protocol: ProtocolMatch(17), target: .accept)]),
            chain("A", [Rule(protocol: ProtocolMatch(6), target: .return), Rule(protocol: ProtocolMatch(17), target: .continue),
                        Rule(protocol: ProtocolMatch(1), target: .reject(RejectTarget(with: "icmp-port-unreachable")))]),
        ])
        let (space, outcomes, tracer) = evaluate([filter])
        let tcp = try outcome(of: appPacket(), in: outcomes, space, tracer)
        #expect(tcp.verdict == .policy(.drop))
        #expect(tcp.path.map(\.description) == ["filter OUTPUT", "filter OUTPUT#1 -j A", "filter A#1 RETURN", "filter OUTPUT policy DROP"])
        let udp = try outcome(of: appPacket(proto: 17), in: outcomes, space, tracer)
        #expect(udp.verdict == .accept)
        #expect(udp.path.map(\.description) == ["filter OUTPUT", "filter OUTPUT#1 -j A", "filter A (end of chain)", "filter OUTPUT#2 ACCEPT"])
        let icmp = try outcome(of: appPacket(proto: 1), in: outcomes, space, tracer)
        #expect(icmp.verdict == .reject)
        // Every packet ends in exactly one outcome.
        #expect(outcomes.allSatisfy { !$0.dependsOnUnknownMatch })
    }

    @Test("a goto returns to the caller's caller")
    func gotoSemantics() throws {
        let filter = Table(family: .ipv4, name: .filter, chains: [
            chain(.output, policy: .accept, [Rule(target: .jump("A")), Rule(target: .drop)]),
            chain("A", [Rule(protocol: ProtocolMatch(6), target: .goto("B")), Rule(target: .accept)]),
            chain("B", [Rule(protocol: ProtocolMatch(6), matches: [.tcp(TCPMatch(destinationPort: PortMatch(22)))], target: .return)]),
        ])
        let (space, outcomes, tracer) = evaluate([filter])
        // B falls off (or RETURNs): back to OUTPUT after the jump to A, not to A.
        let web = try outcome(of: appPacket(), in: outcomes, space, tracer)
        #expect(web.verdict == .drop)
        #expect(web.path.map(\.description) == ["filter OUTPUT", "filter OUTPUT#1 -j A", "filter A#1 -g B", "filter B (end of chain)", "filter OUTPUT#2 DROP"])
        let ssh = try outcome(of: appPacket(dport: 22), in: outcomes, space, tracer)
        #expect(ssh.verdict == .drop)
        #expect(ssh.path.map(\.description).contains("filter B#1 RETURN"))
        let udp = try outcome(of: appPacket(proto: 17), in: outcomes, space, tracer)
        #expect(udp.verdict == .accept)
    }

    @Test("a goto from a built-in chain ends at its policy")
    func gotoFromHook() throws {
        let filter = Table(family: .ipv4, name: .filter, chains: [
            chain(.output, policy: .drop, [Rule(target: .goto("A")), Rule(target: .accept)]),
            chain("A", [Rule(protocol: ProtocolMatch(6), target: .return)]),
        ])
        let (space, outcomes, tracer) = evaluate([filter])
        #expect(try outcome(of: appPacket(), in: outcomes, space, tracer).verdict == .policy(.drop))
        #expect(try outcome(of: appPacket(proto: 17), in: outcomes, space, tracer).verdict == .policy(.drop))
    }

    @Test("MARK then a mark match: the match sees the new mark, the witness keeps the input mark")
    func markThenMatch() throws {
        let mangle = Table(family: .ipv4, name: .mangle, chains: [
            chain(.output, policy: .accept, [
                Rule(protocol: ProtocolMatch(6), target: .mark(MarkTarget(value: 0x53A))),
                Rule(matches: [.mark(MarkMatch(value: 0x53A))], target: .drop),
                Rule(matches: [.mark(MarkMatch(value: 0))], target: .accept),
            ]),
        ])
        let (space, outcomes, tracer) = evaluate([mangle], .single(.mangle, .output))
        let tcp = try outcome(of: appPacket(), in: outcomes, space, tracer, pipeline: .single(.mangle, .output))
        #expect(tcp.verdict == .drop)
        let box = try #require(tcp.packets.boxes.first)
        #expect(box[.mark].atoms.compactMap { space.value(.mark, $0) } == [0x53A])
        #expect(space.representative(of: box).mark == 0)
        #expect(space.representative(of: box, input: false).mark == 0x53A)
        let udp = try outcome(of: appPacket(proto: 17), in: outcomes, space, tracer, pipeline: .single(.mangle, .output))
        #expect(udp.verdict == .accept)
    }

    @Test("CONNMARK save and restore move the mark between packet and connection")
    func connmark() throws {
        let mangle = Table(family: .ipv4, name: .mangle, chains: [
            chain(.output, policy: .accept, [
                Rule(protocol: ProtocolMatch(6), target: .mark(MarkTarget(value: 0x7))),
                Rule(target: .connmark(ConnmarkTarget(mode: .save(nfmask: 0xFFFF_FFFF, ctmask: 0xFFFF_FFFF)))),
                Rule(target: .mark(MarkTarget(value: 0))),
                Rule(target: .connmark(ConnmarkTarget(mode: .restore(nfmask: 0xFFFF_FFFF, ctmask: 0xFFFF_FFFF)))),
                Rule(matches: [.mark(MarkMatch(value: 0x7)), .connmark(MarkMatch(value: 0x7))], target: .drop),
            ]),
        ])
        let (space, outcomes, tracer) = evaluate([mangle], .single(.mangle, .output))
        #expect(try outcome(of: appPacket(), in: outcomes, space, tracer, pipeline: .single(.mangle, .output)).verdict == .drop)
        #expect(try outcome(of: appPacket(proto: 17), in: outcomes, space, tracer, pipeline: .single(.mangle, .output)).verdict == .policy(.accept))
        let t = tracer.trace(appPacket(), table: .mangle, hook: .output)
        #expect(t.final.mark == 0x7 && t.final.connmark == 0x7)
    }

    @Test("the first CT rule that matches sets the zone; later ones do nothing")
    func firstCTWins() throws {
        let raw = Table(family: .ipv4, name: .raw, chains: [
            chain(.output, policy: .accept, [
                Rule(protocol: ProtocolMatch(17), target: .ct(CTTarget(zone: 1))),
                Rule(target: .ct(CTTarget(zone: 2))),
            ]),
        ])
        let (space, outcomes, tracer) = evaluate([raw], .single(.raw, .output))
        #expect(try outcome(of: appPacket(proto: 17), in: outcomes, space, tracer, pipeline: .single(.raw, .output)).ctZone == 1)
        #expect(try outcome(of: appPacket(), in: outcomes, space, tracer, pipeline: .single(.raw, .output)).ctZone == 2)
    }

    @Test("an unknown match is followed both ways and recorded")
    func unknownMatch() throws {
        let filter = Table(family: .ipv4, name: .filter, chains: [
            chain(.output, policy: .accept, [
                Rule(protocol: ProtocolMatch(6), matches: [.set(SetMatch(name: "blocked", directions: [.destination]))], target: .drop),
            ]),
        ])
        let (space, outcomes, tracer) = evaluate([filter])
        let tcp = outcomes.filter { space.contains($0.packets, appPacket()) }
        #expect(Set(tcp.map(\.verdict)) == [.drop, .policy(.accept)])
        #expect(tcp.allSatisfy { $0.dependsOnUnknownMatch && $0.assumptions.first?.what == ["set"] })
        for o in tcp {
            let t = tracer.trace(appPacket(), pipeline: .single(.filter, .output), assumptions: o.assumptions)
            #expect(t.verdict == o.verdict)
            #expect(t.path == o.path)
        }
        // UDP never meets the unknown match: one outcome, no assumption.
        let udp = outcomes.filter { space.contains($0.packets, appPacket(proto: 17)) }
        #expect(udp.count == 1 && !udp[0].dependsOnUnknownMatch)
    }

    @Test("an unknown target may or may not end the walk")
    func unknownTarget() {
        let filter = Table(family: .ipv4, name: .filter, chains: [
            chain(.output, policy: .drop, [Rule(target: .unrecognized(UnrecognizedExtension(name: "SECMARK")))]),
        ])
        let (_, outcomes, _) = evaluate([filter])
        #expect(Set(outcomes.map(\.verdict)) == [.unrecognized("SECMARK"), .policy(.drop)])
    }

    @Test("a jump to a missing chain does nothing; a jump cycle stops as a loop")
    func danglingAndCycles() {
        let filter = Table(family: .ipv4, name: .filter, chains: [
            chain(.output, policy: .accept, [Rule(target: .jump("GONE")), Rule(protocol: ProtocolMatch(6), target: .jump("A"))]),
            chain("A", [Rule(target: .jump("B"))]),
            chain("B", [Rule(target: .jump("A"))]),
        ])
        let (_, outcomes, tracer) = evaluate([filter])
        #expect(Set(outcomes.map(\.verdict)) == [.loop, .policy(.accept)])
        let t = tracer.trace(appPacket(), table: .filter, hook: .output)
        #expect(t.verdict == .loop)
        #expect(t.path.contains { if case .danglingJump("GONE") = $0.action { true } else { false } })
    }

    @Test("nat sees only new connections, and nothing after CT --notrack")
    func natAndConntrack() throws {
        let nat = Table(family: .ipv4, name: .nat, chains: [
            chain(.output, policy: .accept, [Rule(protocol: ProtocolMatch(6), target: .redirect(PortRewriteTarget(ports: 15001...15001)))]),
        ])
        let raw = Table(family: .ipv4, name: .raw, chains: [
            chain(.output, policy: .accept, [Rule(protocol: ProtocolMatch(6), matches: [.tcp(TCPMatch(destinationPort: PortMatch(9999)))],
                                                  target: .ct(CTTarget(notrack: true)))]),
        ])
        let tracer = ConcreteEvaluator(family: .ipv4, tables: [nat, raw])
        #expect(tracer.trace(appPacket(), pipeline: .localOutput).verdict == .redirect(ports: 15001...15001))
        var established = appPacket()
        established.state = .established
        #expect(tracer.trace(established, pipeline: .localOutput).verdict == .policy(.accept))
        #expect(tracer.trace(appPacket(dport: 9999), pipeline: .localOutput).verdict == .untracked)
        let space = PacketSpace(family: .ipv4, tables: [nat, raw])
        let symbolic = SymbolicEvaluator(space: space, tables: [nat, raw])
        for p in [appPacket(), established, appPacket(dport: 9999)] {
            let o = symbolic.evaluate(PacketSet([try #require(space.box(for: p))]), pipeline: .localOutput)
            #expect(o.count == 1)
            #expect(o.first?.verdict == tracer.trace(p, pipeline: .localOutput).verdict)
            #expect(o.first?.path == tracer.trace(p, pipeline: .localOutput).path)
        }
    }

    /// On real Istio tables, every sampled packet's concrete trace is the symbolic outcome of its class.
    @Test("concrete traces agree with the symbolic outcomes on the corpus",
          arguments: ["master/cni-sidecar-iptables/basic", "master/cni-sidecar-iptables/DNS", "master/sidecar-iptables/tproxy",
                      "1.14.6/sidecar-iptables/dns-uid-gid", "master/sidecar-iptables/ipv6-uid-gid"])
    func agreementOnCorpus(_ id: String) throws {
        let c = try #require(Corpus.named(id))
        let rules = try c.ruleset()
        for family in Set(rules.tables.map(\.family)) {
            let space = PacketSpace(family: family, tables: rules.tables)
            let symbolic = SymbolicEvaluator(space: space, tables: rules.tables)
            let tracer = ConcreteEvaluator(family: family, tables: rules.tables)
            var rng = SplitMix(state: 7)
            for pipeline in [Pipeline.localOutput, .inbound, .localOutputThenLoopback] {
                for _ in 0..<150 {
                    let p = samplePacket(space, &rng)
                    let box = try #require(space.box(for: p))
                    let outcomes = symbolic.evaluate(PacketSet([box]), pipeline: pipeline)
                    #expect(outcomes.count == 1, "\(p) through \(pipeline)")
                    let t = tracer.trace(p, pipeline: pipeline)
                    #expect(outcomes.first?.path == t.path, "\(p) through \(pipeline)")
                    #expect(outcomes.first?.verdict == t.verdict)
                    #expect(outcomes.first?.ctZone == t.ctZone)
                    let final = outcomes.first.flatMap { $0.packets.boxes.first }.map { space.representative(of: $0, input: false) }
                    #expect(final?.mark == t.final.mark && final?.connmark == t.final.connmark, "\(p) through \(pipeline)")
                }
            }
        }
    }
}
