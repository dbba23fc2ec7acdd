import IstioCapture
import NetfilterModel

/// What one obligation found in one family.
struct CheckOutput {
    var findings: [Finding] = []
    var proven: [String] = []
    var notes: [String] = []
    /// Set when the obligation does not apply to this family (and why).
    var notApplicable: String?

    static func notApplicable(_ reason: String) -> CheckOutput {
        var o = CheckOutput()
        o.notApplicable = reason
        return o
    }
}

/// A judgement on one outcome: what is wrong with it.
struct Violation {
    var kind: FindingKind
    var severity: Severity
    /// Completes "<witness> …", e.g. "is not redirected to Envoy's outbound listener (15001)".
    var problem: String
    var fix: String?
    /// The rule to blame when it is not the one that decided (an owner rule naming the wrong id).
    var at: TraceStep? = nil
    /// The packets that make it matter, when not all of the outcome's do: the witness is one of them, so it shows
    /// the consequence (a packet that escapes capture), not a packet Istio would not have captured either.
    var focus: PacketSet? = nil
}

extension FamilyContext {
    var familyName: String { family == .ipv4 ? "IPv4" : "IPv6" }

    /// "reaches REDIRECT --to-ports 15002 at nat ISTIO_REDIRECT#1".
    func ending(_ o: Outcome) -> String {
        if let s = o.decidingStep {
            switch s.action {
            case .verdict(let v): return "it reaches \(v) at \(s.table) \(s.chain)#\(s.ruleNumber ?? 0)"
            case .return: return "it is returned by \(s.table) \(s.chain)#\(s.ruleNumber ?? 0) and ends at \(o.verdict)"
            case .jump(let c), .goto(let c): return "it falls out of \(c) (entered from \(s.table) \(s.chain)#\(s.ruleNumber ?? 0)) and ends at \(o.verdict)"
            case .effect where o.verdict == .untracked:
                return "\(s.table) \(s.chain)#\(s.ruleNumber ?? 0) takes it out of connection tracking, so nat never sees it"
            default: break
            }
        }
        if let p = o.path.last { return "it ends at \(o.verdict) of \(p.table) \(p.chain)" }
        return "no table holds a rule for it (\(o.verdict))"
    }

    /// Evaluates a packet class and reports every outcome the judge rejects: one finding per deciding rule and
    /// kind, with the most realistic witness of that group. `only` declares the outcomes the judge can report at
    /// all (the judge must pass every other one itself: RelevanceTests hold each to that), so the walk need not
    /// follow the others.
    func check(_ cls: PacketSet, _ pipeline: Pipeline, obligation: ObligationID, only relevance: Relevance = .all,
               _ judge: (Outcome) -> Violation?) -> [Finding] {
        // The evaluation already holds only the outcomes the relevance admits: the judge sees no other.
        check(evaluate(cls, pipeline, options.followsEveryBranch ? .all : relevance), pipeline, obligation: obligation, judge)
    }

    /// Chains of this family's layout as a relevance names them (`nat` by default, as `entered` takes them).
    func chains(_ chains: [(ChainName, TableName)]) -> Set<TableChain> {
        Set(chains.map { c, t in TableChain(table: layoutTable(t), chain: layout.chain(c)) })
    }

