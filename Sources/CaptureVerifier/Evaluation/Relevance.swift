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

/// One table's jumps on numbered chains, worked out once per walker and shared by every relevance.
struct CallGraph: Sendable {
    let numbers: [ChainName: Int]
    /// Per chain, its rules (the table's own arrays, not copies).
    let rules: [[Rule]]
    /// Per chain, per rule: the chain it jumps or goes to (-1 for any other rule, or a jump to no chain).
    let targets: [[Int]]
    /// Per chain, the chains with a rule that jumps or goes to it.
    let callers: [[Int]]

    init(_ chains: [ChainName: Chain]) {
        var numbers: [ChainName: Int] = [:]
        numbers.reserveCapacity(chains.count)
        var rules: [[Rule]] = []
        rules.reserveCapacity(chains.count)
        for (name, chain) in chains {
            numbers[name] = rules.count
            rules.append(chain.rules)
        }
        var targets = [[Int]](repeating: [], count: rules.count)
        var callers = [[Int]](repeating: [], count: rules.count)
        for i in rules.indices {
            var t = [Int](repeating: -1, count: rules[i].count)
            for k in rules[i].indices {
                switch rules[i][k].target {
                case .jump(let c), .goto(let c):
                    if let n = numbers[c] {
                        t[k] = n
                        callers[n].append(i)
                    }
                default: break
                }
            }
            targets[i] = t
        }
        self.numbers = numbers
        self.rules = rules
        self.targets = targets
        self.callers = callers
    }
}

/// For one relevance, where in the tables a judged outcome can still come from: per chain, per rule position,
/// whether a rule at or after it (through any jump or goto) captures or enters a named chain.
struct Reachability: Sendable {
    let relevance: Relevance
    /// Per table, its call graph and, for the chains that lead somewhere judged, per rule i whether rules i...
    /// do (one more entry, false, past the end); a chain not listed leads nowhere judged.
    let ahead: [TableName: (graph: CallGraph, flags: [Int: [Bool]])]

    init(_ relevance: Relevance, graphs: [TableName: CallGraph]) {
        self.relevance = relevance
        var ahead: [TableName: (graph: CallGraph, flags: [Int: [Bool]])] = [:]
        for (table, graph) in graphs {
            var targets = Set<Int>()
            if case .entering(let named) = relevance {
                for c in named where c.table == table { if let n = graph.numbers[c.chain] { targets.insert(n) } }
            }
            let captures: Bool = if case .captured = relevance { true } else { false }
            func direct(_ chain: Int, _ k: Int) -> Bool {
                let t = graph.targets[chain][k]
                if t >= 0 { return targets.contains(t) }
                guard captures else { return false }
                switch graph.rules[chain][k].target {
                case .redirect, .tproxy: return true
                default: return false
                }
            }
            // Chains that lead somewhere judged: those with such a rule, then their callers until nothing changes.
            var leads = [Bool](repeating: false, count: graph.rules.count)
            var pending: [Int] = []
            for n in graph.rules.indices where graph.rules[n].indices.contains(where: { direct(n, $0) }) {
                leads[n] = true
                pending.append(n)
            }
            while let c = pending.popLast() {
                for caller in graph.callers[c] where !leads[caller] {
                    leads[caller] = true
                    pending.append(caller)
                }
            }
            var flags: [Int: [Bool]] = [:]
            for n in graph.rules.indices where leads[n] {
                var f = [Bool](repeating: false, count: graph.rules[n].count + 1)
                for k in graph.rules[n].indices.reversed() {
                    let t = graph.targets[n][k]
                    f[k] = direct(n, k) || (t >= 0 && leads[t]) || f[k + 1]
                }
                flags[n] = f
            }
            ahead[table] = (graph, flags)
        }
        self.ahead = ahead
    }

    func ahead(_ table: TableName, _ chain: ChainName, from index: Int) -> Bool {
        guard let t = ahead[table], let n = t.graph.numbers[chain], let flags = t.flags[n] else { return false }
        return flags[min(max(index, 0), flags.count - 1)]
    }

    /// Whether a stage (a base chain, entered at its start) leads somewhere judged.
    func stage(_ table: TableName, _ chain: ChainName) -> Bool {
        if case .entering(let chains) = relevance, chains.contains(TableChain(table: table, chain: chain)) { return true }
        return ahead(table, chain, from: 0)
    }
}

/// Reachability worked out once per relevance, on call graphs worked out once, kept for the evaluator's life.
final class ReachabilityCache: Sendable {
    private struct State {
        var graphs: [TableName: CallGraph]?
        var known: [Relevance: Reachability] = [:]
    }
    private let state = Mutex(State())

    func reachability(_ relevance: Relevance, chains: [TableName: [ChainName: Chain]]) -> Reachability {
        if let r = state.withLock({ $0.known[relevance] }) { return r }
        let graphs = state.withLock { $0.graphs } ?? chains.mapValues(CallGraph.init)
        let r = Reachability(relevance, graphs: graphs)
        state.withLock {
            $0.graphs = graphs
            $0.known[relevance] = r
        }
        return r
    }
}
