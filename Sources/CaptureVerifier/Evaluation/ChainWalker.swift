import IstioCapture
import NetfilterModel
import Synchronization

/// The base chains a packet meets, in order. Locally generated packets meet the OUTPUT hook; inbound packets
/// the PREROUTING hook; a `.loopback` stage hands a locally generated packet that left on `lo` back to the
/// receive side (PREROUTING sees it again, nat does not: the connection was NATed at OUTPUT). A `.hook` stage
/// stands for every base chain registered there, in priority order, across tables and backends; the walker
/// resolves it against the tables it has into `.table` stages.
public struct Pipeline: Hashable, Sendable, CustomStringConvertible {
    public enum Stage: Hashable, Sendable {
        /// Every base chain of the hook, lowest priority first.
        case hook(Hook)
        /// One base chain: a table and its chain at the hook.
        case table(TableName, ChainName)
        case loopback
    }
    public var stages: [Stage]
    public init(_ stages: [Stage]) { self.stages = stages }

    public static let localOutput = Pipeline([.hook(.output)])
    public static let inbound = Pipeline([.hook(.prerouting)])
    /// A locally generated packet out `lo`, then received back on `lo` (TPROXY's proxy-to-self path).
    public static let localOutputThenLoopback = Pipeline([.hook(.output), .loopback, .hook(.prerouting)])
    public static func single(_ table: TableName, _ hook: ChainName) -> Pipeline { Pipeline([.table(table, hook)]) }

    public var description: String {
        stages.map { s in
            switch s {
            case .hook(let h): h.chainName.rawValue
            case .table(let t, let c): "\(t) \(c)"
            case .loopback: "lo"
            }
        }.joined(separator: " → ")
    }
}

/// Limits that stop a malformed dump (jump cycles, absurd nesting) from running away: past them a branch ends
/// with the `.loop` verdict, which the obligations report as a finding (docs/robustness.md).
enum EvaluationLimits {
    static let maxCallDepth = 64
    static let maxSteps = 4096
}

/// A rule ready to walk: its conditions, the interpretation's compiled form of them, and its effect's text.
struct CompiledRule: Sendable {
    var conditions: [Condition]
    /// The symbolic form: the rule matches the union of these disjoint cubes (unused by the concrete walk).
    var cubes: [Cube] = []
    /// What iptaudit cannot evaluate in the rule; when not empty the rule matches only under an assumption.
    var unknown: [String]
    /// The target as a step names an effect or NAT verdict ("DNAT --to-destination ..."), rendered once.
    var effect: String?
    /// The rule's target, kept apart so the walk does not copy whole rules.
    var target: Target
    /// A jump or goto to a chain the table does not have (only possible in a dump), found once.
    var dangling = false

    init(_ rule: Rule, conditions: [Condition], family: Family) {
        self.conditions = conditions
        target = rule.target
        unknown = conditions.compactMap(\.unevaluated)
        switch rule.target {
        case .dnat, .snat, .masquerade, .mark, .connmark, .ct, .log, .nflog:
            effect = String(SaveSyntax.targetText(rule.target, family: family).drop { $0 == " " }.dropFirst(3))
        default:
            effect = nil
        }
    }
}

/// What the walk needs of one chain.
struct WalkChain: Sendable {
    var rules: [CompiledRule]
    var index: ChainIndex?
    var isBuiltin: Bool
}

/// The chains of a walker's tables, each compiled the first time it is asked for; shared by the walkers built
/// on it (`compiledBy`), and safe to ask from several threads.
final class CompiledChains: Sendable {
    let tables: [TableName: ChainNumbering]
    private let compile: @Sendable (Rule, ChainNumbering) -> CompiledRule
    private let index: @Sendable ([CompiledRule]) -> ChainIndex?
    /// By table, by chain number.
    private let done = Mutex<[TableName: [Int: WalkChain]]>([:])

