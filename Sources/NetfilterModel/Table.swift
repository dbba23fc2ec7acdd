/// A chain: a built-in hook chain (with a policy) or a user-defined chain.
public struct Chain: Hashable, Sendable, Codable {
    public var name: ChainName
    /// nil for user-defined chains.
    public var policy: Policy?
    public var policyCounters: Counters
    public var rules: [Rule]
    /// A native nftables base chain's declared hook, priority and type (iptables' built-in chains have theirs
    /// implied by the table: `Table.registration(of:)`).
    public var registration: HookRegistration?

    public init(name: ChainName, policy: Policy? = nil, policyCounters: Counters = .zero, rules: [Rule] = [],
                registration: HookRegistration? = nil) {
        self.name = name
        self.policy = policy
        self.policyCounters = policyCounters
        self.rules = rules
        self.registration = registration
    }

    public var isBuiltin: Bool { policy != nil }
}

/// One table of one family, chains in iptables-save order (built-ins in hook order, then user chains by name).
public struct Table: Hashable, Sendable, Codable {
    public var family: Family
    public var name: TableName
    public var chains: [Chain]
    /// The nftables family of a native nftables table (its normalized form); nil for iptables' tables.
    public var nativeFamily: NftFamily?

    public init(family: Family, name: TableName, chains: [Chain]) {
        self.family = family
        self.name = name
        self.chains = chains
    }

    public func chain(_ name: ChainName) -> Chain? { chains.first { $0.name == name } }

    /// Puts the chains in iptables-save order.
    public mutating func sortChains() {
        let hookOrder = name.builtinChains
        chains.sort { a, b in
            switch (a.isBuiltin, b.isBuiltin) {
            case (true, true):
                return (hookOrder.firstIndex(of: a.name) ?? 99) < (hookOrder.firstIndex(of: b.name) ?? 99)
            case (true, false): return true
            case (false, true): return false
            case (false, false): return a.name.rawValue.utf8.lexicographicallyPrecedes(b.name.rawValue.utf8)
            }
        }
    }

    public var ruleCount: Int { chains.reduce(0) { $0 + $1.rules.count } }

    /// The same table with every counter cleared.
    public var withoutCounters: Table {
        var t = self
        for i in t.chains.indices {
            t.chains[i].policyCounters = .zero
            for j in t.chains[i].rules.indices { t.chains[i].rules[j].counters = .zero }
        }
        return t
    }
}

/// Where a set of tables was read from.
public enum Backend: String, Sendable, Codable, Hashable {
    /// Legacy x_tables, read through libiptc.
    case legacy
    /// nf_tables through the iptables-nft compatibility layer.
    case nft
    /// A saved dump (iptables-save text or a restore script).
    case text
}

/// Tables read from one place, with the backend each came from.
public struct Ruleset: Hashable, Sendable, Codable {
    public var tables: [Table]
    /// The backend each family's tables were read from.
    public var backends: [Family: Backend]
    /// Backends found holding rules, per family; more than one means the rules are split (a defect in itself).
    public var populatedBackends: [Family: [Backend]]
    /// Per family and backend, the tables that hold rules (live reads and bundles; empty where not known), so a
    /// split can say whether the backend not read holds anything that could change capture.
    public var populatedTables: [Family: [Backend: [Table]]] = [:]
    /// Policy routing of the namespace, on a live read (TPROXY needs it).
    public var policyRouting: PolicyRouting?
    /// Native nftables tables as nft lists them (`tables` holds their normalized form beside iptables' tables).
    public var nativeTables: [NftTable] = []

    public init(tables: [Table] = [], backends: [Family: Backend] = [:], populatedBackends: [Family: [Backend]] = [:],
                policyRouting: PolicyRouting? = nil) {
        self.tables = tables
        self.backends = backends
        self.populatedBackends = populatedBackends
        self.policyRouting = policyRouting
    }

    public func table(_ name: TableName, family: Family) -> Table? {
        tables.first { $0.name == name && $0.family == family }
    }

    public var families: [Family] { Array(Set(tables.map(\.family))).sorted() }
}
