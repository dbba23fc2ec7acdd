@testable import CaptureVerifier
import NetfilterModel
import Testing

/// The rule index of long chains (`ChainIndex`) must give exactly the outcomes of the rule-by-rule walk.
@Suite("Indexed chains")
struct ChainIndexTests {
    /// A nat table whose chain BIG (jumped from OUTPUT and PREROUTING) holds `count` random rules, most of them
    /// singling out destinations (the index's key), with wildcards, jumps, gotos, RETURNs, MARKs, unknown matches
    /// and overlapping CIDRs in between.
    func randomTable(seed: UInt64, count: Int) -> String {
        var rng = SplitMix(state: seed)
        func pick<T>(_ xs: [T]) -> T { xs[Int.random(in: 0..<xs.count, using: &rng)] }
        func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }
        func address() -> String {
            chance(0.88) ? "10.96.\(Int.random(in: 0..<4, using: &rng)).\(Int.random(in: 1..<40, using: &rng))/32"
                : pick(["10.96.1.0/24", "10.96.0.0/16", "10.0.0.0/8", "10.96.2.0/28"])
        }
        let subs = ["SUB0", "SUB1", "SUB2", "SUB3"]
        var lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]",
                     ":BIG - [0:0]"] + subs.map { ":\($0) - [0:0]" }
        lines += ["-A PREROUTING -j BIG", "-A OUTPUT -m owner --uid-owner 1337 -j RETURN", "-A OUTPUT -j BIG",
                  "-A OUTPUT -p tcp -j REDIRECT --to-ports 15001"]
        for _ in 0..<count {
            var r = "-A BIG"
            let wildcard = chance(0.04)
            if !wildcard { r += (chance(0.05) ? " !" : "") + " -d " + address() }
            if chance(0.2) { r += " -s " + pick(["10.244.0.0/16", "10.244.1.7/32", "127.0.0.6/32"]) }
            if chance(0.1) { r += " -o " + pick(["lo", "eth0", "veth+"]) }
            let proto = pick(["tcp", "udp", "tcp", ""])
            if !proto.isEmpty {
                r += " -p \(proto)"
                if chance(0.7) { r += " -m \(proto) --dport " + pick(["80", "53", "443", "8000:8100", "15001"]) }
            }
            if chance(0.08) { r += " -m owner --uid-owner " + pick(["1337", "1000", "0-999"]) }
            if chance(0.05) { r += " -m mark --mark 0x4000/0x4000" }
            if chance(0.06) { r += " -m statistic --mode random --probability 0.5000000000" }
            r += pick([" -j RETURN", " -j ACCEPT", " -j DNAT --to-destination 10.244.0.9", " -j MARK --or-mark 0x4000",
                       proto.isEmpty ? " -j RETURN" : " -j REDIRECT --to-ports 15006", " -j " + pick(subs), " -g " + pick(subs)])
            lines.append(r)
        }
        lines += ["-A SUB0 -p udp -j RETURN", "-A SUB0 -j DNAT --to-destination 10.244.0.1",
                  "-A SUB1 -m mark --mark 0x4000/0x4000 -j RETURN", "-A SUB1 -j MARK --or-mark 0x4000",
                  "-A SUB2 -d 10.96.1.0/24 -j ACCEPT",
                  "-A SUB3 -m statistic --mode random --probability 0.3300000000 -j RETURN", "-A SUB3 -p tcp -j REDIRECT --to-ports 15001",
                  "COMMIT"]
        return lines.joined(separator: "\n") + "\n"
    }

    @Test("an indexed chain gives the outcomes of the rule-by-rule walk (random rule lists, fixed seeds)",
          arguments: [1, 2, 3, 4, 5, 6] as [UInt64])
    func indexedEqualsUnindexed(_ seed: UInt64) throws {
        let tables = try tables(randomTable(seed: seed, count: 250 + Int(seed) * 30), .ipv4)
        let space = PacketSpace(family: .ipv4, tables: tables)
        let indexed = SymbolicEvaluator(space: space, tables: tables)
        let plain = SymbolicEvaluator(space: space, tables: tables, indexing: false)
        #expect(indexed.walker.index(.nat, "BIG") != nil, "BIG is long and selective: it must be indexed")
        #expect(plain.walker.index(.nat, "BIG") == nil)

        for (box, pipeline) in walkInputs(space) {
            expectSameOutcomes(indexed.evaluate(PacketSet([box]), pipeline: pipeline), plain.evaluate(PacketSet([box]), pipeline: pipeline),
                               "seed \(seed), \(pipeline)")
        }
    }

    @Test("sampled packets' concrete traces agree with the indexed outcomes")
    func concreteAgreement() throws {
        let tables = try tables(randomTable(seed: 11, count: 300), .ipv4)
        let space = PacketSpace(family: .ipv4, tables: tables)
        let symbolic = SymbolicEvaluator(space: space, tables: tables)
        #expect(symbolic.walker.index(.nat, "BIG") != nil)
        let tracer = ConcreteEvaluator(family: .ipv4, tables: tables)
        var rng = SplitMix(state: 5)
        for pipeline in [Pipeline.localOutput, .inbound] {
            for _ in 0..<300 {
                let p = samplePacket(space, &rng)
                let box = try #require(space.box(for: p))
                for o in symbolic.evaluate(PacketSet([box]), pipeline: pipeline) {
                    let t = tracer.trace(p, pipeline: pipeline, assumptions: o.assumptions)
                    #expect(o.path == t.path, "\(p) through \(pipeline)")
                    #expect(o.verdict == t.verdict, "\(p) through \(pipeline)")
                }
            }
        }
    }

    @Test("short or unselective chains are not indexed")
    func notIndexed() throws {
        var text = "*nat\n:OUTPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n-A OUTPUT -j A\n-A OUTPUT -j B\n"
        for i in 0..<20 { text += "-A A -d 10.0.0.\(i + 1)/32 -j RETURN\n" }
        for i in 0..<200 { text += "-A B -p tcp -m tcp --dport \(1000 + i) -j RETURN\n-A B -m owner --uid-owner \(i) -j ACCEPT\n" }
        text += "COMMIT\n"
        let tables = try tables(text, .ipv4)
        let evaluator = SymbolicEvaluator(space: PacketSpace(family: .ipv4, tables: tables), tables: tables)
        #expect(evaluator.walker.index(.nat, "A") == nil, "20 rules: walked rule by rule")
        #expect(evaluator.walker.index(.nat, "B") == nil, "half the rules are wildcards on either field")
    }
}