    init(tables: [TableName: ChainNumbering], compile: @escaping @Sendable (Rule, ChainNumbering) -> CompiledRule,
         index: @escaping @Sendable ([CompiledRule]) -> ChainIndex?) {
        self.tables = tables
        self.compile = compile
        self.index = index
    }

    /// Whether a walk has needed this chain yet.
    func isCompiled(_ table: TableName, _ name: ChainName) -> Bool {
        guard let n = tables[table]?.number(name) else { return false }
        return done.withLock { $0[table]?[n] != nil }
    }

    func chain(_ table: TableName, _ name: ChainName) -> WalkChain? {
        guard let numbering = tables[table], let n = numbering.number(name) else { return nil }
        if let c = done.withLock({ $0[table]?[n] }) { return c }
        let chain = numbering.table.chains[n]
        let rules = chain.rules.map { compile($0, numbering) }
        let c = WalkChain(rules: rules, index: index(rules), isBuiltin: chain.isBuiltin)
        done.withLock { $0[table, default: [:]][n] = c }
        return c
    }
}

/// How a walk follows a rule whose condition (or target) iptaudit cannot evaluate.
enum UnknownDecision: Sendable {
    /// Both ways, each branch recording its assumption (the symbolic walk).
    case both
    /// As the caller assumed (a concrete replay).
    case matches, doesNotMatch
}

/// Why a stage of the pipeline evaluated nothing (the tracer says so).
enum StageSkip: Sendable {
    /// `CT --notrack` in raw: nat never sees the packet.
    case untracked
    /// nat sees only a connection's first packet.
    case notNew(ConntrackState)
    /// No such table is loaded.
    case noTable
}

/// What a recording walk saw, for the tracer's rule-by-rule explanation.
enum WalkEvent: Sendable {
    /// A rule's conditions were evaluated on the packet as it was there.
    case rule(table: TableName, chain: ChainName, number: Int, matched: Bool, packet: Packet)
    case stageSkipped(table: TableName, hook: ChainName, why: StageSkip, packet: Packet)
    /// The packet was handed back on `lo`.
    case loopback(packet: Packet)
}

/// What stays with a branch across chains and tables.
struct WalkCarry: Sendable {
    var path: [TraceStep] = []
    var ctZone: UInt16?
    /// A CT rule already attached a template: later CT rules do nothing (the first one wins).
    var ctTemplate = false
    var notrack = false
    /// Where on `path` the rule that made the packet untracked stands (it, not a verdict, decides that nat is
    /// skipped).
    var notrackStep: Int?
    var assumptions: [Assumption] = []
    var verdict: Verdict = .policy(.accept)
    /// The branch entered a chain its check judges (`Relevance.entering`): it is never dropped.
    var judged = false
    /// Filled only by a recording walk, in order, interleaved with `path`.
    var events: [(pathCount: Int, event: WalkEvent)] = []
}

/// One branch inside a table: its packets, where it is, and its call stack.
struct WalkFlow<Packets: Sendable>: Sendable {
    struct Frame: Sendable {
        var chain: ChainName
        var index: Int
    }
    var packets: Packets
    var chain: ChainName
    var index: Int
    var stack: [Frame] = []
    var carry: WalkCarry
    /// Merge the set's boxes once it holds more than this many (long chains split off a piece per rule).
    var compactAt = 16
    /// Per indexed chain the flow was split for, the only rules of that chain its packets can match.
    var relevant: [(chain: ChainName, rules: [Int])] = []
}

