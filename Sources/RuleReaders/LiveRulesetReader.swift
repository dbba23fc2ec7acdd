import NetfilterModel

/// Which rule store to read on a live system.
public enum BackendChoice: String, Sendable, CaseIterable {
    /// Look at both stores and read whichever holds rules (both, when both do).
    case auto
    case legacy
    case nft
}

/// Reads the live tables of the current or another network namespace, choosing the backend.
///
/// Opening a legacy table that does not exist creates it, so the legacy reader consults
/// `ip_tables_names` first; the nft side only lists. Nothing here writes or locks.
public struct LiveRulesetReader: RulesetReader {
    public var backend: BackendChoice
    public var namespacePath: String?
    public var readPolicyRouting: Bool
    /// With `auto`, when both stores hold rules, the one with more chains this picks is read (legacy on a tie).
    /// The reader knows no chain names of its own: the commands pass Istio's.
    public var preferredChains: @Sendable (ChainName) -> Bool

    public init(backend: BackendChoice = .auto, namespacePath: String? = nil, readPolicyRouting: Bool = true,
                preferredChains: @escaping @Sendable (ChainName) -> Bool = { _ in false }) {
        self.backend = backend
        self.namespacePath = namespacePath
        self.readPolicyRouting = readPolicyRouting
        self.preferredChains = preferredChains
    }

    public var sourceDescription: String {
        let place = namespacePath.map { "network namespace \($0)" } ?? "this network namespace"
        return "\(place), backend \(backend.rawValue)"
    }

    public func read(_ request: ReadRequest) throws(RuleReaderError) -> Ruleset {
        var legacy = Ruleset()
        var nft = Ruleset()
        var hidden: [Family: [TableName]] = [:]
        if backend != .nft {
            legacy = try readLegacy(request)
        }
        let inventory = try NftablesInventory.read(namespacePath: namespacePath)
        if backend != .legacy {
            do {
                (nft, hidden) = try readNftReportingHidden(request, inventory: inventory)
            } catch let error {
                // In auto mode a missing iptables-nft is not fatal when legacy tables answer.
                guard backend == .auto, case .unavailable = error else { throw error }
            }
        }
        var result = Ruleset()
        for family in request.families {
            let l = legacy.tables.filter { $0.family == family }
            let n = nft.tables.filter { $0.family == family }
            let legacyHasRules = l.contains { $0.ruleCount > 0 }
            let nftHasRules = n.contains { $0.ruleCount > 0 }
            var populated: [Backend] = []
            if legacyHasRules { populated.append(.legacy) }
            if nftHasRules { populated.append(.nft) }
            result.populatedBackends[family] = populated
            result.populatedTables[family] = [.legacy: l.filter { $0.ruleCount > 0 }, .nft: n.filter { $0.ruleCount > 0 }]
                .filter { !$0.value.isEmpty }
            let chosen: Backend
            switch backend {
            case .legacy: chosen = .legacy
            case .nft: chosen = .nft
            case .auto:
                if legacyHasRules && nftHasRules {
                    // Both hold rules: a defect reported as backend-split. Read the one the caller prefers.
                    chosen = preferredChainCount(l) >= preferredChainCount(n) ? .legacy : .nft
                } else if legacyHasRules {
                    chosen = .legacy
                } else {
                    chosen = .nft
                }
            }
            result.backends[family] = chosen
            result.tables += chosen == .legacy ? l : n
        }
        let hiddenTables = hidden.flatMap { family, names in names.map { (family, $0) } }
        if !inventory.nativeTables.isEmpty || !hiddenTables.isEmpty {
            // Native nftables tables hook in beside iptables' (Istio's `--native-nftables` mode writes
            // `inet istio-proxy-*`); they join the ruleset in normalized form, each base chain at its priority.
            // So do the chains iptables-nft-save could not print from an `ip`/`ip6` table it otherwise owns: that
            // table is kept natively with those chains alone (the rest is already read through iptables-nft).
            let all = try readNativeNftables()
            var native = all.filter { t in inventory.nativeTables.contains { $0.family == t.family && $0.name == t.name } }
            for (family, name) in hiddenTables {
                guard var t = all.first(where: { $0.family == NftFamily(family) && $0.name == name.rawValue }) else { continue }
                let printed = Set(nft.tables.first { $0.family == family && $0.name == name }?.chains.map(\.name.rawValue) ?? [])
                t.chains = t.chains.filter { !printed.contains($0.name) }
                if !t.chains.isEmpty { native.append(t) }
            }
            result.nativeTables = native
            result.tables += native.flatMap { $0.normalized() }.filter { request.families.contains($0.family) }
        }
        if readPolicyRouting {
            result.policyRouting = try? PolicyRoutingReader(namespacePath: namespacePath).read(families: request.families)
        }
        return result
    }

    /// Tables of the backend not chosen, when both hold rules (for `show` to print the split).
    public func readBoth(_ request: ReadRequest) throws(RuleReaderError) -> (legacy: Ruleset, nft: Ruleset) {
        let l = try readLegacy(request)
        let n = try readNft(request, inventory: try NftablesInventory.read(namespacePath: namespacePath))
        return (l, n)
    }

    /// The iptables-nft side: `iptables-nft-save` runs only for a family whose nf_tables really holds
    /// iptables-nft tables (the inventory is one netlink dump), so a pod without them starts no process at all.
    func readNft(_ request: ReadRequest, inventory: NftablesInventory) throws(RuleReaderError) -> Ruleset {
        try readNftReportingHidden(request, inventory: inventory).ruleset
    }

    func readNftReportingHidden(_ request: ReadRequest, inventory: NftablesInventory)
        throws(RuleReaderError) -> (ruleset: Ruleset, hidden: [Family: [TableName]]) {
        let families = request.families.filter(inventory.holdsIptablesNftTables(family:))
        var (ruleset, hidden) = families.isEmpty ? (Ruleset(), [:])
            : try NftRulesetReader(namespacePath: namespacePath).readReportingHidden(ReadRequest(tables: request.tables, families: families))
        for family in request.families { ruleset.backends[family] = .nft }
        return (ruleset, hidden.mapValues { $0.filter(request.tables.contains) })
    }

    private func readLegacy(_ request: ReadRequest) throws(RuleReaderError) -> Ruleset {
        try NetworkNamespace.performing(at: namespacePath) { () throws(RuleReaderError) in try LegacyTableReader().read(request) }
    }

    private func preferredChainCount(_ tables: [Table]) -> Int {
        tables.reduce(0) { $0 + $1.chains.filter { preferredChains($0.name) }.count }
    }
}
