import NetfilterModel

/// A table while its lines are read: chains by name, and where things were declared, for error messages.
struct TableBuilder {
    let family: Family
    let name: TableName
    /// The `*table` line (or the first command line naming the table).
    let line: Int
    private(set) var chains: [Chain]
    private var index: [ChainName: Int] = [:]
    private var declaredAt: [ChainName: Int] = [:]

    /// A table as iptables-restore creates it: every built-in chain, policy ACCEPT, no rules.
    init(family: Family, name: TableName, line: Int) {
        self.family = family
        self.name = name
        self.line = line
        chains = name.builtinChains.map { Chain(name: $0, policy: .accept) }
        reindex()
    }

    private mutating func reindex() {
        index = Dictionary(chains.enumerated().map { ($0.element.name, $0.offset) }, uniquingKeysWith: { a, _ in a })
    }

    func hasChain(_ name: String) -> Bool { index[ChainName(name)] != nil }

    private var familyLabel: String { family == .ipv4 ? "IPv4" : "IPv6" }

    private func position(of chain: ChainName) throws(LineProblem) -> Int {
        guard let i = index[chain] else {
            throw LineProblem("chain \(chain) does not exist in table \(name): declare it with :\(chain) - [0:0] or -N \(chain) first")
        }
        return i
    }

    /// `:CHAIN POLICY [p:b]`: sets a built-in chain's policy, or creates a user chain (policy `-`).
    mutating func declare(_ chain: ChainName, policy: String, counters: Counters?, line: Int) throws(LineProblem) {
        if let i = index[chain], chains[i].isBuiltin {
            guard policy != "-" else { return }
            guard let p = Policy(rawValue: policy) else {
                throw LineProblem("expected a policy (ACCEPT, DROP or -) for chain \(chain), got \(quoted(policy))")
            }
            chains[i].policy = p
            if let counters { chains[i].policyCounters = counters }
            return
        }
        guard policy == "-" else {
            throw LineProblem("chain \(chain) is not a built-in chain of table \(name), so it has no policy: expected \"-\", got \(quoted(policy))")
        }
        try newChain(chain, line: line)
    }

    mutating func newChain(_ chain: ChainName, line: Int) throws(LineProblem) {
        if index[chain] != nil {
            let earlier = declaredAt[chain].map { " (declared at line \($0))" } ?? " (a built-in chain)"
            throw LineProblem("chain \(chain) already exists in table \(name)\(earlier)")
        }
        guard !knownTargetNames.contains(chain.rawValue) else {
            throw LineProblem("a chain cannot be named \(chain): that is the name of a target")
        }
        chains.append(Chain(name: chain))
        index[chain] = chains.count - 1
        declaredAt[chain] = line
    }

    /// Applies one `-A`/`-I`/`-D`/`-R`/`-N`/`-X`/`-F`/`-P` command as iptables would.
    /// Rules it adds remember `file` and `line` (`Rule.origin`).
    mutating func apply(_ command: ChainCommand, line: Int, file: String?) throws(LineProblem) {
        let command = file.map { command.originating(at: RuleOrigin(file: $0, line: line)) } ?? command
        switch command {
        case .append(let chain, let rules):
            chains[try position(of: chain)].rules.append(contentsOf: rules)
        case .insert(let chain, let number, let rules):
            let i = try position(of: chain)
            let count = chains[i].rules.count
            guard number <= count + 1 else {
                throw LineProblem("cannot insert at position \(number) of chain \(chain): it holds \(count) rule\(count == 1 ? "" : "s")")
            }
            // iptables inserts each address combination at the same position, so they end up reversed.
            for rule in rules { chains[i].rules.insert(rule, at: number - 1) }
        case .delete(let chain, let rules):
            let i = try position(of: chain)
            for rule in rules {
                guard let j = chains[i].rules.firstIndex(where: { $0.withoutCounters == rule.withoutCounters }) else {
                    throw LineProblem("no rule in chain \(chain) is equal to the one to delete")
                }
                chains[i].rules.remove(at: j)
            }
        case .deleteNumber(let chain, let number):
            let i = try position(of: chain)
            guard number <= chains[i].rules.count else {
                throw LineProblem("cannot delete rule \(number) of chain \(chain): it holds \(chains[i].rules.count)")
            }
            chains[i].rules.remove(at: number - 1)
        case .replace(let chain, let number, let rule):
            let i = try position(of: chain)
            guard number <= chains[i].rules.count else {
                throw LineProblem("cannot replace rule \(number) of chain \(chain): it holds \(chains[i].rules.count)")
            }
            chains[i].rules[number - 1] = rule
        case .newChain(let chain):
            try newChain(chain, line: line)
        case .flush(let chain):
            if let chain {
                chains[try position(of: chain)].rules.removeAll()
            } else {
                for i in chains.indices { chains[i].rules.removeAll() }
            }
        case .deleteChain(let chain):
            let doomed: [ChainName]
            if let chain {
                let i = try position(of: chain)
                guard !chains[i].isBuiltin else { throw LineProblem("cannot delete built-in chain \(chain)") }
                guard chains[i].rules.isEmpty else {
                    throw LineProblem("cannot delete chain \(chain): it still holds \(chains[i].rules.count) rules (flush it first)")
                }
                doomed = [chain]
            } else {
                doomed = chains.filter { !$0.isBuiltin }.map(\.name)
            }
            let remaining = chains.filter { !doomed.contains($0.name) }
            for c in remaining {
                if let rule = c.rules.first(where: { r in doomed.contains { Self.references(r.target, $0) } }) {
                    throw LineProblem("cannot delete chain \(rule.target.name): rules in chain \(c.name) jump to it")
                }
            }
            chains = remaining
            for d in doomed { declaredAt[d] = nil }
            reindex()
        case .policy(let chain, let policy):
            let i = try position(of: chain)
            guard chains[i].isBuiltin else { throw LineProblem("chain \(chain) is not a built-in chain, so it has no policy") }
            chains[i].policy = policy
        }
    }

    /// A jump to `chain`, including `-j NAME` not yet known to be a chain.
    static func references(_ target: Target, _ chain: ChainName) -> Bool {
        if target.chainReference == chain { return true }
        if case .unrecognized(let u) = target, u.name == chain.rawValue, (u.arguments ?? []).isEmpty { return true }
        return false
    }

    /// `-g CHAIN` needs the chain (a `-j NAME` that is no chain stays an unrecognized target instead).
    func checkGotos() throws(LineProblem) {
        for c in chains {
            for r in c.rules {
                if case .goto(let target) = r.target, index[target] == nil {
                    throw LineProblem("a rule in chain \(c.name) goes to chain \(target) (-g), which table \(name) does not have")
                }
            }
        }
    }

    /// The finished table: `-j NAME` of chains declared after the rule become jumps; chains in iptables-save order.
    func build() -> Table {
        var table = Table(family: family, name: name, chains: chains)
        for c in table.chains.indices {
            for r in table.chains[c].rules.indices {
                if case .unrecognized(let u) = table.chains[c].rules[r].target, (u.arguments ?? []).isEmpty,
                   u.payload == nil, index[ChainName(u.name)] != nil {
                    table.chains[c].rules[r].target = .jump(ChainName(u.name))
                }
            }
        }
        table.sortChains()
        return table
    }
}