/// An interpretation of rules over packets: a set of packets (symbolic) or one packet (concrete). The walker
/// owns the netfilter semantics; the domain only says which packets a rule takes and how effects change them.
protocol WalkDomain: Sendable {
    associatedtype Packets: Sendable
    var family: Family { get }
    /// Record every rule evaluated (`WalkCarry.events`), for explaining a walk.
    var records: Bool { get }
    func compile(_ rule: Rule, conditions: [Condition]) -> CompiledRule
    func index(_ rules: [CompiledRule]) -> ChainIndex?
    func isEmpty(_ p: Packets) -> Bool
    /// The packets whose evaluable conditions hold, and the rest.
    func split(_ p: Packets, by rule: CompiledRule, compactAt: inout Int) -> (matched: Packets, rest: Packets)
    /// How a rule with a condition (or a target) iptaudit cannot evaluate is followed.
    func decide(_ table: TableName, _ position: RulePosition, _ what: [String]) -> UnknownDecision
    func mapMark(_ p: Packets, _ transform: (UInt32) -> UInt32) -> Packets
    func mapConnmark(_ p: Packets, _ c: ConnmarkTarget) -> Packets
    /// Locally generated packets that left on `lo`, and the others.
    func splitLoopback(_ p: Packets) -> (viaLo: Packets, elsewhere: Packets)
    func receivedOnLoopback(_ p: Packets) -> Packets
    /// The first packets of connections (what nat sees), and the others.
    func splitNew(_ p: Packets) -> (new: Packets, other: Packets)
    /// The packets as the walk starts with them.
    func prepare(_ p: Packets) -> Packets
    /// The packet a recording walk describes.
    func sample(_ p: Packets) -> Packet?
    /// What one rule step on these packets costs, for the run's `WalkBudget` (boxes split: the work grows with them).
    func weight(_ p: Packets) -> Int
    /// Moves a flow through an indexed chain without walking every rule; false when it did nothing.
    func indexStep(_ f: inout WalkFlow<Packets>, _ work: inout [WalkFlow<Packets>], index: ChainIndex, rules: [CompiledRule]) -> Bool
}

/// Walks packets through the tables as the kernel does — pipeline stages in order, each table from its hook
/// chain rule by rule, jumps, gotos, returns, policies, marks, conntrack templates — for any interpretation.
/// The symbolic evaluator and the concrete tracer are this walker over two domains.
struct ChainWalker<Domain: WalkDomain>: Sendable {
    let domain: Domain
    /// The tables, each with its chains numbered (a table name repeated counts as its last table).
    let tables: [TableName: ChainNumbering]
    /// Each chain compiled (and indexed) the first time a walk enters it: a node's nat table holds tens of
    /// thousands of kube-proxy chains that no check's walk reaches once it drops what it cannot judge.
    let compiled: CompiledChains
    /// Per hook, the base chains of every table, in the order the kernel runs them.
    let hooks: [Hook: [(table: TableName, chain: ChainName, registration: HookRegistration)]]
    /// The type of each of those base chains by table and chain, worked out once (the walk asks at every stage
    /// of every branch).
    let chainTypes: [[String]: HookRegistration.ChainType]
    /// The tables' call graphs and, per relevance, where a judged outcome can still come from.
    let reachability: ReachabilityCache

    init(domain: Domain, tables: [Table], indexing: Bool = true) {
        self.domain = domain
        let hooks = ChainWalker.hookOrder(tables.filter { $0.family == domain.family })
        self.hooks = hooks
        chainTypes = Dictionary(hooks.values.joined().map { ([$0.table.rawValue, $0.chain.rawValue], $0.registration.type) },
                                uniquingKeysWith: { a, _ in a })
        var numbered: [TableName: ChainNumbering] = [:]
        for t in tables where t.family == domain.family { numbered[t.name] = ChainNumbering(t) }
        self.tables = numbered
        reachability = ReachabilityCache(tables: numbered)
        let spelled = domain.records, family = domain.family
        compiled = CompiledChains(tables: numbered, compile: { rule, numbering in
            var r = domain.compile(rule, conditions: rule.conditions(family: family, spelled: spelled))
            switch r.target {
            case .jump(let target), .goto(let target): r.dangling = numbering.number(target) == nil
            default: break
            }
            return r
        }, index: { rules in indexing ? domain.index(rules) : nil })
    }

