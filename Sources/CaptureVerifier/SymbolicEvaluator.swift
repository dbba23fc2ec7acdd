import NetfilterModel

/// The tables a packet meets in order: locally generated packets go raw → mangle → nat OUTPUT; inbound
/// packets raw → mangle → nat PREROUTING; a `.loopback` stage hands a locally generated packet that left on
/// `lo` back to the receive side (PREROUTING sees it again, nat does not: the connection was NATed at OUTPUT).
public struct Pipeline: Hashable, Sendable, CustomStringConvertible {
    public enum Stage: Hashable, Sendable {
        case table(TableName, ChainName)
        case loopback
    }
    public var stages: [Stage]
    public init(_ stages: [Stage]) { self.stages = stages }

    public static let localOutput = Pipeline([.table(.raw, .output), .table(.mangle, .output), .table(.nat, .output)])
    public static let inbound = Pipeline([.table(.raw, .prerouting), .table(.mangle, .prerouting), .table(.nat, .prerouting)])
    /// A locally generated packet out `lo`, then received back on `lo` (TPROXY's proxy-to-self path).
    public static let localOutputThenLoopback = Pipeline(localOutput.stages + [.loopback, .table(.raw, .prerouting), .table(.mangle, .prerouting)])
    public static func single(_ table: TableName, _ hook: ChainName) -> Pipeline { Pipeline([.table(table, hook)]) }

    public var description: String {
        stages.map { s in
            switch s {
            case .table(let t, let c): "\(t) \(c)"
            case .loopback: "lo"
            }
        }.joined(separator: " → ")
    }
}

/// Limits that stop a malformed dump (jump cycles, absurd nesting) from running away.
enum EvaluationLimits {
    static let maxCallDepth = 64
    static let maxSteps = 4096
}

/// Exhaustive, order-aware evaluation of packet sets through the chain graph. Every subset of the input
/// ends in exactly one outcome (or, where a match cannot be evaluated, in one outcome per assumption).
public struct SymbolicEvaluator: Sendable {
    public let space: PacketSpace
    let tables: [TableName: Table]
    let chains: [TableName: [ChainName: Chain]]
    let compiled: [TableName: [ChainName: [CompiledRule]]]
    /// Long chains whose rules are indexed by one field (see `ChainIndex`).
    let indexes: [TableName: [ChainName: ChainIndex]]

    public init(space: PacketSpace, tables: [Table]) { self.init(space: space, tables: tables, indexing: true) }

    /// `indexing: false` walks every chain rule by rule (the reference the index is tested against).
    init(space: PacketSpace, tables: [Table], indexing: Bool) {
        self.space = space
        var byName: [TableName: Table] = [:]
        var chainsByName: [TableName: [ChainName: Chain]] = [:]
        var compiled: [TableName: [ChainName: [CompiledRule]]] = [:]
        var indexes: [TableName: [ChainName: ChainIndex]] = [:]
        for t in tables where t.family == space.family {
            byName[t.name] = t
            var rules: [ChainName: [CompiledRule]] = [:]
            var chains: [ChainName: Chain] = [:]
            for c in t.chains {
                rules[c.name] = c.rules.map { rule in
                    var cr = space.compile(rule)
                    // Rendered once here, not once per subset reaching the rule (kube-proxy: one DNAT per endpoint).
                    switch rule.target {
                    case .dnat, .snat, .masquerade, .mark, .connmark, .ct, .log, .nflog:
                        cr.effect = SymbolicEvaluator.effectText(rule.target, family: space.family)
                    default: break
                    }
                    return cr
                }
                chains[c.name] = chains[c.name] ?? c
            }
            compiled[t.name] = rules
            chainsByName[t.name] = chains
            var tableIndexes: [ChainName: ChainIndex] = [:]
            for (name, chainRules) in rules where indexing {
                if let index = ChainIndex(rules: chainRules, space: space) { tableIndexes[name] = index }
            }
            if !tableIndexes.isEmpty { indexes[t.name] = tableIndexes }
        }
        self.tables = byName
        self.chains = chainsByName
        self.compiled = compiled
        self.indexes = indexes
    }

    /// State carried along a branch, across chains and tables.
    struct Carry: Sendable {
        var path: [TraceStep] = []
        var ctZone: UInt16?
        /// A CT rule already attached a template: later CT rules do nothing (the first one wins).
        var ctTemplate = false
        var notrack = false
        var assumptions: [Assumption] = []
        var verdict: Verdict = .policy(.accept)
    }