    func check(_ outcomes: [Outcome], _ pipeline: Pipeline, obligation: ObligationID,
               _ judge: (Outcome) -> Violation?) -> [Finding] {
        struct Key: Hashable {
            var kind: FindingKind
            var table: TableName?
            var position: RulePosition?
            var verdict: Verdict
        }
        var groups: [Key: (Violation, [Outcome])] = [:]
        var order: [Key] = []
        for o in outcomes {
            guard var v = judge(o) else { continue }
            let step = o.decidingStep
            if v.kind != .foreignRule, v.kind != .ownerMatchGap, let stranger = strangerOwnerStep(o), !isForeign(stranger),
               let text = ruleText(at: stranger) {
                v = Violation(kind: .ownerMatchGap, severity: v.severity,
                              problem: v.problem + ", because `\(text)` names an owner that is not a configured proxy id",
                              fix: Fix.owner, at: stranger, focus: v.focus)
            } else if v.kind == .ownerMatchGap, let marker = foreignMarkStep(o) {
                // Istio's exemption by mark held; another component's rule rewrote the mark before it was tested.
                v = Violation(kind: .foreignRule, severity: v.severity,
                              problem: v.problem + ", because a rule Istio did not install rewrites its mark first",
                              fix: "Remove that rule or make it leave the proxy's mark bits alone, and find what installs it "
                                + "(another CNI plugin, an init container, a node agent).",
                              at: marker, focus: v.focus)
            } else if let step, isForeign(step), v.kind != .foreignRule {
                let untracked = o.verdict == .untracked
                v = Violation(kind: .foreignRule, severity: v.severity,
                              problem: v.problem + ", because a rule Istio did not install decides it first",
                              fix: (untracked ? "Remove that rule (no rule in nat can capture an untracked packet)"
                                              : "Remove that rule or move it below Istio's jump")
                                + ", and find what installs it (another CNI plugin, an init container, a node agent).",
                              focus: v.focus)
            }
            let blamed = v.at ?? step
            let key = Key(kind: v.kind, table: blamed?.table, position: blamed?.position, verdict: o.verdict)
            if groups[key] == nil { order.append(key) }
            groups[key, default: (v, [])].1.append(o)
        }
        return order.compactMap { key in
            guard let (v, outcomes) = groups[key] else { return nil }
            let best = outcomes.map { ($0, witnessPacket($0, within: v.focus)) }.max { a, b in
                realism(a.1) < realism(b.1)
            }
            guard let (outcome, packet) = best else { return nil }
            return finding(v, outcome: outcome, packet: packet, pipeline: pipeline, obligation: obligation)
        }
    }

    func realism(_ p: Packet) -> Int {
        var s = 0
        if p.protocolNumber == ProtocolMatch.tcp { s += 2 }
        if [9080, 8080, 80, 443].contains(p.destinationPort) { s += 1 }
        if p.outInterface == "eth0" || p.inInterface == "eth0" { s += 1 }
        if p.uid == nil || p.uid == p.gid { s += 1 }
        // To a peer out a real interface; to the pod itself over lo or inbound (as `representative` prefers).
        let toPeer = p.outInterface != nil && p.outInterface != "lo"
        if toPeer ? p.destination != Packet.podAddress(family) && !p.destination.isLoopback : p.destination == Packet.podAddress(family) { s += 1 }
        return s
    }

    func finding(_ v: Violation, outcome: Outcome, packet: Packet, pipeline: Pipeline, obligation: ObligationID) -> Finding {
        var severity = v.severity
        var message = "\(packet) \(v.problem); \(ending(outcome))."
        if outcome.dependsOnUnknownMatch {
            let what = outcome.assumptions.map(\.description).joined(separator: "; ")
            message += " This depends on matches iptaudit cannot evaluate (\(what))."
            if severity == .error { severity = .warning }
        }
        let step = v.at ?? outcome.decidingStep
        let location = step ?? outcome.path.last { if case .policy = $0.action { true } else { false } }
        let witness = Witness(packet: packet, text: packet.description, verdict: outcome.verdict, pipeline: evaluator.resolve(pipeline),
                              assumptions: outcome.assumptions)
        var f = Finding(kind: v.kind, severity: severity, family: family, table: location?.table, chain: location?.chain,
                        ruleNumber: step?.ruleNumber, ruleText: step.flatMap(ruleText(at:)), witness: witness,
                        path: outcome.path, message: message, fix: v.fix, obligation: obligation)
        f.ruleHandle = step.flatMap { rule(at: $0)?.native?.handle }
        return f
    }