    /// A walker over another domain on rules `other` compiles: compiling a node's table is most of a walk's
    /// cost, and every domain but a recording one compiles a rule to the same conditions (a symbolic walker's
    /// cubes and indexes ride along unused: another domain's `indexStep` declines them).
    init<Other: WalkDomain>(domain: Domain, compiledBy other: ChainWalker<Other>) {
        precondition(!domain.records && !other.domain.records, "a recording walk compiles conditions with their spelling")
        self.domain = domain
        tables = other.tables
        compiled = other.compiled
        hooks = other.hooks
        chainTypes = other.chainTypes
        reachability = other.reachability
    }

    /// The index of a chain, if it is long and selective enough to have one (compiling the chain if need be).
    func index(_ table: TableName, _ chain: ChainName) -> ChainIndex? { compiled.chain(table, chain)?.index }

    /// The base chains at each hook in the kernel's order: by priority. At equal priority the kernel runs the
    /// chain registered last first, and no read shows registration order: Istio's tables are put last among
    /// equals, so a chain of another table at Istio's priority is assumed to run first (what a finding must
    /// assume; the next re-registration could make it so). iptables' raw, mangle and nat are always there (an
    /// absent table is walked as "not loaded"); chains after destination NAT that are not nat chains are left
    /// out: they cannot change where a connection goes.
    static func hookOrder(_ tables: [Table]) -> [Hook: [(table: TableName, chain: ChainName, registration: HookRegistration)]] {
        var out: [Hook: [(table: TableName, chain: ChainName, registration: HookRegistration, istio: Bool, rank: Int)]] = [:]
        let istio = Set(tables.filter { $0.hasIstioChains || IstioLayout.isNativeIstioTable($0.name) }.map(\.name))
        for hook in [Hook.prerouting, .output] {
            for (rank, name) in [TableName.raw, .mangle, .nat].enumerated() {
                if let r = HookRegistration.iptables(table: name, chain: hook.chainName) {
                    out[hook, default: []].append((name, hook.chainName, r, istio.contains(name), rank))
                }
            }
        }
        for (rank, t) in tables.enumerated() {
            for (chain, r) in t.baseChains(at: .prerouting) + t.baseChains(at: .output) {
                guard r.priority <= HookRegistration.natDestinationPriority || r.type == .nat else { continue }
                if out[r.hook]?.contains(where: { $0.table == t.name && $0.chain == chain }) == true { continue }
                out[r.hook, default: []].append((t.name, chain, r, istio.contains(t.name), 100 + rank))
            }
        }
        return out.mapValues { list in
            list.sorted { a, b in
                (a.registration.priority, a.istio ? 1 : 0, a.rank) < (b.registration.priority, b.istio ? 1 : 0, b.rank)
            }.map { ($0.table, $0.chain, $0.registration) }
        }
    }

    /// The order the walk assumes where no read can tell: base chains of loaded tables that the resolved pipeline
    /// walks at the same hook and priority, which the kernel runs latest registration first.
    func orderAssumptions(_ pipeline: Pipeline) -> [AssumedOrder] {
        let walked = Set(resolve(pipeline).stages.compactMap { s -> String? in
            if case .table(let t, let c) = s { "\(t) \(c)" } else { nil }
        })
        var seen: Set<Hook> = []
        var out: [AssumedOrder] = []
        for case .hook(let h) in pipeline.stages where seen.insert(h).inserted {
            let present = (hooks[h] ?? []).filter { tables[$0.table] != nil && walked.contains("\($0.table) \($0.chain)") }
            for priority in Set(present.map(\.registration.priority)).sorted() {
                let tied = present.filter { $0.registration.priority == priority }.map { "\($0.table) \($0.chain)" }
                if tied.count > 1 { out.append(AssumedOrder(hook: h.chainName, priority: priority, order: tied)) }
            }
        }
        return out
    }

