import NetfilterModel

extension PacketTracer {
    /// Replays a packet with the concrete walker, recording every rule it evaluates, and lays the walk out step
    /// by step: each rule with its conditions checked on the packet as it was there.
    func explain(_ packet: Packet, pipeline: Pipeline, assumptions: [Assumption], given: Set<PacketField>,
                 outcomeSet: PacketSet?, space: PacketSpace?) -> TracedOutcome {
        let (trace, events) = ConcreteEvaluator(family: family, tables: tables)
            .walk(packet, pipeline: pipeline, assumptions: assumptions, recording: true)
        var steps: [ExplainedStep] = []
        var explainer = ConditionExplainer(given: given, outcomeSet: outcomeSet, space: space)
        let byName = Dictionary(tables.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func rule(_ table: TableName, _ chain: ChainName, _ number: Int) -> Rule? {
            guard let rules = byName[table]?.chain(chain)?.rules, number >= 1, number <= rules.count else { return nil }
            return rules[number - 1]
        }
        /// The packet the last matched rule was checked on, waiting for its step.
        var matchedChecks: [ConditionCheck] = []

        func emit(_ event: WalkEvent) {
            switch event {
            case .rule(let table, let chain, let number, let matched, let p):
                guard let r = rule(table, chain, number) else { return }
                let checks = explainer.checks(r, p, family: family)
                if matched {
                    matchedChecks = checks
                } else {
                    steps.append(ExplainedStep(kind: .notMatched, table: table, chain: chain, ruleNumber: number,
                                               ruleText: r.native?.text ?? SaveSyntax.render(r, in: chain, family: family), checks: checks))
                }
            case .stageSkipped(let table, let hook, let why, _):
                let reason = switch why {
                case .untracked: "untracked (CT --notrack in raw): nat never sees it"
                case .notNew(let state): "ctstate \(state.rawValue): nat sees only the first packet of a connection"
                case .noTable: "no \(table) table is loaded: nothing to evaluate"
                }
                steps.append(ExplainedStep(kind: .skipped, table: table, chain: hook, checks: [], reason: reason))
            case .loopback:
                steps.append(ExplainedStep(kind: .loopback, table: .raw, chain: .prerouting, action: nil, checks: [],
                                           reason: "routed over lo: received back by this host"))
                // Back on lo the interfaces are known (in lo, no output interface) whatever the input had.
                explainer.given.formUnion([.inInterface, .outInterface])
            }
        }

        var next = 0
        for (k, step) in trace.path.enumerated() {
            while next < events.count, events[next].pathCount <= k {
                emit(events[next].event)
                next += 1
            }
            switch step.action {
            case .enter:
                steps.append(ExplainedStep(kind: .enter, table: step.table, chain: step.chain, checks: []))
            case .loopback:
                break
            case .policy(let p):
                let present = byName[step.table]?.chain(step.chain) != nil
                steps.append(ExplainedStep(kind: .policy, table: step.table, chain: step.chain, action: "policy \(p.rawValue)", checks: [],
                                           reason: present ? "end of the built-in chain" : "no \(step.chain) chain in \(step.table)"))
            case .fallOff:
                steps.append(ExplainedStep(kind: .fallOff, table: step.table, chain: step.chain, action: "back to the caller", checks: [],
                                           reason: "end of \(step.chain)"))
            case .jump, .goto, .return, .effect, .verdict, .danglingJump:
                guard let n = step.ruleNumber, let r = rule(step.table, step.chain, n) else { continue }
                let action = switch step.action {
                case .jump(let c): "-j \(c)"
                case .goto(let c): "-g \(c)"
                case .return: "RETURN"
                case .effect(let e): e
                case .verdict(let v): v.description
                case .danglingJump(let c): "-j \(c) (no such chain: ignored)"
                default: ""
                }
                steps.append(ExplainedStep(kind: .matched, table: step.table, chain: step.chain, ruleNumber: n,
                                           ruleText: r.native?.text ?? SaveSyntax.render(r, in: step.chain, family: family), action: action,
                                           checks: matchedChecks))
                matchedChecks = []
            }
        }
        while next < events.count {
            emit(events[next].event)
            next += 1
        }
        return TracedOutcome(condition: [], packet: packet, verdict: trace.verdict, path: trace.path, steps: steps,
                             assumptions: trace.assumptions, disposition: Disposition(action: "", port: nil, summary: ""))
    }
}

/// Checks each condition of a rule against a packet and says how much of the packet's value is known: for a
/// field the user left unknown the value is only an example, unless every packet of the outcome agrees.
struct ConditionExplainer {
    var given: Set<PacketField>
    let outcomeSet: PacketSet?
    let space: PacketSpace?