    /// A finding about the rules themselves (no packet shows it).
    func structural(_ kind: FindingKind, _ severity: Severity, table: TableName?, chain: ChainName?, rule: Int? = nil,
                    message: String, fix: String?, obligation: ObligationID) -> Finding {
        var text: String?
        if let rule, let t = table, let c = chain, let r = self.table(t)?.chain(c)?.rules[safe: rule - 1] {
            text = SaveSyntax.render(r, in: c, family: family)
        }
        return Finding(kind: kind, severity: severity, family: family, table: table, chain: chain, ruleNumber: rule,
                       ruleText: text, message: message, fix: fix, obligation: obligation)
    }

    /// The first rule on the path that tests a socket owner the configuration does not name (not a proxy id,
    /// not an owner group): the owner rules were written for another identity.
    func strangerOwnerStep(_ o: Outcome) -> TraceStep? {
        let uids = Set(proxyUIDs + [realIdentity?.uid].compactMap { $0 })
        let gids = Set(proxyGIDs + ownerGroupsExcluded + (ownerGroupsIncluded ?? []) + [realIdentity?.gid].compactMap { $0 })
        func foreign(_ r: IDRangeMatch?, _ known: Set<UInt32>) -> Bool {
            guard let r else { return false }
            return !(r.range.count == 1 && known.contains(r.range.lowerBound))
        }
        for step in o.path where step.ruleNumber != nil {
            guard let rule = rule(at: step) else { continue }
            for case .owner(let m) in rule.matches where foreign(m.uid, uids) || foreign(m.gid, gids) { return step }
        }
        return nil
    }

    // MARK: which rules are Istio's

    /// The first rule on the path that another component installed and that sets a mark or connmark.
    func foreignMarkStep(_ o: Outcome) -> TraceStep? {
        o.path.first { s in
            guard case .effect = s.action, let rule = rule(at: s) else { return false }
            switch rule.target {
            case .mark, .connmark: return isForeign(s)
            default: return false
            }
        }
    }

    /// Whether a step's rule is one Istio would not have installed, in a place where it pre-empts Istio:
    /// a built-in chain or a non-Istio user chain.
    func isForeign(_ step: TraceStep) -> Bool {
        guard let rule = rule(at: step) else { return false }
        return !isIstioRule(rule, table: step.table, chain: step.chain)
    }

    func isIstioRule(_ rule: Rule, table: TableName, chain: ChainName) -> Bool {
        if layout.isIstioChain(chain, in: table) { return true }
        if let c = rule.target.chainReference, layout.isIstioChain(c, in: table) { return true }
        if expectedKeys.contains(ExpectedRuleKey(table: table, chain: chain, rule: rule.normalized)) { return true }
        let interfaces = Set(config.excludeInterfaces + config.rerouteVirtualInterfaces)
        let ruleInterfaces = [rule.inInterface, rule.outInterface].compactMap { $0 }
        let onlyInterface = rule.source == nil && rule.destination == nil && rule.protocol == nil && rule.matches.isEmpty
        switch rule.target {
        case .return where onlyInterface && !ruleInterfaces.isEmpty && ruleInterfaces.allSatisfy({ !$0.inverted && interfaces.contains($0.name) }):
            return true
        case .log, .nflog, .continue:
            return true
        case .redirect(let r) where table == layout.nat && r.ports == IstioPort.dnsProxy.rawValue...IstioPort.dnsProxy.rawValue && rule.mentionsPort53:
            return true
        case .return where table == layout.nat && chain == layout.hookChain(.output) && rule.mentionsPort53 && rule.hasOwnerMatch:
            return true
        case .ct(let ct) where table == layout.raw && !ct.notrack && ct.helper == nil && ct.zone != 0 && rule.mentionsPort53:
            // Istio's raw rules put DNS (port 53) in conntrack zones; it never untracks a packet or attaches a helper.
            return true
        case .connmark where table == layout.mangle:
            return true
        case .mark(let m) where table == layout.mangle && (m.value == IstioNames.selfCallMark || m.value == config.tproxyMark):
            return true
        case .return where table == layout.mangle && rule.matches.contains(where: { if case .mark = $0 { true } else { false } }):
            return true
        case .drop where table == layout.mangle && rule.matchesInvalidState:
            return true
        default:
            return false
        }
    }
}

