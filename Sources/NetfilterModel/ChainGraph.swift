/// A rule's place: its chain and 1-based rule number, as `iptables -L --line-numbers` counts.
public struct RulePosition: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public var chain: ChainName
    public var number: Int
    public init(chain: ChainName, number: Int) {
        self.chain = chain
        self.number = number
    }
    public var description: String { "\(chain.rawValue)#\(number)" }
    public static func < (a: RulePosition, b: RulePosition) -> Bool { (a.chain, a.number) < (b.chain, b.number) }
}

/// The jump structure of one table: who references each chain, what each hook reaches,
/// jumps to chains that do not exist, and jump cycles (which the kernel would refuse, but a dump may hold).
public struct ChainGraph: Sendable {
    public let table: Table
    /// Rules that jump or go to each chain.
    public let referrers: [ChainName: [RulePosition]]
    /// For each built-in chain, every chain reachable from it (including itself).
    public let reachable: [ChainName: Set<ChainName>]
    /// Jumps whose target chain is not in the table.
    public let danglingJumps: [RulePosition]
    /// Each cycle once, as the chain names along it.
    public let cycles: [[ChainName]]
    /// The built-in chains in the table's order (a handful), so per-chain questions do not rescan every chain.
    private let builtins: [ChainName]

    public init(_ table: Table) {
        self.table = table
        let names = Set(table.chains.map(\.name))
        var referrers: [ChainName: [RulePosition]] = [:]
        var edges: [ChainName: [ChainName]] = [:]
        var dangling: [RulePosition] = []
        var edgeSet: Set<[ChainName]> = []
        for chain in table.chains {
            for (i, rule) in chain.rules.enumerated() {
                guard let target = rule.target.chainReference else { continue }
                let pos = RulePosition(chain: chain.name, number: i + 1)
                if names.contains(target) {
                    referrers[target, default: []].append(pos)
                    if edgeSet.insert([chain.name, target]).inserted { edges[chain.name, default: []].append(target) }
                } else {
                    dangling.append(pos)
                }
            }
        }
        var reachable: [ChainName: Set<ChainName>] = [:]
        for chain in table.chains where chain.isBuiltin {
            var seen: Set<ChainName> = [chain.name]
            var stack = [chain.name]
            while let c = stack.popLast() {
                for next in edges[c] ?? [] where seen.insert(next).inserted { stack.append(next) }
            }
            reachable[chain.name] = seen
        }
        self.builtins = table.chains.filter(\.isBuiltin).map(\.name)
        self.referrers = referrers
        self.reachable = reachable
        self.danglingJumps = dangling
        self.cycles = ChainGraph.findCycles(order: table.chains.map(\.name), edges: edges)
    }

    /// Whether `chain` can be entered from the built-in `hook` chain.
    public func isReachable(_ chain: ChainName, from hook: ChainName) -> Bool {
        reachable[hook]?.contains(chain) ?? false
    }

    /// Built-in chains from which `chain` can be entered, in the table's order.
    public func hooks(reaching chain: ChainName) -> [ChainName] {
        builtins.filter { isReachable(chain, from: $0) }
    }

    /// User chains that no built-in chain reaches.
    public var unreachableChains: [ChainName] {
        table.chains.filter { c in !c.isBuiltin && !reachable.values.contains { $0.contains(c.name) } }.map(\.name)
    }

    private static func findCycles(order: [ChainName], edges: [ChainName: [ChainName]]) -> [[ChainName]] {
        // Tarjan's strongly connected components; a component with more than one chain, or a self-jump, is a cycle.
        // An explicit stack of (chain, next edge) frames instead of recursion: a dump may chain 50,000 user
        // chains one into the next, far deeper than the thread's stack.
        var index = 0
        var indices: [ChainName: Int] = [:]
        var low: [ChainName: Int] = [:]
        var onStack: Set<ChainName> = []
        var stack: [ChainName] = []
        var result: [[ChainName]] = []
        var frames: [(chain: ChainName, edge: Int)] = []

        func enter(_ v: ChainName) {
            indices[v] = index
            low[v] = index
            index += 1
            stack.append(v)
            onStack.insert(v)
            frames.append((v, 0))
        }
        for root in order where indices[root] == nil {
            enter(root)
            while let (v, edge) = frames.last {
                let out = edges[v] ?? []
                if edge < out.count {
                    frames[frames.count - 1].edge += 1
                    let w = out[edge]
                    if indices[w] == nil {
                        enter(w)
                    } else if onStack.contains(w) {
                        low[v] = min(low[v]!, indices[w]!)
                    }
                    continue
                }
                frames.removeLast()
                if let parent = frames.last?.chain { low[parent] = min(low[parent]!, low[v]!) }
                if low[v] == indices[v] {
                    var component: [ChainName] = []
                    while let w = stack.popLast() {
                        onStack.remove(w)
                        component.append(w)
                        if w == v { break }
                    }
                    if component.count > 1 || out.contains(v) {
                        result.append(component.reversed())
                    }
                }
            }
        }
        return result
    }
}
