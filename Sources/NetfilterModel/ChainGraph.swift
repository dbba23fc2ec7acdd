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

/// A table's chains by name, each numbered by its first place in the table (a dump may repeat a chain; the
/// repeat's rules count as the first one's). Worked out once per table and shared by what finds chains by name
/// (the walk, the call graph): a node's nat table has tens of thousands of chains, and each numbering hashes
/// every name.
public struct ChainNumbering: Sendable {
    public let table: Table
    private let numbers: [ChainName: Int]
    /// By place in the table, the number of the chain there: its own place, or its first copy's.
    public let numberAt: [Int]

    public init(_ table: Table) {
        self.table = table
        var numbers: [ChainName: Int] = [:]
        numbers.reserveCapacity(table.chains.count)
        var numberAt: [Int] = []
        numberAt.reserveCapacity(table.chains.count)
        for (i, c) in table.chains.enumerated() {
            // One hash per chain; a repeat (rare) puts the first copy's number back.
            if let first = numbers.updateValue(i, forKey: c.name) {
                numbers[c.name] = first
                numberAt.append(first)
            } else {
                numberAt.append(i)
            }
        }
        self.numbers = numbers
        self.numberAt = numberAt
    }

    /// A chain's number: its first place in the table.
    public func number(_ chain: ChainName) -> Int? { numbers[chain] }

    /// The chain a name stands for (its first copy).
    public func chain(_ name: ChainName) -> Chain? { numbers[name].map { table.chains[$0] } }
}

/// The jump structure of one table: who references each chain, what each hook reaches,
/// jumps to chains that do not exist, and jump cycles (which the kernel would refuse, but a dump may hold).
/// Chains are numbered once and the graph is worked out on the numbers: a node's nat table has tens of
/// thousands of chains, and hashing their names at every step was most of the cost.
public struct ChainGraph: Sendable {
    public var table: Table { numbering.table }
    /// The chains by name.
    public let numbering: ChainNumbering
    /// Jumps whose target chain is not in the table.
    public let danglingJumps: [RulePosition]
    /// Each cycle once, as the chain names along it.
    public let cycles: [[ChainName]]
    /// By chain number, the rules that jump or go to it.
    private let referrersByNumber: [[RulePosition]]
    /// By place in the table, per rule, the number of the chain it jumps or goes to (-1 for any other rule, or a
    /// jump to no chain): what a walk's pruning follows without looking names up again.
    public let targets: [[Int]]
    /// By chain number, the chains with a rule that jumps or goes to it, each once.
    public let callers: [[Int]]
    /// The built-in chains in the table's order (a handful), and per built-in chain which chains it reaches.
    private let builtins: [ChainName]
    private let reaches: [[Bool]]

    public init(_ table: Table) { self.init(ChainNumbering(table)) }

    public init(_ numbering: ChainNumbering) {
        self.numbering = numbering
        let chains = numbering.table.chains
        let numbers = numbering
        var referrers = [[RulePosition]](repeating: [], count: chains.count)
        var edges = [[Int]](repeating: [], count: chains.count)
        // The last chain that recorded an edge to each target: an edge is kept once however many rules repeat it.
        var callers = [[Int]](repeating: [], count: chains.count)
        var targets = [[Int]](repeating: [], count: chains.count)
        var lastSource = [Int](repeating: -1, count: chains.count)
        var dangling: [RulePosition] = []
        for (place, chain) in chains.enumerated() {
            // A dump may repeat a chain: its rules count as the first one's.
            let from = numbers.numberAt[place]
            var ruleTargets = [Int](repeating: -1, count: chain.rules.count)
            for (i, rule) in chain.rules.enumerated() {
                guard let target = rule.target.chainReference else { continue }
                let pos = RulePosition(chain: chain.name, number: i + 1)
                if let to = numbers.number(target) {
                    ruleTargets[i] = to
                    referrers[to].append(pos)
                    if lastSource[to] != from {
                        lastSource[to] = from
                        edges[from].append(to)
                        callers[to].append(from)
                    }
                } else {
                    dangling.append(pos)
                }
            }
            targets[place] = ruleTargets
        }
        var builtins: [ChainName] = []
        var reaches: [[Bool]] = []
        for (i, chain) in chains.enumerated() where chain.isBuiltin {
            var seen = [Bool](repeating: false, count: chains.count)
            seen[i] = true
            var stack = [i]
            while let c = stack.popLast() {
                for next in edges[c] where !seen[next] {
                    seen[next] = true
                    stack.append(next)
                }
            }
            builtins.append(chain.name)
            reaches.append(seen)
        }
        referrersByNumber = referrers
        self.targets = targets
        self.callers = callers
        self.builtins = builtins
        self.reaches = reaches
        self.danglingJumps = dangling
        self.cycles = ChainGraph.findCycles(count: chains.count, roots: chains.indices.filter { numbers.numberAt[$0] == $0 }, edges: edges)
            .map { $0.map { chains[$0].name } }
    }