struct ExpectedRuleKey: Hashable {
    var table: TableName
    var chain: ChainName
    var rule: Rule
}

extension Rule {
    /// The rule as compared with Istio's expectations: no counters, no comments.
    var normalized: Rule {
        var r = withoutCounters
        r.matches = r.matches.filter { if case .comment = $0 { false } else { true } }
        return r
    }

    var mentionsPort53: Bool {
        matches.contains { m in
            switch m {
            case .tcp(let t): t.destinationPort?.range == IstioNames.dnsPort...IstioNames.dnsPort
            case .udp(let u): u.destinationPort?.range == IstioNames.dnsPort...IstioNames.dnsPort
            default: false
            }
        }
    }
    var hasOwnerMatch: Bool { matches.contains { if case .owner = $0 { true } else { false } } }
    var matchesInvalidState: Bool {
        matches.contains { m in
            switch m {
            case .conntrack(let c): c.states.map { $0.value.contains(.invalid) && !$0.inverted } ?? false
            case .state(let s): s.states.contains(.invalid) && !s.inverted
            default: false
            }
        }
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { indices.contains(i) ? self[i] : nil }
}

extension FamilyContext {
    /// Said where `PolicyRouting.routeTablesRead` is nil: the routing came from a bundle written before rules were
    /// recorded with their actions, selectors and consulted tables, so a rule before the mark's may go unseen.
    static let routingRecordedWithoutActions = "the policy routing was captured by an iptaudit that did not record the ip rules' "
        + "actions (goto, blackhole, ...), all their selectors or the routes of the tables they look up: whether a rule before the "
        + "mark's takes the marked replies was not checked (capture the pod again)"

    /// One finding per `ip rule` that keeps marked replies from the table that routes them back to the proxy
    /// (`PolicyRouting.preemptions`): an error when it takes every reply, a warning when it may take some.
    func preemptionFindings(_ preemptions: [PolicyRouting.Preemption], of rule: PolicyRouting.RoutingRule, kind: FindingKind,
                            marked mark: String, on connections: String, to proxy: String, table: String, fix: String,
                            obligation: ObligationID) -> [Finding] {
        preemptions.map { p in
            let what: String
            var severity: Severity = p.reach == .all ? .error : .warning
            switch p.effect {
            case .routes(let routes):
                let listed = routes.prefix(3).map { "`\($0.text)`" }.joined(separator: ", ") + (routes.count > 3 ? ", …" : "")
                what = "those to destinations table \(p.rule.table) routes (\(listed)) leave by that route instead of going back to \(proxy)"
            case .dropped(let route):
                let how = route.map { "`\($0.text)` in table \(p.rule.table)" } ?? p.rule.action?.rawValue ?? "dropped"
                what = "they are dropped (\(how)) instead of going back to \(proxy)"
            case .skips(let to):
                what = "it sends them past it (goto \(to)), to the tables after it, instead of back to \(proxy)"
            case .routesNotRead:
                severity = .warning
                what = "the routes of table \(p.rule.table) were not captured (a bundle from before they were), so whether it routes them elsewhere is not known"
            }
            let takes = p.effect == .routesNotRead ? "may take" : p.reach == .all ? "takes" : "may take some of"
            return structural(kind, severity, table: nil, chain: nil,
                message: "The ip rule `\(p.rule.text)` is consulted before `\(rule.text)` (\(familyName)) and \(takes) "
                    + "the replies marked \(mark) on \(connections): \(what).",
                fix: "Give that rule a priority after \(rule.priority ?? 0), or have it skip packets with mark \(mark) "
                    + "(`ip rule add not fwmark \(mark) …`), so that the replies reach table \(table). " + fix,
                obligation: obligation)
        }
    }
}
