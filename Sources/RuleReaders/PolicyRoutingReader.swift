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
        for family in families {
            // Rules without a table (blackhole, goto, ...) are not listed, as `ip -j rule` prints no table for them.
            let rules = try NetlinkRouting.rules(family: family).compactMap(\.routingRule)
            state.rules += rules
            // The tables fwmark rules look up matter here, and those of the rules the kernel consults before one
            // (they may take the marked packets over); `local` routes only the namespace's own addresses.
            let lastMarkRule = rules.filter { $0.fwmark != nil }.compactMap(\.priority).max() ?? 0
            let tables = Set(rules.filter { $0.fwmark != nil || ($0.priority ?? 0) < lastMarkRule }.map(\.table)).subtracting(["local"])
            guard !tables.isEmpty else { continue }
            let routes = try NetlinkRouting.routes(family: family, table: nil)
            for table in tables.sorted() {
                guard let id = NetlinkRouting.tableID(table) else { continue }
                state.routes += routes.filter { $0.table == id }.map(\.route)
            }
        }
        return state
    }
}