    /// A chain's number: its first place in the table.
    public func number(_ chain: ChainName) -> Int? { numbering.number(chain) }

    /// The rules that jump or go to a chain, in the table's order.
    public func referrers(_ chain: ChainName) -> [RulePosition] { number(chain).map { referrersByNumber[$0] } ?? [] }

    /// Whether `chain` can be entered from the built-in `hook` chain.
    public func isReachable(_ chain: ChainName, from hook: ChainName) -> Bool {
        guard let c = number(chain), let h = builtins.firstIndex(of: hook) else { return false }
        return reaches[h][c]
    }

    /// Built-in chains from which `chain` can be entered, in the table's order.
    public func hooks(reaching chain: ChainName) -> [ChainName] {
        guard let c = number(chain) else { return [] }
        return builtins.indices.filter { reaches[$0][c] }.map { builtins[$0] }
    }

    /// Whether no built-in chain reaches this user chain.
    public func isUnreachable(_ chain: ChainName) -> Bool {
        guard let c = number(chain), !table.chains[c].isBuiltin else { return false }
        return !reaches.contains { $0[c] }
    }

    /// User chains that no built-in chain reaches.
    public var unreachableChains: [ChainName] {
        table.chains.indices.filter { i in numbering.numberAt[i] == i && !table.chains[i].isBuiltin && !reaches.contains { $0[i] } }
            .map { table.chains[$0].name }
    }

    private static func findCycles(count: Int, roots: [Int], edges: [[Int]]) -> [[Int]] {
        // Tarjan's strongly connected components; a component with more than one chain, or a self-jump, is a cycle.
        // An explicit stack of (chain, next edge) frames instead of recursion: a dump may chain 50,000 user
        // chains one into the next, far deeper than the thread's stack.
        var index = 0
        var indices = [Int](repeating: -1, count: count)
        var low = [Int](repeating: 0, count: count)
        var onStack = [Bool](repeating: false, count: count)
        var stack: [Int] = []
        var result: [[Int]] = []
        var frames: [(chain: Int, edge: Int)] = []

        func enter(_ v: Int) {
            indices[v] = index
            low[v] = index
            index += 1
            stack.append(v)
            onStack[v] = true
            frames.append((v, 0))
        }
        for root in roots where indices[root] < 0 {
            enter(root)
            while let (v, edge) = frames.last {
                let out = edges[v]
                if edge < out.count {
                    frames[frames.count - 1].edge += 1
                    let w = out[edge]
                    if indices[w] < 0 {
                        enter(w)
                    } else if onStack[w] {
                        low[v] = min(low[v], indices[w])
                    }
                    continue
                }
                frames.removeLast()
                if let parent = frames.last?.chain { low[parent] = min(low[parent], low[v]) }
                if low[v] == indices[v] {
                    var component: [Int] = []
                    while let w = stack.popLast() {
                        onStack[w] = false
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