    /// The pipeline with each hook replaced by its base chains; after a loopback hop nat chains are left out
    /// (the connection got its binding, possibly a null one, when it first went through nat).
    func resolve(_ pipeline: Pipeline) -> Pipeline {
        var stages: [Pipeline.Stage] = []
        var natDone = false
        for s in pipeline.stages {
            switch s {
            case .hook(let h):
                for b in hooks[h] ?? [] where !(natDone && b.registration.type == .nat) { stages.append(.table(b.table, b.chain)) }
            case .loopback:
                natDone = true
                stages.append(.loopback)
            case .table:
                stages.append(s)
            }
        }
        return Pipeline(stages)
    }

    /// Whether a stage's chain is a nat chain (by its registration, or iptables' nat table when absent).
    func isNat(_ table: TableName, _ chain: ChainName) -> Bool {
        chainTypes[[table.rawValue, chain.rawValue]].map { $0 == .nat } ?? (table == .nat)
    }

    /// Every way the packets go through the pipeline, with the state each branch left with; with a relevance,
    /// only the branches whose outcomes it admits (the others are dropped as soon as that is certain).
    func walk(_ packets: Domain.Packets, pipeline unresolved: Pipeline, carry start: WalkCarry = WalkCarry(),
              relevance: Relevance = .all) -> [(Domain.Packets, WalkCarry)] {
        let pipeline = resolve(unresolved)
        let reach: Reachability? = switch relevance {
        case .captured, .entering: reachability.reachability(relevance)
        case .all, .notEntering: nil
        }
        // Per stage: whether it or a later one leads somewhere judged.
        var stageLeads = [Bool](repeating: false, count: pipeline.stages.count + 1)
        for i in pipeline.stages.indices.reversed() {
            var here = false
            if case .table(let t, let c) = pipeline.stages[i] { here = reach?.stage(t, c) ?? false }
            stageLeads[i] = here || stageLeads[i + 1]
        }
        var outcomes: [(Domain.Packets, WalkCarry)] = []
        var work: [(Domain.Packets, WalkCarry, Int)] = [(domain.prepare(packets), start, 0)]
        while let (s, carry, stage) = work.popLast() {
            if domain.isEmpty(s) { continue }
            guard stage < pipeline.stages.count, carry.verdict.continues || stage == 0 else {
                outcomes.append((s, carry))
                continue
            }
            if reach != nil, !carry.judged, !stageLeads[stage] { continue }
            switch pipeline.stages[stage] {
            case .loopback:
                let (viaLo, elsewhere) = domain.splitLoopback(s)
                if !domain.isEmpty(elsewhere) { outcomes.append((elsewhere, carry)) }
                guard !domain.isEmpty(viaLo) else { continue }
                var c = carry
                c.path.append(TraceStep(table: .raw, chain: .prerouting, action: .loopback))
                let received = domain.receivedOnLoopback(viaLo)
                record(&c, received) { .loopback(packet: $0) }
                work.append((received, c, stage + 1))
            case .hook:
                // Resolved above.
                work.append((s, carry, stage + 1))
            case .table(let table, let hook):
                var input = s
                if isNat(table, hook) {
                    if carry.notrack {
                        var c = carry
                        c.verdict = .untracked
                        record(&c, s) { .stageSkipped(table: table, hook: hook, why: .untracked, packet: $0) }
                        work.append((s, c, stage + 1))
                        continue
                    }
                    let (new, other) = domain.splitNew(s)
                    if !domain.isEmpty(other) {
                        var c = carry
                        record(&c, other) { .stageSkipped(table: table, hook: hook, why: .notNew($0.state), packet: $0) }
                        work.append((other, c, stage + 1))
                    }
                    input = new
                }
                let pruning = Pruning(relevance: relevance, reach: reach, laterStagesLead: stageLeads[stage + 1])
                for (out, c) in walkTable(input, table: table, hook: hook, carry: carry, pruning: pruning) {
                    work.append((out, c, stage + 1))
                }
            }
        }
        return outcomes
    }