    public func evaluate(_ set: PacketSet, table: TableName, hook: ChainName) -> [Outcome] {
        evaluate(set, pipeline: .single(table, hook))
    }

    public func evaluate(_ set: PacketSet, pipeline: Pipeline) -> [Outcome] {
        var outcomes: [Outcome] = []
        var work: [(PacketSet, Carry, Int)] = [(splitMutableFields(set), Carry(), 0)]
        while let (s, carry, stage) = work.popLast() {
            if s.isEmpty { continue }
            guard stage < pipeline.stages.count, carry.verdict.continues || stage == 0 else {
                outcomes.append(Outcome(packets: s, verdict: carry.verdict, path: carry.path, ctZone: carry.ctZone,
                                        assumptions: carry.assumptions))
                continue
            }
            switch pipeline.stages[stage] {
            case .loopback:
                var c = carry
                let lo = space.atoms(.outInterface, interfaceNamed: "lo")
                let (viaLo, elsewhere) = s.split(by: [cube(.outInterface, lo)])
                if !elsewhere.isEmpty {
                    outcomes.append(Outcome(packets: elsewhere, verdict: carry.verdict, path: carry.path,
                                            ctZone: carry.ctZone, assumptions: carry.assumptions))
                }
                c.path.append(TraceStep(table: .raw, chain: .prerouting, action: .loopback))
                work.append((receivedOnLoopback(viaLo), c, stage + 1))
            case .table(let table, let hook):
                var input = s
                if table == .nat {
                    if carry.notrack {
                        var c = carry
                        c.verdict = .untracked
                        work.append((s, c, stage + 1))
                        continue
                    }
                    // nat sees only the first packet of a connection.
                    let (new, other) = s.split(by: [cube(.ctState, space.atoms(states: [.new]))])
                    if !other.isEmpty { work.append((other, carry, stage + 1)) }
                    input = new
                }
                for (out, c) in evaluateTable(input, table: table, hook: hook, carry: carry) {
                    work.append((out, c, stage + 1))
                }
            }
        }
        return outcomes
    }

    /// Boxes whose mark or connmark covers several atoms are split so effects stay exact per box.
    func splitMutableFields(_ set: PacketSet) -> PacketSet {
        var boxes: [PacketBox] = []
        for b in set.boxes {
            for m in b[.mark].atoms {
                for k in b[.connmark].atoms {
                    var x = b
                    x[.mark] = AtomSet(capacity: b[.mark].capacity, atoms: [m])
                    x[.connmark] = AtomSet(capacity: b[.connmark].capacity, atoms: [k])
                    boxes.append(x)
                }
            }
        }
        return PacketSet(boxes)
    }

    func cube(_ f: PacketField, _ atoms: AtomSet) -> PacketBox {
        var c = space.universe
        c[f] = atoms
        return c
    }

    func receivedOnLoopback(_ set: PacketSet) -> PacketSet {
        let lo = space.atoms(.inInterface, interfaceNamed: "lo")
        let none = space.noInterface(.outInterface)
        var boxes = set.boxes
        for i in boxes.indices {
            for (f, value) in [(PacketField.inInterface, lo), (.outInterface, none)] where boxes[i][f] != value {
                if let si = f.shadowIndex, boxes[i].shadows[si] == nil { boxes[i].shadows[si] = boxes[i][f] }
                boxes[i][f] = value
            }
        }
        return PacketSet(boxes)
    }

    struct Frame: Sendable {
        var chain: ChainName
        var index: Int
    }

    struct Flow: Sendable {
        var set: PacketSet
        var chain: ChainName
        var index: Int
        var stack: [Frame]
        var carry: Carry
        /// Merge the set's boxes once it holds more than this many (long chains split off a piece per rule).
        var compactAt = 16
        /// Per indexed chain the flow was split for, the only rules of that chain its packets can match.
        var relevant: [(chain: ChainName, rules: [Int])] = []
    }

