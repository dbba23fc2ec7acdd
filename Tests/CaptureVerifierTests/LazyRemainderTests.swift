@testable import CaptureVerifier
import CorpusSupport
import NetfilterModel
import Testing

/// A remainder kept as "these boxes less these cubes" (`PacketSet.splitLazily`) must stand for exactly the packets
/// the eager split leaves, and a walk that keeps its remainders that way must give exactly the eager walk's outcomes.
@Suite("Remainders kept with holes")
struct LazyRemainderTests {
    /// A nat chain VARIED (jumped from OUTPUT and PREROUTING) of `count` rules that each test several fields, as
    /// `scripts/gen-varied-rules.py` writes them: addresses, CIDRs, ports, port ranges, interfaces, owners, marks and
    /// states, some inverted, ending in verdicts, RETURNs, MARKs and jumps into chains that return.
    func variedTable(seed: UInt64, count: Int) -> String {
        var rng = SplitMix(state: seed)
        func pick<T>(_ xs: [T]) -> T { xs[Int.random(in: 0..<xs.count, using: &rng)] }
        func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }
        func bang(_ p: Double) -> String { chance(p) ? " !" : "" }
        func address() -> String {
            pick(["10.96.\(Int.random(in: 0..<3, using: &rng)).\(Int.random(in: 1..<20, using: &rng))/32",
                  "10.96.\(Int.random(in: 0..<3, using: &rng)).0/24", "10.96.0.0/16", "172.16.0.0/12", "10.0.0.0/8"])
        }
        func port() -> Int { pick([53, 80, 443, 8080, 15001, 15006, Int.random(in: 1000..<1100, using: &rng)]) }
        var lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]",
                     ":VARIED - [0:0]", ":SUB0 - [0:0]", ":SUB1 - [0:0]",
                     "-A PREROUTING -j VARIED", "-A OUTPUT -j VARIED", "-A OUTPUT -m owner --uid-owner 1337 -j RETURN",
                     "-A OUTPUT -p tcp -j REDIRECT --to-ports 15001"]
        for _ in 0..<count {
            var r = "-A VARIED"
            if chance(0.4) { r += bang(0.1) + " -s " + address() }
            if chance(0.6) { r += bang(0.05) + " -d " + address() }
            if chance(0.12) { r += bang(0.2) + " -o " + pick(["eth0", "lo", "veth+"]) }
            if chance(0.1) { r += bang(0.2) + " -i " + pick(["eth0", "lo", "cali+"]) }
            let proto = pick(["tcp", "tcp", "udp", ""])
            if !proto.isEmpty {
                r += " -p \(proto)"
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: r += " -m \(proto)" + bang(0.1) + " --dport \(port())"
                case 1:
                    let low = port()
                    r += " -m \(proto) --dport \(low):\(low + 40)"
                case 2: r += " -m \(proto) --sport \(port())"
                default: r += " -m multiport --dports \(port()),\(port())"
                }
            }
            if chance(0.15) { r += " -m owner" + bang(0.2) + " --uid-owner " + pick(["0", "1000", "1337", "1000-1999"]) }
            if chance(0.08) { r += " -m mark" + bang(0.2) + " --mark " + pick(["0x1/0x1", "0x4000/0x4000"]) }
            if chance(0.08) { r += " -m conntrack --ctstate " + pick(["NEW", "ESTABLISHED,RELATED"]) }
            if !r.contains(" -d ") && !r.contains("port") { r += " -d " + address() }
            r += pick([" -j RETURN", " -j RETURN", " -j ACCEPT", " -j DROP", " -j DNAT --to-destination 10.244.0.9",
                       proto == "tcp" ? " -j REDIRECT --to-ports 15006" : " -j ACCEPT", " -j MARK --or-mark 0x1",
                       " -j SUB0", " -g SUB1"])
            lines.append(r)
        }
        lines += ["-A SUB0 -p udp -j RETURN", "-A SUB0 -m mark --mark 0x1/0x1 -j ACCEPT",
                  "-A SUB1 -d 10.96.1.0/24 -j DNAT --to-destination 10.244.0.1", "COMMIT"]
        return lines.joined(separator: "\n") + "\n"
    }

    @Test("a walk that keeps its remainders with holes gives the eager walk's outcomes (varied rules, fixed seeds)",
          arguments: [(1, 0), (2, 0), (3, 16), (4, 16)] as [(UInt64, Int)])
    func lazyWalkEqualsEagerWalk(_ seed: UInt64, _ lazyAt: Int) throws {
        let tables = try tables(variedTable(seed: seed, count: 60 + Int(seed) * 15), .ipv4)
        let space = PacketSpace(family: .ipv4, tables: tables)
        // Lazy from the first rule on (0), or past the product's threshold (16), against never (Int.max); with the
        // chain index and without.
        for indexing in [false, true] {
            let lazy = SymbolicEvaluator(space: space, tables: tables, indexing: indexing, lazyAt: lazyAt)
            let eager = SymbolicEvaluator(space: space, tables: tables, indexing: indexing, lazyAt: .max)
            var lazyOutcomes = 0
            for (box, pipeline) in walkInputs(space) {
                let l = lazy.evaluate(PacketSet([box]), pipeline: pipeline)
                let e = eager.evaluate(PacketSet([box]), pipeline: pipeline)
                #expect(!e.contains { $0.packets.isLazy }, "the eager walk never keeps holes")
                for o in l where o.packets.isLazy {
                    lazyOutcomes += 1
                    // A witness is chosen among these pieces: each must be inside the outcome.
                    let all = PacketSet(o.packets.boxes)
                    for piece in o.packets.someBoxes(upTo: 64) {
                        #expect(PacketSet([piece]).subtracting(all).isEmpty, "seed \(seed): a witness piece outside its outcome")
                    }
                }
                expectSameOutcomes(l, e, "seed \(seed), \(pipeline)")
            }
            #expect(lazyOutcomes > 0, "seed \(seed): some outcome of the lazy walk must still hold holes, or nothing was tested")
        }
    }

    @Test("every corpus rule set: a walk that keeps holes from the first rule on gives the eager walk's outcomes",
          arguments: Corpus.offlineCases)
    func corpus(_ c: CorpusCase) throws {
        let rules = try c.ruleset()
        #expect(!rules.tables.isEmpty, "\(c.testDescription): no rules to walk")
        for (family, tables) in tablesByFamily(rules) {
            let space = PacketSpace(family: family, tables: tables)
            let lazy = SymbolicEvaluator(space: space, tables: tables, indexing: true, lazyAt: 0)
            let eager = SymbolicEvaluator(space: space, tables: tables, indexing: true, lazyAt: .max)
            var runs = walkInputs(space)
            runs.append((runs[0].0, .localOutputThenLoopback))
            for (box, pipeline) in runs {
                expectSameOutcomes(lazy.evaluate(PacketSet([box]), pipeline: pipeline), eager.evaluate(PacketSet([box]), pipeline: pipeline),
                                   "\(c.testDescription) \(family), \(pipeline)")
            }
        }
    }

    @Test("a set with holes agrees with its boxes: emptiness, members, pieces, intersection and difference")
    func setOperationsAgree() throws {
        let tables = try tables(variedTable(seed: 9, count: 80), .ipv4)
        let space = PacketSpace(family: .ipv4, tables: tables)
        let cubes = tables[0].chain("VARIED")!.rules.map { space.cubes($0.conditions(family: .ipv4, spelled: false)) }
        var rng = SplitMix(state: 3)
        var emptied = 0, kept = 0
        for round in 0..<24 {
            var lazy = PacketSet([space.universe]), eager = lazy
            // Enough cubes that some rounds take everything (the proof of emptiness is exercised too).
            let taken = (0..<Int.random(in: 5..<60, using: &rng)).map { _ in cubes[Int.random(in: 0..<cubes.count, using: &rng)] }
            for c in taken where !c.isEmpty {
                lazy = lazy.subtractingLazily(c)
                eager = eager.splitUncompacted(by: c).remainder
            }
            // Whatever is left, the last few rounds take the rest with one box of the eager remainder at a time.
            if round >= 20 {
                for b in eager.boxes { lazy = lazy.subtractingLazily([Cube(b)]) }
                eager = PacketSet()
            }
            #expect(lazy.isLazy || lazy.isEmpty)
            #expect(lazy.isEmpty == eager.isEmpty, "round \(round): emptiness")
            let boxes = lazy.boxes
            #expect(PacketSet(boxes).subtracting(eager).isEmpty && eager.subtracting(PacketSet(boxes)).isEmpty, "round \(round): the same packets")
            if eager.isEmpty { emptied += 1; continue }
            kept += 1
            let some = lazy.someBoxes(upTo: 5)
            #expect(!some.isEmpty && some.count <= 5)
            for (i, b) in some.enumerated() {
                #expect(PacketSet([b]).subtracting(eager).isEmpty, "round \(round): a piece is inside the set")
                for c in some[(i + 1)...] { #expect(b.intersection(c).isEmpty, "round \(round): pieces are disjoint") }
            }
            // A sampled packet is in the lazy intersection exactly when it is in the eager one.
            let probe = PacketSet([space.universe.with(.l4Protocol, space.atoms(protocols: [6]))])
            let li = lazy.intersection(probe), ei = eager.intersection(probe)
            let ld = lazy.subtracting(probe), ed = eager.subtracting(probe)
            #expect(li.isEmpty == ei.isEmpty && ld.isEmpty == ed.isEmpty)
            for _ in 0..<50 {
                let p = samplePacket(space, &rng)
                #expect(space.contains(li, p) == space.contains(ei, p), "round \(round): \(p) in the intersection")
                #expect(space.contains(ld, p) == space.contains(ed, p), "round \(round): \(p) in the difference")
            }
        }
        #expect(emptied > 0 && kept > 0, "both empty and non-empty remainders must be met: \(emptied) emptied, \(kept) kept")
    }

    @Test("a rule's split of a set with holes agrees with the eager split: matched part and remainder")
    func splitAgrees() throws {
        let tables = try tables(variedTable(seed: 31, count: 120), .ipv4)
        let space = PacketSpace(family: .ipv4, tables: tables)
        let rules = tables[0].chain("VARIED")!.rules.map { space.cubes($0.conditions(family: .ipv4, spelled: false)) }.filter { !$0.isEmpty }
        var rng = SplitMix(state: 12)
        var lazyMatched = 0, emptyMatched = 0
        for _ in 0..<12 {
            var lazy = PacketSet([space.universe]), eager = lazy
            for step in 0..<Int.random(in: 10..<80, using: &rng) {
                let cubes = rules[Int.random(in: 0..<rules.count, using: &rng)]
                let (lm, lr) = lazy.splitLazily(by: cubes)
                let (em, er) = eager.splitUncompacted(by: cubes)
                if lm.isLazy { lazyMatched += 1 }
                if em.isEmpty { emptyMatched += 1 }
                #expect(lm.isEmpty == em.isEmpty && lr.isEmpty == er.isEmpty, "step \(step): emptiness")
                let matched = PacketSet(lm.boxes)
                #expect(matched.subtracting(em).isEmpty && em.subtracting(matched).isEmpty, "step \(step): the matched packets")
                lazy = lr
                eager = er.compacted()
                if eager.isEmpty { break }
            }
            #expect(PacketSet(lazy.boxes).subtracting(eager).isEmpty && eager.subtracting(PacketSet(lazy.boxes)).isEmpty)
        }
        #expect(lazyMatched > 0 && emptyMatched > 0, "matched parts with holes, and empty ones, must be met: \(lazyMatched), \(emptyMatched)")
    }

    @Test("an effect on a set with holes keeps the holes that do not test what it changes, and gives the eager result")
    func effectsKeepOtherHoles() throws {
        let tables = try tables(variedTable(seed: 5, count: 100), .ipv4)
        let space = PacketSpace(family: .ipv4, tables: tables)
        let domain = SymbolicDomain(space: space)
        let rules = tables[0].chain("VARIED")!.rules.map { space.cubes($0.conditions(family: .ipv4, spelled: false)) }.filter { !$0.isEmpty }
        var lazy = PacketSet([space.universe])
        for cubes in rules.prefix(60) { lazy = lazy.subtractingLazily(cubes) }
        let eager = PacketSet(lazy.boxes)
        let markHoles = lazy.cuttingHoles(testing: [.mark]).kept?.count ?? 0
        #expect(lazy.isLazy && markHoles > 0 && markHoles < lazy.holes!.count, "some holes test the mark, most do not")
        let toOne: (UInt32) -> UInt32 = { _ in 1 }
        let marked = domain.mapMark(lazy, toOne), markedEagerly = domain.mapMark(eager, toOne)
        #expect(marked.isLazy, "holes that do not test the mark are kept")
        let connmarked = domain.mapConnmark(lazy, ConnmarkTarget(mode: .restore(nfmask: 0xffff_ffff, ctmask: 0xffff_ffff)))
        let connmarkedEagerly = domain.mapConnmark(eager, ConnmarkTarget(mode: .restore(nfmask: 0xffff_ffff, ctmask: 0xffff_ffff)))
        let looped = domain.receivedOnLoopback(lazy), loopedEagerly = domain.receivedOnLoopback(eager)
        for (a, b, what) in [(marked, markedEagerly, "MARK"), (connmarked, connmarkedEagerly, "CONNMARK"), (looped, loopedEagerly, "loopback")] {
            let boxes = PacketSet(a.boxes)
            #expect(boxes.subtracting(b).isEmpty && b.subtracting(boxes).isEmpty, "\(what): the same packets as the eager effect")
        }
    }

    @Test("sampled packets' concrete traces agree with the outcome of a walk that keeps holes that holds them")
    func concreteAgreement() throws {
        let tables = try tables(variedTable(seed: 21, count: 120), .ipv4)
        let space = PacketSpace(family: .ipv4, tables: tables)
        let symbolic = SymbolicEvaluator(space: space, tables: tables, indexing: true, lazyAt: 0)
        let tracer = ConcreteEvaluator(family: .ipv4, tables: tables)
        var rng = SplitMix(state: 8)
        var checked = 0
        for (box, pipeline) in walkInputs(space) where pipeline != .single(.nat, .output) {
            let outcomes = symbolic.evaluate(PacketSet([box]), pipeline: pipeline)
            #expect(outcomes.contains { $0.packets.isLazy }, "\(pipeline): the walk must keep holes")
            for _ in 0..<150 {
                // One atom of each field of the input box.
                var atoms: [PacketField: Int] = [:]
                for f in PacketField.allCases {
                    let inBox = box[f].atoms
                    atoms[f] = inBox[Int.random(in: 0..<inBox.count, using: &rng)]
                }
                let p = space.packet(atoms: atoms)
                guard space.contains(PacketSet([box]), p) else { continue }
                // The table has no match iptaudit cannot evaluate: exactly one outcome holds each packet.
                let holding = outcomes.filter { space.contains($0.packets, p) }
                #expect(holding.count == 1, "\(p) through \(pipeline): in \(holding.count) outcomes")
                guard let o = holding.first else { continue }
                let t = tracer.trace(p, pipeline: pipeline, assumptions: o.assumptions)
                #expect(o.path == t.path && o.verdict == t.verdict, "\(p) through \(pipeline)")
                checked += 1
            }
        }
        #expect(checked > 100, "enough sampled packets fall in the inputs: \(checked)")
    }
}