    private func record(_ c: inout WalkCarry, _ p: Domain.Packets, _ event: (Packet) -> WalkEvent) {
        guard domain.records, let packet = domain.sample(p) else { return }
        c.events.append((c.path.count, event(packet)))
    }

    /// What a walk of one table needs to drop branches no outcome of which its check could judge.
    struct Pruning {
        var relevance: Relevance = .all
        var reach: Reachability?
        var laterStagesLead = false

        /// Entering a chain the check names: true when every outcome from here passes (`.notEntering`); marks the
        /// branch judged when its outcomes are the ones judged (`.entering`).
        func passesOnEntering(_ table: TableName, _ chain: ChainName, _ carry: inout WalkCarry) -> Bool {
            switch relevance {
            case .notEntering(let chains): return chains.contains(TableChain(table: table, chain: chain))
            case .entering(let chains): if chains.contains(TableChain(table: table, chain: chain)) { carry.judged = true }
            case .all, .captured: break
            }
            return false
        }

        /// Whether a branch that just jumped or went to a chain is dropped.
        func drops(_ f: inout WalkFlow<Domain.Packets>, table: TableName) -> Bool {
            if passesOnEntering(table, f.chain, &f.carry) { return true }
            guard let reach, !f.carry.judged, !laterStagesLead, !reach.ahead(table, f.chain, from: f.index) else { return false }
            return !f.stack.contains { reach.ahead(table, $0.chain, from: $0.index) }
        }
    }

