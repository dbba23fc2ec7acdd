import NetfilterModel

/// Follows one concrete packet through the tables, rule by rule, with exact arithmetic on its fields — the
/// engine of `iptaudit trace`, and the independent check of every witness the symbolic evaluator reports (the
/// same walker, with each condition tested on the packet's values instead of turned into atoms).
///
/// Matches it cannot evaluate are decided by `assumptions` (keyed by table and rule); without one they are
/// taken not to match, and an unknown target is taken not to end the walk.
struct ConcreteEvaluator: Sendable {
    let family: Family
    let tables: [Table]

    init(family: Family, tables: [Table]) {
        self.family = family
        self.tables = tables.filter { $0.family == family }
    }

    func trace(_ packet: Packet, table: TableName, hook: ChainName, assumptions: [Assumption] = []) -> Trace {
        trace(packet, pipeline: .single(table, hook), assumptions: assumptions)
    }

    func trace(_ packet: Packet, pipeline: Pipeline, assumptions: [Assumption] = []) -> Trace {
        let (trace, _) = walk(packet, pipeline: pipeline, assumptions: assumptions, recording: false)
        return trace
    }

    /// Several packets through one walker, on the rules a symbolic evaluator of the same tables already compiled:
    /// on a large ruleset, compiling the rules costs more than walking them.
    func trace(_ packets: [Packet], pipeline: Pipeline, assumptions: [Assumption] = [], compiledBy symbolic: SymbolicEvaluator) -> [Trace] {
        let walker = ChainWalker(domain: ConcreteDomain(family: family, assumptions: assumptions, records: false), compiledBy: symbolic.walker)
        return packets.map { walk($0, pipeline: pipeline, walker: walker).0 }
    }

    /// The walk, and with `recording` every rule it evaluated (for the tracer's explanation).
    func walk(_ packet: Packet, pipeline: Pipeline, assumptions: [Assumption], recording: Bool) -> (Trace, [(pathCount: Int, event: WalkEvent)]) {
        let domain = ConcreteDomain(family: family, assumptions: assumptions, records: recording)
        return walk(packet, pipeline: pipeline, walker: ChainWalker(domain: domain, tables: tables, indexing: false))
    }

    private func walk(_ packet: Packet, pipeline: Pipeline, walker: ChainWalker<ConcreteDomain>) -> (Trace, [(pathCount: Int, event: WalkEvent)]) {
        // One packet and one decision per unknown: exactly one branch comes back.
        guard let (packets, carry) = walker.walk([packet], pipeline: pipeline).first, let final = packets.first else {
            return (Trace(packet: packet, final: packet, verdict: .policy(.accept), path: [], ctZone: nil, assumptions: []), [])
        }
        return (Trace(packet: packet, final: final, verdict: carry.verdict, path: carry.path, ctZone: carry.ctZone,
                      assumptions: carry.assumptions), carry.events)
    }
}

/// One packet as the walker's packets (an array of zero or one): a rule takes it when each condition holds for
/// its values.
struct ConcreteDomain: WalkDomain {
    let family: Family
    let assumptions: [Assumption]
    let records: Bool

    func compile(_ rule: Rule, conditions: [Condition]) -> CompiledRule {
        CompiledRule(rule, conditions: conditions, family: family)
    }

    func index(_ rules: [CompiledRule]) -> ChainIndex? { nil }
    func isEmpty(_ p: [Packet]) -> Bool { p.isEmpty }
    func weight(_ p: [Packet]) -> Int { p.count }

    func split(_ p: [Packet], by rule: CompiledRule, compactAt: inout Int) -> (matched: [Packet], rest: [Packet]) {
        guard let packet = p.first else { return ([], []) }
        return rule.conditions.allSatisfy({ $0.holds(for: packet) }) ? (p, []) : ([], p)
    }

    func decide(_ table: TableName, _ position: RulePosition, _ what: [String]) -> UnknownDecision {
        let given = assumptions.first { $0.table == table && $0.position == position && $0.what == what }
        return given?.matched == true ? .matches : .doesNotMatch
    }

    func mapMark(_ p: [Packet], _ transform: (UInt32) -> UInt32) -> [Packet] {
        p.map { var x = $0; x.mark = transform(x.mark); return x }
    }

    func mapConnmark(_ p: [Packet], _ c: ConnmarkTarget) -> [Packet] {
        p.map { var x = $0; (x.mark, x.connmark) = ConnmarkEffect.apply(c, mark: x.mark, connmark: x.connmark); return x }
    }

    func splitLoopback(_ p: [Packet]) -> (viaLo: [Packet], elsewhere: [Packet]) {
        p.first?.outInterface == "lo" ? (p, []) : ([], p)
    }

    func receivedOnLoopback(_ p: [Packet]) -> [Packet] {
        p.map { var x = $0; x.inInterface = "lo"; x.outInterface = nil; return x }
    }

    func splitNew(_ p: [Packet]) -> (new: [Packet], other: [Packet]) {
        p.first?.state == .new ? (p, []) : ([], p)
    }

    func prepare(_ p: [Packet]) -> [Packet] { p }
    func sample(_ p: [Packet]) -> Packet? { p.first }
    func indexStep(_ f: inout WalkFlow<[Packet]>, _ work: inout [WalkFlow<[Packet]>], index: ChainIndex, rules: [CompiledRule]) -> Bool { false }
}
