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
/// Chains are numbered once and the graph is worked out on the numbers, in flat arrays (per chain, a range of
/// one list): a node's nat table has tens of thousands of chains, and hashing their names at every step, or
/// allocating and freeing a few small arrays per chain, was most of the cost.
public struct ChainGraph: Sendable {
    public var table: Table { numbering.table }
    /// The chains by name.
    public let numbering: ChainNumbering
    /// Jumps whose target chain is not in the table.
    public let danglingJumps: [RulePosition]
    /// Each cycle once, as the chain names along it.
    public let cycles: [[ChainName]]
    /// By place, where its rules start in `ruleTargets` (one more entry: the table's rule count).
    private let ruleStart: [Int]
    /// Every rule in the table's order: the number of the chain it jumps or goes to, or -1 (any other rule,
    /// or a jump to no chain).
    private let ruleTargets: [Int]
    /// By chain number, where its referrers start in `referrerPlaces`/`referrerRules` (table order).
    private let referrerStart: [Int]
    private let referrerPlaces: [Int]
    private let referrerRules: [Int]
    /// By chain number, where the chains it jumps to (`edgeStart`, `edgeList`) and the chains that jump to it
    /// (`callerStart`, `callerList`) start, each chain once per rule run that names it.
    private let edgeStart: [Int]
    private let edgeList: [Int]
    private let callerStart: [Int]
    private let callerList: [Int]
    /// The built-in chains in the table's order (a handful), and per built-in chain which chains it reaches.
    private let builtins: [ChainName]
    private let reaches: [[Bool]]

    public init(_ table: Table) { self.init(ChainNumbering(table)) }

    public init(_ numbering: ChainNumbering) {
        self.numbering = numbering
        let chains = numbering.table.chains
        let count = chains.count
        var ruleStart = [Int](repeating: 0, count: count + 1)
        var ruleTargets: [Int] = []
        ruleTargets.reserveCapacity(chains.reduce(0) { $0 + $1.rules.count })
        var referrerCount = [Int](repeating: 0, count: count + 1)
        var edges: [(from: Int, to: Int)] = []
        // The last chain that recorded an edge to each target: an edge is kept once however many rules repeat it.
        var lastSource = [Int](repeating: -1, count: count)
        var dangling: [RulePosition] = []
        for (place, chain) in chains.enumerated() {
            ruleStart[place] = ruleTargets.count
            // A dump may repeat a chain: its rules count as the first one's.
            let from = numbering.numberAt[place]
            for (i, rule) in chain.rules.enumerated() {
                guard let target = rule.target.chainReference else {
                    ruleTargets.append(-1)
                    continue
                }
                if let to = numbering.number(target) {
                    ruleTargets.append(to)
                    referrerCount[to] += 1
                    if lastSource[to] != from {
                        lastSource[to] = from
                        edges.append((from, to))
                    }
                } else {
                    ruleTargets.append(-1)
                    dangling.append(RulePosition(chain: chain.name, number: i + 1))
                }
            }
        }
        ruleStart[count] = ruleTargets.count

        /// Turns per-key counts into start offsets (one more entry: the total).
        func starts(_ counts: [Int]) -> [Int] {
            var starts = [Int](repeating: 0, count: counts.count)
            var sum = 0
            for k in 0..<(counts.count - 1) {
                starts[k] = sum
                sum += counts[k]
            }
            starts[counts.count - 1] = sum
            return starts
        }
        let referrerStart = starts(referrerCount)
        var referrerPlaces = [Int](repeating: 0, count: referrerStart[count])
        var referrerRules = [Int](repeating: 0, count: referrerStart[count])
        var next = referrerStart
        for place in 0..<count {
            for k in ruleStart[place]..<ruleStart[place + 1] where ruleTargets[k] >= 0 {
                let to = ruleTargets[k]
                referrerPlaces[next[to]] = place
                referrerRules[next[to]] = k - ruleStart[place]
                next[to] += 1
            }
        }
        var edgeCount = [Int](repeating: 0, count: count + 1)
        var callerCount = [Int](repeating: 0, count: count + 1)
        for e in edges {
            edgeCount[e.from] += 1
            callerCount[e.to] += 1
        }
        let edgeStart = starts(edgeCount), callerStart = starts(callerCount)
        var edgeList = [Int](repeating: 0, count: edges.count), callerList = [Int](repeating: 0, count: edges.count)
        var nextEdge = edgeStart, nextCaller = callerStart
        for e in edges {
            edgeList[nextEdge[e.from]] = e.to
            nextEdge[e.from] += 1
            callerList[nextCaller[e.to]] = e.from
            nextCaller[e.to] += 1
        }

        var builtins: [ChainName] = []
        var reaches: [[Bool]] = []
        for (i, chain) in chains.enumerated() where chain.isBuiltin {
            var seen = [Bool](repeating: false, count: count)
            seen[i] = true
            var stack = [i]
            while let c = stack.popLast() {
                for next in edgeList[edgeStart[c]..<edgeStart[c + 1]] where !seen[next] {
                    seen[next] = true
                    stack.append(next)
                }
            }
            builtins.append(chain.name)
            reaches.append(seen)
        }
        self.ruleStart = ruleStart
        self.ruleTargets = ruleTargets
        self.referrerStart = referrerStart
        self.referrerPlaces = referrerPlaces
        self.referrerRules = referrerRules
        self.edgeStart = edgeStart
        self.edgeList = edgeList
        self.callerStart = callerStart
        self.callerList = callerList
        self.builtins = builtins
        self.reaches = reaches
        self.danglingJumps = dangling
        self.cycles = ChainGraph.findCycles(count: count, roots: chains.indices.filter { numbering.numberAt[$0] == $0 },
                                            edgeStart: edgeStart, edgeList: edgeList)
            .map { $0.map { chains[$0].name } }
    }

    /// The number of the chain that rule `rule` (0-based) of the chain at `place` jumps or goes to; -1 for any
    /// other rule, or a jump to no chain.
    public func target(place: Int, rule: Int) -> Int {
        assert(rule >= 0 && ruleStart[place] + rule < ruleStart[place + 1], "rule \(rule) is not in the chain at \(place)")
        return ruleTargets[ruleStart[place] + rule]
    }

    /// The chains with a rule that jumps or goes to chain number `chain`.
    public func callers(of chain: Int) -> ArraySlice<Int> { callerList[callerStart[chain]..<callerStart[chain + 1]] }

    /// A chain's number: its first place in the table.
    public func number(_ chain: ChainName) -> Int? { numbering.number(chain) }

    /// The rules that jump or go to a chain, in the table's order.
    public func referrers(_ chain: ChainName) -> [RulePosition] {
        guard let n = number(chain) else { return [] }
        let chains = table.chains
        return (referrerStart[n]..<referrerStart[n + 1]).map {
            RulePosition(chain: chains[referrerPlaces[$0]].name, number: referrerRules[$0] + 1)
        }
    }

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

    private static func findCycles(count: Int, roots: [Int], edgeStart: [Int], edgeList: [Int]) -> [[Int]] {
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
                let out = edgeList[edgeStart[v]..<edgeStart[v + 1]]
                if edge < out.count {
                    frames[frames.count - 1].edge += 1
                    let w = out[out.startIndex + edge]
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