    /// Walks one table from its hook chain; returns each subset with the verdict and state it left with.
    func walkTable(_ set: Domain.Packets, table name: TableName, hook: ChainName, carry: WalkCarry,
                   pruning: Pruning = Pruning()) -> [(Domain.Packets, WalkCarry)] {
        guard !domain.isEmpty(set) else { return [] }
        guard let numbering = tables[name] else {
            // No such table: nothing is installed there, the packet passes.
            var c = carry
            c.verdict = .policy(.accept)
            record(&c, set) { .stageSkipped(table: name, hook: hook, why: .noTable, packet: $0) }
            return [(set, c)]
        }
        var results: [(Domain.Packets, WalkCarry)] = []
        var start = carry
        start.path.append(TraceStep(table: name, chain: hook, action: .enter))
        // Entering the hook chain is entering a chain, for a check that names it.
        if pruning.passesOnEntering(name, hook, &start) { return [] }
        let hookChain = numbering.chain(hook)
        let hookPolicy = hookChain?.policy ?? .accept
        guard hookChain != nil else {
            start.path.append(TraceStep(table: name, chain: hook, action: .policy(.accept)))
            start.verdict = .policy(.accept)
            return [(set, start)]
        }
        var work = [WalkFlow(packets: set, chain: hook, index: 0, carry: start)]
        // The current chain's lookups, redone only when the walk changes chain (not three hash lookups per rule).
        var cachedName: ChainName?
        var chainExists = false
        var chainIsBuiltin = false
        var compiledRules: [CompiledRule] = []
        var chainIndex: ChainIndex?

        func finish(_ s: Domain.Packets, _ c: WalkCarry, _ verdict: Verdict) {
            var c = c
            c.verdict = verdict
            results.append((s, c))
        }
        /// Leaves the current chain: back to the caller, or to the hook's policy.
        func leave(_ f: inout WalkFlow<Domain.Packets>) -> Bool {
            if let frame = f.stack.popLast() {
                f.chain = frame.chain
                f.index = frame.index
                return true
            }
            f.carry.path.append(TraceStep(table: name, chain: hook, action: .policy(hookPolicy)))
            finish(f.packets, f.carry, .policy(hookPolicy))
            return false
        }

        let budget = WalkBudget.current
        while var f = work.popLast() {
            flowLoop: while !domain.isEmpty(f.packets) {
                // Out of budget: the run is void (its command reports that), so what the walk has is enough.
                if let budget, !budget.take(domain.weight(f.packets)) { return results }
                if f.carry.path.count > EvaluationLimits.maxSteps {
                    finish(f.packets, f.carry, .loop)
                    break
                }
                if cachedName != f.chain {
                    cachedName = f.chain
                    let chain = compiled.chain(name, f.chain)
                    chainExists = chain != nil
                    chainIsBuiltin = chain?.isBuiltin ?? false
                    compiledRules = chain?.rules ?? []
                    chainIndex = chain?.index
                }
                if f.index >= compiledRules.count {
                    if chainIsBuiltin, f.chain == hook || f.stack.isEmpty {
                        f.carry.path.append(TraceStep(table: name, chain: hook, action: .policy(hookPolicy)))
                        finish(f.packets, f.carry, .policy(hookPolicy))
                        break
                    }
                    f.carry.path.append(TraceStep(table: name, chain: f.chain, action: .fallOff))
                    if !leave(&f) { break }
                    continue
                }
                guard chainExists else { break }
                if let index = chainIndex, domain.indexStep(&f, &work, index: index, rules: compiledRules) { continue }
                // Fields are read from the array in place: copying a whole CompiledRule per step retained all of it.
                let ri = f.index
                let ruleTarget = compiledRules[ri].target
                let number = f.index + 1
                let position = RulePosition(chain: f.chain, number: number)
                let (matched, rest) = domain.split(f.packets, by: compiledRules[ri], compactAt: &f.compactAt)
                if domain.records {
                    if !domain.isEmpty(rest), let p = domain.sample(rest) {
                        // A rule that did not match is explained; one that matched is explained with its step.
                        f.carry.events.append((f.carry.path.count, .rule(table: name, chain: f.chain, number: number, matched: false, packet: p)))
                    }
                }

                if domain.isEmpty(matched) {
                    // Nothing matched: the flow itself goes on at the next rule (no copy of it).
                    guard !domain.isEmpty(rest) else { break }
                    f.packets = rest
                    f.index += 1
                    continue
                }
                // What does not match goes on to the next rule.
                var next = f
                next.packets = rest
                next.index += 1
                var current = f
                current.packets = matched
                if !compiledRules[ri].unknown.isEmpty, !domain.isEmpty(matched) {
                    // Conditions iptaudit cannot evaluate: follow each way they may be decided.
                    let decision = domain.decide(name, position, compiledRules[ri].unknown)
                    if decision == .both {
                        var skipped = current
                        skipped.index += 1
                        skipped.carry.assumptions.append(Assumption(table: name, position: position, what: compiledRules[ri].unknown, matched: false))
                        work.append(skipped)
                    }
                    let matches = decision != .doesNotMatch
                    current.carry.assumptions.append(Assumption(table: name, position: position, what: compiledRules[ri].unknown, matched: matches))
                    if !matches {
                        // Assumed not to match: the whole branch goes on at the next rule.
                        if !domain.isEmpty(rest) { work.append(next) }
                        f = current
                        f.index += 1
                        if domain.records, let p = domain.sample(f.packets) {
                            f.carry.events.append((f.carry.path.count, .rule(table: name, chain: position.chain, number: number, matched: false, packet: p)))
                        }
                        continue
                    }
                }
                if !domain.isEmpty(rest) { work.append(next) }
                guard !domain.isEmpty(matched) else { break }
                f = current
                if domain.records, let p = domain.sample(f.packets) {
                    f.carry.events.append((f.carry.path.count, .rule(table: name, chain: f.chain, number: number, matched: true, packet: p)))
                }
                let step = { (action: TraceStep.Action) in TraceStep(table: name, chain: f.chain, ruleNumber: number, action: action) }
                switch ruleTarget {
                case .continue:
                    f.index += 1
                case .accept: f.carry.path.append(step(.verdict(.accept))); finish(f.packets, f.carry, .accept); break flowLoop
                case .drop: f.carry.path.append(step(.verdict(.drop))); finish(f.packets, f.carry, .drop); break flowLoop
                case .reject: f.carry.path.append(step(.verdict(.reject))); finish(f.packets, f.carry, .reject); break flowLoop
                case .queue: f.carry.path.append(step(.verdict(.queue))); finish(f.packets, f.carry, .queue); break flowLoop
                case .redirect(let r):
                    let v = Verdict.redirect(ports: r.ports)
                    f.carry.path.append(step(.verdict(v)))
                    finish(f.packets, f.carry, v)
                    break flowLoop
                case .dnat, .snat, .masquerade:
                    let v = Verdict.nat(compiledRules[ri].effect ?? "")
                    f.carry.path.append(step(.verdict(v)))
                    finish(f.packets, f.carry, v)
                    break flowLoop
                case .tproxy(let tp):
                    let v = Verdict.tproxy(port: tp.port, markValue: tp.markValue, markMask: tp.markMask)
                    f.carry.path.append(step(.verdict(v)))
                    finish(domain.mapMark(f.packets) { ($0 & ~tp.markMask) ^ tp.markValue }, f.carry, v)
                    break flowLoop
                case .return:
                    f.carry.path.append(step(.return))
                    if !leave(&f) { break flowLoop }
                case .jump(let target), .goto(let target):
                    let isGoto: Bool = if case .goto = ruleTarget { true } else { false }
                    guard !compiledRules[ri].dangling else {
                        f.carry.path.append(step(.danglingJump(target)))
                        f.index += 1
                        continue
                    }
                    f.carry.path.append(step(isGoto ? .goto(target) : .jump(target)))
                    let onStack = f.stack.contains { $0.chain == target } || target == f.chain
                    if f.stack.count >= EvaluationLimits.maxCallDepth || (onStack && !isGoto) {
                        finish(f.packets, f.carry, .loop)
                        break flowLoop
                    }
                    if !isGoto { f.stack.append(WalkFlow.Frame(chain: f.chain, index: f.index + 1)) }
                    f.chain = target
                    f.index = 0
                    if pruning.drops(&f, table: name) { break flowLoop }
                case .mark(let m):
                    f.carry.path.append(step(.effect(compiledRules[ri].effect ?? "")))
                    f.packets = domain.mapMark(f.packets) { m.apply(to: $0) }
                    f.index += 1
                case .connmark(let c):
                    f.carry.path.append(step(.effect(compiledRules[ri].effect ?? "")))
                    f.packets = domain.mapConnmark(f.packets, c)
                    f.index += 1
                case .ct(let ct):
                    f.carry.path.append(step(.effect(compiledRules[ri].effect ?? "")))
                    if !f.carry.ctTemplate {
                        f.carry.ctTemplate = true
                        if ct.notrack {
                            f.carry.notrack = true
                            f.carry.notrackStep = f.carry.path.count - 1
                        } else {
                            f.carry.ctZone = ct.zone
                        }
                    }
                    f.index += 1
                case .log, .nflog:
                    f.carry.path.append(step(.effect(compiledRules[ri].effect ?? "")))
                    f.index += 1
                case .unrecognized(let u):
                    // A target iptaudit does not decode: it may end the walk or not.
                    let what = ["target \(u.name)"]
                    let decision = domain.decide(name, position, what)
                    if decision == .both {
                        var goesOn = f
                        goesOn.index += 1
                        goesOn.carry.assumptions.append(Assumption(table: name, position: position, what: what, matched: false))
                        work.append(goesOn)
                    }
                    let ends = decision != .doesNotMatch
                    f.carry.assumptions.append(Assumption(table: name, position: position, what: what, matched: ends))
                    if ends {
                        f.carry.path.append(step(.verdict(.unrecognized(u.name))))
                        finish(f.packets, f.carry, .unrecognized(u.name))
                        break flowLoop
                    }
                    f.index += 1
                }
            }
        }
        return results
    }
}
