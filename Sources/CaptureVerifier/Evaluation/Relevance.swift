import NetfilterModel
import Synchronization

/// A chain of one table, as a check names it.
struct TableChain: Hashable, Sendable {
    var table: TableName
    var chain: ChainName
}

/// Which outcomes a check can judge at all. Declared beside the judge so the walk can drop a branch as soon as
/// none of its outcomes could be judged: on a node-sized nat table nearly every branch ends in kube-proxy's
/// chains, which neither capture nor enter Istio's, and following each service's branches there is what made
/// `verify` cost seconds. `check` applies the declaration to the judge as well, so a dropped branch is only ever
/// one the judge would have passed, and the findings are those of the full walk.
enum Relevance: Hashable, Sendable {
    /// Every outcome.
    case all
    /// Only outcomes delivered to a local port (REDIRECT or TPROXY).
    case captured
    /// Only outcomes whose path enters one of these chains.
    case entering(Set<TableChain>)
    /// Every outcome but those whose path entered one of these chains (they pass).
    case notEntering(Set<TableChain>)

    func admits(_ o: Outcome) -> Bool {
        switch self {
        case .all: true
        case .captured: o.verdict.capturePort != nil
        case .entering(let chains): chains.contains { o.entered($0.chain, in: $0.table) }
        case .notEntering(let chains): !chains.contains { o.entered($0.chain, in: $0.table) }
        }
    }
}

/// For one relevance, where in the tables a judged outcome can still come from: per chain, per rule position,
/// whether a rule at or after it (through any jump or goto) captures or enters a named chain.
struct Reachability: Sendable {
    let relevance: Relevance
    /// `ahead[table][chain][i]`: rules i... of the chain lead somewhere judged; one more entry (false) past the end.
    let ahead: [TableName: [ChainName: [Bool]]]

    init(_ relevance: Relevance, compiled: [TableName: [ChainName: [CompiledRule]]]) {
        self.relevance = relevance
        let targets: Set<TableChain>
        switch relevance {
        case .entering(let chains): targets = chains
        default: targets = []
        }
        var ahead: [TableName: [ChainName: [Bool]]] = [:]
        for (table, chains) in compiled {
            func direct(_ r: CompiledRule) -> Bool {
                switch r.target {
                case .redirect, .tproxy: if case .captured = relevance { return true }
                case .jump(let c), .goto(let c): return !r.dangling && targets.contains(TableChain(table: table, chain: c))
                default: break
                }
                return false
            }
            // Chains that lead somewhere judged: those with such a rule, then their callers until nothing changes.
            var callers: [ChainName: [ChainName]] = [:]
            var leads = Set<ChainName>()
            for (name, rules) in chains {
                for r in rules {
                    if direct(r) { leads.insert(name) }
                    switch r.target {
                    case .jump(let c), .goto(let c) where !r.dangling: callers[c, default: []].append(name)
                    default: break
                    }
                }
            }
            var pending = Array(leads)
            while let c = pending.popLast() {
                for caller in callers[c] ?? [] where leads.insert(caller).inserted { pending.append(caller) }
            }
            var byChain: [ChainName: [Bool]] = [:]
            for (name, rules) in chains {
                var flags = [Bool](repeating: false, count: rules.count + 1)
                guard leads.contains(name) else { byChain[name] = flags; continue }
                for i in rules.indices.reversed() {
                    var here = direct(rules[i])
                    switch rules[i].target {
                    case .jump(let c), .goto(let c) where !rules[i].dangling: here = here || leads.contains(c)
                    default: break
                    }
                    flags[i] = here || flags[i + 1]
                }
                byChain[name] = flags
            }
            ahead[table] = byChain
        }
        self.ahead = ahead
    }

    func ahead(_ table: TableName, _ chain: ChainName, from index: Int) -> Bool {
        guard let flags = ahead[table]?[chain] else { return false }
        return flags[min(max(index, 0), flags.count - 1)]
    }

    /// Whether a stage (a base chain, entered at its start) leads somewhere judged.
    func stage(_ table: TableName, _ chain: ChainName) -> Bool {
        if case .entering(let chains) = relevance, chains.contains(TableChain(table: table, chain: chain)) { return true }
        return ahead(table, chain, from: 0)
    }
}

/// Reachability worked out once per relevance and kept for the evaluator's life (each is one pass over every rule).
final class ReachabilityCache: Sendable {
    private let known = Mutex<[Relevance: Reachability]>([:])

    func reachability(_ relevance: Relevance, compiled: [TableName: [ChainName: [CompiledRule]]]) -> Reachability {
        if let r = known.withLock({ $0[relevance] }) { return r }
        let r = Reachability(relevance, compiled: compiled)
        known.withLock { $0[relevance] = r }
        return r
    }
}
