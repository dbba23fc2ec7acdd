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
/// `verify` cost seconds. The evaluation keeps only the admitted outcomes, and each judge passes every other one
/// itself (RelevanceTests compare whole reports both ways), so the findings are those of the full walk.
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
    /// Per table, its call graph and, for the chains that lead somewhere judged, per rule i whether rules i...
    /// do (one more entry, false, past the end); a chain not listed leads nowhere judged.
    let ahead: [TableName: (graph: ChainGraph, flags: [Int: [Bool]])]

    init(_ relevance: Relevance, graphs: [TableName: ChainGraph]) {
        self.relevance = relevance
        var ahead: [TableName: (graph: ChainGraph, flags: [Int: [Bool]])] = [:]
        for (table, graph) in graphs {
            let chains = graph.table.chains
            var targets = Set<Int>()
            if case .entering(let named) = relevance {
                for c in named where c.table == table { if let n = graph.number(c.chain) { targets.insert(n) } }
            }
            let captures: Bool = if case .captured = relevance { true } else { false }
            func direct(_ chain: Int, _ k: Int) -> Bool {
                let t = graph.target(place: chain, rule: k)
                if t >= 0 { return targets.contains(t) }
                guard captures else { return false }
                switch chains[chain].rules[k].target {
                case .redirect, .tproxy: return true
                default: return false
                }
            }
            // Chains that lead somewhere judged: those with such a rule, then their callers until nothing changes.
            // A chain a dump repeats is walked as its first copy, so only first copies start it; the graph counts a
            // repeat's jumps as the first copy's, which can only keep a branch the walk could have dropped.
            var leads = [Bool](repeating: false, count: chains.count)
            var pending: [Int] = []
            for n in chains.indices where graph.numbering.numberAt[n] == n && chains[n].rules.indices.contains(where: { direct(n, $0) }) {
                leads[n] = true
                pending.append(n)
            }
            while let c = pending.popLast() {
                for caller in graph.callers(of: c) where !leads[caller] {
                    leads[caller] = true
                    pending.append(caller)
                }
            }
            var flags: [Int: [Bool]] = [:]
            for n in chains.indices where leads[n] {
                var f = [Bool](repeating: false, count: chains[n].rules.count + 1)
                for k in chains[n].rules.indices.reversed() {
                    let t = graph.target(place: n, rule: k)
                    f[k] = direct(n, k) || (t >= 0 && leads[t]) || f[k + 1]
                }
                flags[n] = f
            }
            ahead[table] = (graph, flags)
        }
        self.ahead = ahead
    }

    func ahead(_ table: TableName, _ chain: ChainName, from index: Int) -> Bool {
        guard let t = ahead[table], let n = t.graph.number(chain), let flags = t.flags[n] else { return false }
        return flags[min(max(index, 0), flags.count - 1)]
    }

    /// Whether a stage (a base chain, entered at its start) leads somewhere judged.
    func stage(_ table: TableName, _ chain: ChainName) -> Bool {
        if case .entering(let chains) = relevance, chains.contains(TableChain(table: table, chain: chain)) { return true }
        return ahead(table, chain, from: 0)
    }
}

/// The call graph of each of a walker's tables, built on first use and shared by every relevance's reachability
/// and by the checks that read the jump structure (chain hygiene): building one for a node's nat table is hashing
/// every chain name and jump target once, which is worth doing once.
final class ReachabilityCache: Sendable {
    private struct State {
        var graphs: [TableName: ChainGraph]?
        var known: [Relevance: Reachability] = [:]
    }
    private let tables: [TableName: ChainNumbering]
    private let state = Mutex(State())

    /// `tables`: the walker's, with the chains it numbered.
    init(tables: [TableName: ChainNumbering]) { self.tables = tables }

    /// Every table's graph.
    var graphs: [TableName: ChainGraph] {
        if let g = state.withLock({ $0.graphs }) { return g }
        let graphs = tables.mapValues(ChainGraph.init)
        return state.withLock { state in
            if state.graphs == nil { state.graphs = graphs }
            return state.graphs!
        }
    }

    func reachability(_ relevance: Relevance) -> Reachability {
        if let r = state.withLock({ $0.known[relevance] }) { return r }
        let r = Reachability(relevance, graphs: graphs)
        state.withLock { $0.known[relevance] = r }
        return r
    }
}
