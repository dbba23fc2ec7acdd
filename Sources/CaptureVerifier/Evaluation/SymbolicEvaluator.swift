import NetfilterModel

/// Exhaustive, order-aware evaluation of packet sets through the chain graph: the chain walker over packet
/// sets. Every subset of the input ends in exactly one outcome (or, where a match cannot be evaluated, in one
/// outcome per assumption).
struct SymbolicEvaluator: Sendable {
    let space: PacketSpace
    let walker: ChainWalker<SymbolicDomain>

    init(space: PacketSpace, tables: [Table]) { self.init(space: space, tables: tables, indexing: true) }

    /// `indexing: false` walks every chain rule by rule (the reference the index is tested against); `lazyAt`
    /// is the size past which a remainder keeps its holes unsplit (`SymbolicDomain.lazyAt`; tests vary it).
    init(space: PacketSpace, tables: [Table], indexing: Bool, lazyAt: Int = SymbolicDomain.lazyAt) {
        self.space = space
        walker = ChainWalker(domain: SymbolicDomain(space: space, lazyAt: lazyAt), tables: tables, indexing: indexing)
    }

    func evaluate(_ set: PacketSet, table: TableName, hook: ChainName) -> [Outcome] {
        evaluate(set, pipeline: .single(table, hook))
    }

    /// The pipeline as walked: each hook replaced by the base chains registered there.
    func resolve(_ pipeline: Pipeline) -> Pipeline { walker.resolve(pipeline) }

    /// Where the resolved order of base chains is assumed (`ChainWalker.orderAssumptions`).
    func orderAssumptions(_ pipeline: Pipeline) -> [AssumedOrder] { walker.orderAssumptions(pipeline) }

    /// Every outcome the relevance admits (all of them by default), each exactly as the full walk gives it.
    func evaluate(_ set: PacketSet, pipeline: Pipeline, relevance: Relevance = .all) -> [Outcome] {
        let outcomes = walker.walk(set, pipeline: pipeline, relevance: relevance).map { s, c in
            Outcome(packets: s, verdict: c.verdict, path: c.path, ctZone: c.ctZone, assumptions: c.assumptions,
                    untrackedBy: c.verdict == .untracked ? c.notrackStep.map { c.path[$0] } : nil)
        }
        // The walk drops what it can decide early; a branch it had to follow to the end may still not be admitted.
        return relevance == .all ? outcomes : outcomes.filter(relevance.admits)
    }
}

/// Packet sets as the walker's packets: a rule splits a set by its cubes; effects map marks atom to atom.
struct SymbolicDomain: WalkDomain {
    let space: PacketSpace
    /// A set of more boxes than this meets the rules after it as boxes less holes (`PacketSet.splitLazily`):
    /// past it, cutting every box by every rule costs more than searching for a member. 16, 32, 64 and 256 were
    /// measured (docs/benchmarks.md): the smaller, the faster on varied rules. Most Istio tables stay below it.
    static let lazyAt = 16
    var lazyAt = SymbolicDomain.lazyAt
    var family: Family { space.family }
    var records: Bool { false }

    func compile(_ rule: Rule, conditions: [Condition]) -> CompiledRule {
        var r = CompiledRule(rule, conditions: conditions, family: space.family)
        r.cubes = space.cubes(conditions)
        return r
    }

    func index(_ rules: [CompiledRule]) -> ChainIndex? { ChainIndex(rules: rules, space: space) }
    func isEmpty(_ p: PacketSet) -> Bool { p.isEmpty }
    /// A step over a set with holes also meets every hole (the split scans them all for the matched part).
    func weight(_ p: PacketSet) -> Int { p.baseCount + (p.holes?.count ?? 0) }

    func split(_ p: PacketSet, by rule: CompiledRule, compactAt: inout Int) -> (matched: PacketSet, rest: PacketSet) {
        if p.isLazy || p.baseCount > lazyAt {
            let (matched, rest) = p.splitLazily(by: rule.cubes)
            return (matched, rest)
        }
        var (matched, rest) = p.splitUncompacted(by: rule.cubes)
        if rest.boxes.count > compactAt {
            // Merge, then let the list double before merging again: amortized linear.
            compactAt = max(16, rest.boxes.count * 2)
            rest = rest.compacted()
        }
        if matched.boxes.count > 16 { matched = matched.compacted() }
        return (matched, rest)
    }

    func decide(_ table: TableName, _ position: RulePosition, _ what: [String]) -> UnknownDecision { .both }

    func splitLoopback(_ p: PacketSet) -> (viaLo: PacketSet, elsewhere: PacketSet) {
        let (viaLo, elsewhere) = p.split(by: [cube(.outInterface, space.atoms(.outInterface, interfaceNamed: "lo"))])
        return (viaLo, elsewhere)
    }

    func splitNew(_ p: PacketSet) -> (new: PacketSet, other: PacketSet) {
        let (new, other) = p.split(by: [cube(.ctState, space.atoms(states: [.new]))])
        return (new, other)
    }

    func sample(_ p: PacketSet) -> Packet? { p.boxes.first.map { space.representative(of: $0) } }

    /// Boxes whose mark or connmark covers several atoms are split so effects stay exact per box.
    func prepare(_ set: PacketSet) -> PacketSet {
        // Splitting boxes changes no value: every hole still holds.
        let (input, kept) = set.cuttingHoles { _ in false }
        var boxes: [PacketBox] = []
        for b in input {
            for m in b[.mark].atoms {
                for k in b[.connmark].atoms {
                    var x = b
                    x[.mark] = AtomSet(capacity: b[.mark].capacity, atoms: [m])
                    x[.connmark] = AtomSet(capacity: b[.connmark].capacity, atoms: [k])
                    boxes.append(x)
                }
            }
        }
        return PacketSet.lazy(boxes, less: kept)
    }

