/// A netfilter hook: where in the stack the kernel runs the base chains registered for it.
/// (`ingress` and `egress` are nftables' per-device hooks of the netdev and inet families.)
public enum Hook: String, Hashable, Sendable, Codable, CaseIterable {
    case prerouting, input, forward, output, postrouting, ingress, egress

    /// The built-in chain iptables names after the hook (iptables has none for ingress and egress).
    public var chainName: ChainName {
        switch self {
        case .prerouting: .prerouting
        case .input: .input
        case .forward: .forward
        case .output: .output
        case .postrouting: .postrouting
        case .ingress: "INGRESS"
        case .egress: "EGRESS"
        }
    }

    public init?(chain: ChainName) {
        guard let h = [Hook.prerouting, .input, .forward, .output, .postrouting].first(where: { $0.chainName == chain }) else { return nil }
        self = h
    }
}

/// What a base chain is registered as: its hook, its priority among the hook's chains (lower runs first), and its
/// type (a `nat` chain sees only a connection's first packet, and only until a binding is set up).
public struct HookRegistration: Hashable, Sendable, Codable {
    public enum ChainType: String, Hashable, Sendable, Codable { case filter, nat, route }
    public var hook: Hook
    public var priority: Int
    public var type: ChainType

    public init(hook: Hook, priority: Int, type: ChainType) {
        self.hook = hook
        self.priority = priority
        self.type = type
    }

    /// `NF_IP_PRI_NAT_DST`: destination NAT (REDIRECT, DNAT) is decided here; chains after it cannot change where
    /// a connection goes, only drop it.
    public static let natDestinationPriority = -100

    /// The fixed priorities of the x_tables tables (the same for legacy and iptables-nft): raw -300, mangle -150,
    /// nat -100 (PREROUTING, OUTPUT) and 100 (INPUT, POSTROUTING), filter 0, security 50.
    public static func iptables(table: TableName, chain: ChainName) -> HookRegistration? {
        guard let hook = Hook(chain: chain), table.builtinChains.contains(chain) else { return nil }
        switch table {
        case .raw: return HookRegistration(hook: hook, priority: -300, type: .filter)
        case .mangle: return HookRegistration(hook: hook, priority: -150, type: hook == .output ? .route : .filter)
        case .nat: return HookRegistration(hook: hook, priority: hook == .prerouting || hook == .output ? -100 : 100, type: .nat)
        case .filter: return HookRegistration(hook: hook, priority: 0, type: .filter)
        case .security: return HookRegistration(hook: hook, priority: 50, type: .filter)
        default: return nil
        }
    }
}

extension Table {
    /// How the kernel runs a chain of this table: declared (native nftables base chains) or, for an iptables
    /// table, implied by the table and chain names. nil for a chain no hook runs directly.
    public func registration(of chain: ChainName) -> HookRegistration? {
        if let c = self.chain(chain), let r = c.registration { return r }
        return HookRegistration.iptables(table: name, chain: chain)
    }

    /// The base chains of the table registered at a hook.
    public func baseChains(at hook: Hook) -> [(chain: ChainName, registration: HookRegistration)] {
        // From each chain itself: looking every chain up by name again is quadratic in kube-proxy's 40,000 chains.
        chains.compactMap { c in
            guard let r = c.registration ?? HookRegistration.iptables(table: name, chain: c.name), r.hook == hook else { return nil }
            return (c.name, r)
        }
    }
}
