import NetfilterModel

/// Follows one concrete packet through the tables, rule by rule, with exact arithmetic on its fields —
/// the engine of `iptaudit trace`, and the independent check of every witness the symbolic evaluator reports.
///
/// Matches it cannot evaluate are decided by `assumptions` (keyed by table and rule); without one they are
/// taken not to match, and an unknown target is taken not to end the walk.
public struct ConcreteEvaluator: Sendable {
    public let family: Family
    let tables: [TableName: [ChainName: Chain]]

    public init(family: Family, tables: [Table]) {
        self.family = family
        var byName: [TableName: [ChainName: Chain]] = [:]
        for t in tables where t.family == family {
            var chains: [ChainName: Chain] = [:]
            for c in t.chains where chains[c.name] == nil { chains[c.name] = c }
            byName[t.name] = chains
        }
        self.tables = byName
    }

    public func trace(_ packet: Packet, table: TableName, hook: ChainName, assumptions: [Assumption] = []) -> Trace {
        trace(packet, pipeline: .single(table, hook), assumptions: assumptions)
    }

    public func trace(_ packet: Packet, pipeline: Pipeline, assumptions: [Assumption] = []) -> Trace {
        var state = WalkState(packet: packet, assumptionsGiven: assumptions)
        var verdict: Verdict = .policy(.accept)
        for (i, stage) in pipeline.stages.enumerated() {
            if i > 0, !verdict.continues { break }
            switch stage {
            case .loopback:
                guard state.packet.outInterface == "lo" else { return state.result(packet, verdict) }
                state.path.append(TraceStep(table: .raw, chain: .prerouting, action: .loopback))
                state.packet.inInterface = "lo"
                state.packet.outInterface = nil
            case .table(let name, let hook):
                if name == .nat {
                    if state.notrack {
                        verdict = .untracked
                        continue
                    }
                    if state.packet.state != .new { continue }
                }
                verdict = walk(name, hook, &state)
            }
        }
        return state.result(packet, verdict)
    }

    struct WalkState {
        var packet: Packet
        var assumptionsGiven: [Assumption]
        var path: [TraceStep] = []
        var ctZone: UInt16?
        var ctTemplate = false
        var notrack = false
        var assumptions: [Assumption] = []

        init(packet: Packet, assumptionsGiven: [Assumption]) {
            self.packet = packet
            self.assumptionsGiven = assumptionsGiven
        }

        func result(_ input: Packet, _ verdict: Verdict) -> Trace {
            Trace(packet: input, final: packet, verdict: verdict, path: path, ctZone: ctZone, assumptions: assumptions)
        }

        /// How an unknown condition at this rule is decided: as the caller assumed, else "does not hold".
        mutating func decide(_ table: TableName, _ position: RulePosition, _ what: [String]) -> Bool {
            let matched = assumptionsGiven.first { $0.table == table && $0.position == position && $0.what == what }?.matched ?? false
            assumptions.append(Assumption(table: table, position: position, what: what, matched: matched))
            return matched
        }
    }

    func walk(_ name: TableName, _ hook: ChainName, _ s: inout WalkState) -> Verdict {
        guard let table = tables[name] else { return .policy(.accept) }
        s.path.append(TraceStep(table: name, chain: hook, action: .enter))
        guard let hookChain = table[hook] else {
            s.path.append(TraceStep(table: name, chain: hook, action: .policy(.accept)))
            return .policy(.accept)
        }
        let policy = hookChain.policy ?? .accept
        var stack: [(ChainName, Int)] = []
        var chainName = hook
        var index = 0

        func policyVerdict(_ s: inout WalkState) -> Verdict {
            s.path.append(TraceStep(table: name, chain: hook, action: .policy(policy)))
            return .policy(policy)
        }

        while true {
            if s.path.count > EvaluationLimits.maxSteps { return .loop }
            let rules = table[chainName]?.rules ?? []
            if index >= rules.count {
                if chainName == hook { return policyVerdict(&s) }
                s.path.append(TraceStep(table: name, chain: chainName, action: .fallOff))
                guard let (c, i) = stack.popLast() else { return policyVerdict(&s) }
                chainName = c
                index = i
                continue
            }
            let rule = rules[index]
            let number = index + 1
            let position = RulePosition(chain: chainName, number: number)
            let (known, unknown) = ConcreteMatch.matches(rule, s.packet)
            var hit = known
            if known, !unknown.isEmpty { hit = s.decide(name, position, unknown) }
            guard hit else {
                index += 1
                continue
            }
            func step(_ a: TraceStep.Action) { s.path.append(TraceStep(table: name, chain: chainName, ruleNumber: number, action: a)) }
            switch rule.target {
            case .continue:
                index += 1
            case .accept: step(.verdict(.accept)); return .accept
            case .drop: step(.verdict(.drop)); return .drop
            case .reject: step(.verdict(.reject)); return .reject
            case .queue: step(.verdict(.queue)); return .queue
            case .redirect(let r):
                let v = Verdict.redirect(ports: r.ports)
                step(.verdict(v))
                return v
            case .dnat, .snat, .masquerade:
                let v = Verdict.nat(effectText(rule.target))
                step(.verdict(v))
                return v
            case .tproxy(let tp):
                let v = Verdict.tproxy(port: tp.port, markValue: tp.markValue, markMask: tp.markMask)
                step(.verdict(v))
                s.packet.mark = (s.packet.mark & ~tp.markMask) ^ tp.markValue
                return v
            case .return:
                step(.return)
                guard let (c, i) = stack.popLast() else { return policyVerdict(&s) }
                chainName = c
                index = i
            case .jump(let target), .goto(let target):
                let isGoto: Bool = if case .goto = rule.target { true } else { false }
                guard table[target] != nil else {
                    step(.danglingJump(target))
                    index += 1
                    continue
                }
                step(isGoto ? .goto(target) : .jump(target))
                let onStack = stack.contains { $0.0 == target } || target == chainName
                if stack.count >= EvaluationLimits.maxCallDepth || (onStack && !isGoto) { return .loop }
                if !isGoto { stack.append((chainName, index + 1)) }
                chainName = target
                index = 0
            case .mark(let m):
                step(.effect(effectText(rule.target)))
                s.packet.mark = m.apply(to: s.packet.mark)
                index += 1
            case .connmark(let c):
                step(.effect(effectText(rule.target)))
                (s.packet.mark, s.packet.connmark) = ConnmarkEffect.apply(c, mark: s.packet.mark, connmark: s.packet.connmark)
                index += 1
            case .ct(let ct):
                step(.effect(effectText(rule.target)))
                if !s.ctTemplate {
                    s.ctTemplate = true
                    if ct.notrack { s.notrack = true } else { s.ctZone = ct.zone }
                }
                index += 1
            case .log, .nflog:
                step(.effect(effectText(rule.target)))
                index += 1
            case .unrecognized(let u):
                if s.decide(name, position, ["target \(u.name)"]) {
                    step(.verdict(.unrecognized(u.name)))
                    return .unrecognized(u.name)
                }
                index += 1
            }
        }
    }

    func effectText(_ t: Target) -> String {
        String(SaveSyntax.targetText(t, family: family).drop { $0 == " " }.dropFirst(3))
    }
}