    /// Walks one table from its hook chain; returns each subset with the verdict and state it left with.
    func evaluateTable(_ set: PacketSet, table name: TableName, hook: ChainName, carry: Carry) -> [(PacketSet, Carry)] {
        guard !set.isEmpty else { return [] }
        guard tables[name] != nil, let rulesByChain = compiled[name], let chainsByName = chains[name] else {
            // No such table: nothing is installed there, the packet passes.
            var c = carry
            c.verdict = .policy(.accept)
            return [(set, c)]
        }
        var results: [(PacketSet, Carry)] = []
        var start = carry
        start.path.append(TraceStep(table: name, chain: hook, action: .enter))
        let hookPolicy = chainsByName[hook]?.policy ?? .accept
        guard chainsByName[hook] != nil else {
            start.path.append(TraceStep(table: name, chain: hook, action: .policy(.accept)))
            start.verdict = .policy(.accept)
            return [(set, start)]
        }
        var work = [Flow(set: set, chain: hook, index: 0, stack: [], carry: start)]
        let chainIndexes = indexes[name] ?? [:]
        // The current chain's lookups, redone only when the walk changes chain (not three hash lookups per rule).
        var cachedName: ChainName?
        var chain: Chain?
        var compiledRules: [CompiledRule] = []
        var chainIndex: ChainIndex?

        func finish(_ s: PacketSet, _ c: Carry, _ verdict: Verdict) {
            var c = c
            c.verdict = verdict
            results.append((s, c))
        }
        /// Leaves the current chain: back to the caller, or to the hook's policy.
        func leave(_ f: inout Flow) -> Bool {
            if let frame = f.stack.popLast() {
                f.chain = frame.chain
                f.index = frame.index
                return true
            }
            f.carry.path.append(TraceStep(table: name, chain: hook, action: .policy(hookPolicy)))
            finish(f.set, f.carry, .policy(hookPolicy))
            return false
        }

        while var f = work.popLast() {
            flowLoop: while !f.set.isEmpty {
                if f.carry.path.count > EvaluationLimits.maxSteps {
                    finish(f.set, f.carry, .loop)
                    break
                }
                if cachedName != f.chain {
                    cachedName = f.chain
                    chain = chainsByName[f.chain]
                    compiledRules = rulesByChain[f.chain] ?? []
                    chainIndex = chainIndexes[f.chain]
                }
                if f.index >= compiledRules.count {
                    if chain?.isBuiltin ?? false, f.chain == hook || f.stack.isEmpty {
                        f.carry.path.append(TraceStep(table: name, chain: hook, action: .policy(hookPolicy)))
                        finish(f.set, f.carry, .policy(hookPolicy))
                        break
                    }
                    f.carry.path.append(TraceStep(table: name, chain: f.chain, action: .fallOff))
                    if !leave(&f) { break }
                    continue
                }
                guard let rule = chain?.rules[f.index] else { break }
                if let index = chainIndex {
                    if let relevant = f.relevant.first(where: { $0.chain == f.chain })?.rules {
                        // A subset of one class: only its class's rules and the wildcards can match it.
                        let next = ChainIndex.next(in: relevant, atOrAfter: f.index, end: compiledRules.count)
                        if next != f.index {
                            f.index = next
                            continue
                        }
                    } else if index.isClassRule(f.index) {
                        // Up to the next wildcard, rules of different classes test disjoint packets: one batch.
                        let end = index.nextWildcard[f.index]
                        let (matched, rest) = index.segment(f.set, f.index..<end, rules: compiledRules)
                        for (ruleIndex, classID, set) in matched.reversed() {
                            var g = f
                            g.set = set
                            g.index = ruleIndex
                            g.compactAt = 16
                            g.relevant.append((f.chain, index.classRules[classID]))
                            work.append(g)
                        }
                        f.set = rest
                        f.index = end
                        continue
                    }
                }
                let cr = compiledRules[f.index]
                let number = f.index + 1
                let position = RulePosition(chain: f.chain, number: number)
                var (matched, rest) = f.set.splitUncompacted(by: cr.cubes)
                if rest.boxes.count > f.compactAt {
                    // Merge, then let the list double before merging again: amortized linear.
                    f.compactAt = max(16, rest.boxes.count * 2)
                    rest = rest.compacted()
                }
                if matched.boxes.count > 16 { matched = matched.compacted() }

                // What does not match goes on to the next rule.
                var next = f
                next.set = rest
                next.index += 1
                if !cr.unknown.isEmpty, !matched.isEmpty {
                    // Unknown conditions: the matching part also goes on, assuming they did not hold.
                    var skipped = f
                    skipped.set = matched
                    skipped.index += 1
                    skipped.carry.assumptions.append(Assumption(table: name, position: position, what: cr.unknown, matched: false))
                    work.append(skipped)
                }
                if !rest.isEmpty { work.append(next) }
                guard !matched.isEmpty else { break }

                f.set = matched
                if !cr.unknown.isEmpty {
                    f.carry.assumptions.append(Assumption(table: name, position: position, what: cr.unknown, matched: true))
                }
                let step = { (action: TraceStep.Action) in TraceStep(table: name, chain: f.chain, ruleNumber: number, action: action) }
                switch rule.target {
                case .continue:
                    f.index += 1
                case .accept: f.carry.path.append(step(.verdict(.accept))); finish(f.set, f.carry, .accept); break flowLoop
                case .drop: f.carry.path.append(step(.verdict(.drop))); finish(f.set, f.carry, .drop); break flowLoop
                case .reject: f.carry.path.append(step(.verdict(.reject))); finish(f.set, f.carry, .reject); break flowLoop
                case .queue: f.carry.path.append(step(.verdict(.queue))); finish(f.set, f.carry, .queue); break flowLoop
                case .redirect(let r):
                    let v = Verdict.redirect(ports: r.ports)
                    f.carry.path.append(step(.verdict(v)))
                    finish(f.set, f.carry, v)
                    break flowLoop
                case .dnat, .snat, .masquerade:
                    let v = Verdict.nat(cr.effect ?? effectText(rule.target))
                    f.carry.path.append(step(.verdict(v)))
                    finish(f.set, f.carry, v)
                    break flowLoop
                case .tproxy(let tp):
                    let v = Verdict.tproxy(port: tp.port, markValue: tp.markValue, markMask: tp.markMask)
                    f.carry.path.append(step(.verdict(v)))
                    finish(mapMark(f.set) { ($0 & ~tp.markMask) ^ tp.markValue }, f.carry, v)
                    break flowLoop
                case .return:
                    f.carry.path.append(step(.return))
                    if !leave(&f) { break flowLoop }
                case .jump(let target), .goto(let target):
                    let isGoto: Bool = if case .goto = rule.target { true } else { false }
                    guard chainsByName[target] != nil else {
                        f.carry.path.append(step(.danglingJump(target)))
                        f.index += 1
                        continue
                    }
                    f.carry.path.append(step(isGoto ? .goto(target) : .jump(target)))
                    let onStack = f.stack.contains { $0.chain == target } || target == f.chain
                    if f.stack.count >= EvaluationLimits.maxCallDepth || (onStack && !isGoto) {
                        finish(f.set, f.carry, .loop)
                        break flowLoop
                    }
                    if !isGoto { f.stack.append(Frame(chain: f.chain, index: f.index + 1)) }
                    f.chain = target
                    f.index = 0
                case .mark(let m):
                    f.carry.path.append(step(.effect(cr.effect ?? effectText(rule.target))))
                    f.set = mapMark(f.set) { m.apply(to: $0) }
                    f.index += 1
                case .connmark(let c):
                    f.carry.path.append(step(.effect(cr.effect ?? effectText(rule.target))))
                    f.set = mapConnmark(f.set, c)
                    f.index += 1
                case .ct(let ct):
                    f.carry.path.append(step(.effect(cr.effect ?? effectText(rule.target))))
                    if !f.carry.ctTemplate {
                        f.carry.ctTemplate = true
                        if ct.notrack { f.carry.notrack = true } else { f.carry.ctZone = ct.zone }
                    }
                    f.index += 1
                case .log, .nflog:
                    f.carry.path.append(step(.effect(cr.effect ?? effectText(rule.target))))
                    f.index += 1
                case .unrecognized(let u):
                    // Unknown target: it may end the walk or not; follow both.
                    var goesOn = f
                    goesOn.index += 1
                    goesOn.carry.assumptions.append(Assumption(table: name, position: position, what: ["target \(u.name)"], matched: false))
                    work.append(goesOn)
                    f.carry.assumptions.append(Assumption(table: name, position: position, what: ["target \(u.name)"], matched: true))
                    f.carry.path.append(step(.verdict(.unrecognized(u.name))))
                    finish(f.set, f.carry, .unrecognized(u.name))
                    break flowLoop
                }
            }
        }
        return results
    }

    func effectText(_ t: Target) -> String { SymbolicEvaluator.effectText(t, family: space.family) }

    static func effectText(_ t: Target, family: Family) -> String {
        String(SaveSyntax.targetText(t, family: family).drop { $0 == " " }.dropFirst(3))
    }

    /// Applies a mark rewrite, one box per source atom so each box's new mark is a function of its input.
    func mapMark(_ set: PacketSet, _ transform: (UInt32) -> UInt32) -> PacketSet {
        var boxes: [PacketBox] = []
        for b in set.boxes {
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
        return PacketSet(boxes)
    }

    func mapConnmark(_ set: PacketSet, _ c: ConnmarkTarget) -> PacketSet {
        var boxes: [PacketBox] = []
        for b in set.boxes {
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
        return PacketSet(boxes)
    }
}