    func cube(_ f: PacketField, _ atoms: AtomSet) -> PacketBox {
        var c = space.universe
        c[f] = atoms
        return c
    }

    func receivedOnLoopback(_ set: PacketSet) -> PacketSet {
        let lo = space.atoms(.inInterface, interfaceNamed: "lo")
        let none = space.noInterface(.outInterface)
        // Holes that test the interfaces are cut before they change; the others still hold after.
        var (boxes, kept) = set.cuttingHoles(testing: [.inInterface, .outInterface])
        for i in boxes.indices {
            for (f, value) in [(PacketField.inInterface, lo), (.outInterface, none)] where boxes[i][f] != value {
                if let si = f.shadowIndex, boxes[i].shadows[si] == nil { boxes[i].shadows[si] = boxes[i][f] }
                boxes[i][f] = value
            }
        }
        return PacketSet.lazy(boxes, less: kept)
    }

    func indexStep(_ f: inout WalkFlow<PacketSet>, _ work: inout [WalkFlow<PacketSet>], index: ChainIndex, rules: [CompiledRule]) -> Bool {
        if let relevant = f.relevant.first(where: { $0.chain == f.chain })?.rules {
            // A subset of one class: only its class's rules and the wildcards can match it.
            let next = ChainIndex.next(in: relevant, atOrAfter: f.index, end: rules.count)
            guard next != f.index else { return false }
            f.index = next
            return true
        }
        guard index.isClassRule(f.index) else { return false }
        // Up to the next wildcard, rules of different classes test disjoint packets: one batch.
        let end = index.nextWildcard[f.index]
        let (matched, rest) = index.segment(f.packets, f.index..<end, rules: rules)
        for (ruleIndex, classID, set) in matched.reversed() {
            var g = f
            g.packets = set
            g.index = ruleIndex
            g.compactAt = 16
            g.relevant.append((f.chain, index.classRules[classID]))
            work.append(g)
        }
        f.packets = rest
        f.index = end
        return true
    }

    /// Applies a mark rewrite, one box per source atom so each box's new mark is a function of its input. Holes
    /// that test the mark are cut first; the others still hold after the rewrite.
    func mapMark(_ set: PacketSet, _ transform: (UInt32) -> UInt32) -> PacketSet {
        let (input, kept) = set.cuttingHoles(testing: [.mark])
        var boxes: [PacketBox] = []
        for b in input {
            for a in b[.mark].atoms {
                // The closure of mark values holds every image; fall back to the old value rather than lose packets.
                guard let v = space.value(.mark, a) else { continue }
                let image = space.atom(.mark, markValue: transform(v)) ?? a
                var x = b
                x[.mark] = AtomSet(capacity: b[.mark].capacity, atoms: [image])
                if image != a, x.shadows[0] == nil { x.shadows[0] = AtomSet(capacity: b[.mark].capacity, atoms: [a]) }
                boxes.append(x)
            }
        }
        return PacketSet.lazy(boxes, less: kept)
    }

    func mapConnmark(_ set: PacketSet, _ c: ConnmarkTarget) -> PacketSet {
        let (input, kept) = set.cuttingHoles(testing: [.mark, .connmark])
        var boxes: [PacketBox] = []
        for b in input {
            for m in b[.mark].atoms {
                for k in b[.connmark].atoms {
                    guard let mv = space.value(.mark, m), let kv = space.value(.connmark, k) else { continue }
                    let (nm, nk) = ConnmarkEffect.apply(c, mark: mv, connmark: kv)
                    let mi = space.atom(.mark, markValue: nm) ?? m
                    let ki = space.atom(.connmark, markValue: nk) ?? k
                    var x = b
                    x[.mark] = AtomSet(capacity: b[.mark].capacity, atoms: [mi])
                    x[.connmark] = AtomSet(capacity: b[.connmark].capacity, atoms: [ki])
                    if mi != m, x.shadows[0] == nil { x.shadows[0] = AtomSet(capacity: b[.mark].capacity, atoms: [m]) }
                    if ki != k, x.shadows[1] == nil { x.shadows[1] = AtomSet(capacity: b[.connmark].capacity, atoms: [k]) }
                    boxes.append(x)
                }
            }
        }
        return PacketSet.lazy(boxes, less: kept)
    }
}

extension PacketSpace {
    /// A rule's conditions as disjoint cubes over the space: each condition narrows its field; `--ports` (source
    /// or destination port) splits every cube in two.
    func cubes(_ conditions: [Condition]) -> [Cube] {
        var cubes = [universe]
        for c in conditions {
            if let (f, atoms) = c.atoms(in: self) {
                for i in cubes.indices { cubes[i][f] = cubes[i][f] & atoms }
            } else if case .eitherPort(let ranges) = c.test {
                let sp = self.atoms(.sourcePort, inRanges: ranges)
                let dp = self.atoms(.destinationPort, inRanges: ranges)
                if c.inverted {
                    for i in cubes.indices {
                        cubes[i][.sourcePort] = cubes[i][.sourcePort] & sp.complement
                        cubes[i][.destinationPort] = cubes[i][.destinationPort] & dp.complement
                    }
                } else {
                    cubes = cubes.flatMap { c -> [PacketBox] in
                        var a = c, b = c
                        a[.sourcePort] = c[.sourcePort] & sp
                        b[.sourcePort] = c[.sourcePort].subtracting(sp)
                        b[.destinationPort] = c[.destinationPort] & dp
                        return [a, b]
                    }
                }
            }
        }
        return cubes.filter { !$0.isEmpty }.map(Cube.init)
    }
}