    /// The atoms of a field over the whole outcome (nil for a given field or a concrete replay).
    func outcomeAtoms(_ f: PacketField) -> AtomSet? {
        guard !given.contains(f), let outcomeSet, let space else { return nil }
        return outcomeSet.boxes.reduce(space.empty(f)) { $0 | $1.input(f) }
    }

    /// Whether the value of the field is the same for the whole outcome (then it can be stated).
    func exact(_ f: PacketField) -> Bool {
        if given.contains(f) { return true }
        guard let atoms = outcomeAtoms(f), let space, atoms.count == 1, let a = atoms.first else { return false }
        if let r = space.interval(f, a) { return r.lowerBound == r.upperBound }
        return true
    }

    /// Whether every packet of the outcome decides the condition the same way.
    func uniform(_ c: Condition) -> Bool {
        guard let f = field(c), let atoms = outcomeAtoms(f), let space, let (_, inside) = c.atoms(in: space) else { return false }
        // `atoms(in:)` already applies the negation; uniform either way.
        return (atoms & inside) == atoms || (atoms & inside).isEmpty
    }

    func field(_ c: Condition) -> PacketField? {
        switch c.test {
        case .ranges(let f, _), .interface(let f, _), .mark(let f, _): f
        case .states: .ctState
        case .eitherPort, .notEvaluated: nil
        }
    }

    func valueText(_ f: PacketField, _ p: Packet) -> String? {
        switch f {
        case .l4Protocol: SaveSyntax.protocolName(p.protocolNumber)
        case .source: p.source.description
        case .destination: p.destination.description
        case .sourcePort: "\(p.sourcePort)"
        case .destinationPort: "\(p.destinationPort)"
        case .inInterface: p.inInterface ?? "none"
        case .outInterface: p.outInterface ?? "none"
        case .uid: p.uid.map { "\($0)" }
        case .gid: p.gid.map { "\($0)" }
        case .mark: "0x" + String(p.mark, radix: 16)
        case .connmark: "0x" + String(p.connmark, radix: 16)
        case .ctState: p.state.rawValue
        }
    }

    func checks(_ rule: Rule, _ p: Packet, family: Family) -> [ConditionCheck] {
        rule.conditions(family: family).map { c in
            let f = field(c)
            let inside = c.inside(for: p)
            var holds: Bool? = c.holds(for: p)
            var knowledge: ConditionCheck.Knowledge = f.map { exact($0) } ?? true ? .exact : .example
            switch c.kind {
            case .address, .port, .identity, .interface:
                if knowledge == .example, uniform(c) { knowledge = .uniform }
            case .protocol:
                knowledge = .exact
            case .state where c.unevaluated != nil && !inside, .notEvaluated:
                holds = nil
            default:
                break
            }
            var check = ConditionCheck(condition: c.spelling, holds: holds, kind: ConditionCheck.Kind(rawValue: c.kind.rawValue) ?? .notEvaluated,
                                       field: f, inverted: c.negated, wanted: c.wanted, value: f.flatMap { valueText($0, p) },
                                       inside: inside, knowledge: knowledge)
            if case .eitherPort = c.test {
                check.field = .sourcePort
                check.value = "\(p.sourcePort)"
                check.knowledge = exact(.sourcePort) ? .exact : .example
                check.otherValue = "\(p.destinationPort)"
                check.otherKnowledge = exact(.destinationPort) ? .exact : .example
            }
            return check
        }
    }
}

extension Condition {
    /// Whether the rule negates the test (`!`), wherever the match keeps the flag.
    var negated: Bool {
        switch test {
        case .interface(_, let m): m.inverted
        case .mark(_, let m): m.inverted
        default: inverted
        }
    }
}
