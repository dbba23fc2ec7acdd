import NetfilterModel

/// Reads `ip rule` and the routing tables fwmark rules look up, over rtnetlink (`NetlinkRouting`), in the
/// namespace at `namespacePath` or this one. No child process is started and nothing is changed.
/// TPROXY capture only works with `fwmark M lookup T` plus a `local` default route in T (docs/capture-model.md §5).
public struct PolicyRoutingReader: Sendable {
    public var namespacePath: String?
    public init(namespacePath: String? = nil) { self.namespacePath = namespacePath }

    public func read(families: [Family]) throws(RuleReaderError) -> PolicyRouting {
        try NetworkNamespace.performing(at: namespacePath) { () throws(RuleReaderError) in
            try Self.readHere(families: families)
        }
    }

    /// The same as `read`, in the calling thread's namespace.
    static func readHere(families: [Family]) throws(RuleReaderError) -> PolicyRouting {
        var state = PolicyRouting()
        var read: [Family: [String]] = [:]
        for family in families {
            // Lookups, and the rules without a table (goto, blackhole, ...) that can keep a packet from one.
            let rules = try NetlinkRouting.rules(family: family).compactMap(\.routingRule)
            state.rules += rules
            // The tables fwmark rules look up matter here, and those of the rules the kernel consults before the
            // last of them (they may take the marked packets over); `local` routes only the namespace's own
            // addresses.
            let lastMarkRule = rules.lastIndex { $0.fwmark != nil && $0.action == nil } ?? -1
            let tables = Set(rules.enumerated().filter { i, r in r.action == nil && (r.fwmark != nil || i < lastMarkRule) }.map(\.element.table))
                .subtracting(["local"]).sorted()
            read[family] = tables
            guard !tables.isEmpty else { continue }
            let routes = try NetlinkRouting.routes(family: family, table: nil)
            for table in tables {
                guard let id = NetlinkRouting.tableID(table) else { continue }
                state.routes += routes.filter { $0.table == id }.map(\.route)
            }
        }
        state.routeTablesRead = read
        return state
    }
}
