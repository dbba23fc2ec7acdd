/// The namespace's policy routing, which TPROXY capture depends on (`ip rule fwmark M lookup T` and a
/// `local` default route in table T). Not part of netfilter, but read beside it on a live read.
public struct PolicyRouting: Hashable, Sendable, Codable {
    public struct RoutingRule: Hashable, Sendable, Codable {
        public var family: Family
        public var priority: UInt32?
        public var fwmark: UInt32?
        public var fwmask: UInt32?
        public var table: String
        /// `ip rule add not …`: the selectors are inverted, so a `not fwmark M` rule sends every packet *without*
        /// the mark to the table and is no route for TPROXY's marked packets.
        public var inverted: Bool
        public init(family: Family, priority: UInt32? = nil, fwmark: UInt32? = nil, fwmask: UInt32? = nil, table: String,
                    inverted: Bool = false) {
            self.family = family
            self.priority = priority
            self.fwmark = fwmark
            self.fwmask = fwmask
            self.table = table
            self.inverted = inverted
        }
    }
    public struct Route: Hashable, Sendable, Codable {
        public var family: Family
        /// `local`, `unicast`, ...
        public var type: String
        /// `default`, or a prefix such as `0.0.0.0/0`.
        public var destination: String
        public var device: String?
        public var table: String
        public init(family: Family, type: String, destination: String, device: String?, table: String) {
            self.family = family
            self.type = type
            self.destination = destination
            self.device = device
            self.table = table
        }
    }
    public var rules: [RoutingRule]
    public var routes: [Route]
    public init(rules: [RoutingRule] = [], routes: [Route] = []) {
        self.rules = rules
        self.routes = routes
    }
}

extension PolicyRouting {
    /// The first rule of a family that sends packets marked `mark` (under `mask`) to `table`, if it is reached:
    /// the kernel walks rules by priority and the `main` table (32766) answers every unicast packet first.
    /// Rules naming another mask, or sitting after `main`, do not route what the marking rules produce.
    public func markRule(family: Family, mark: UInt32, mask: UInt32, table: String) -> RoutingRule? {
        rules.first { r in
            r.family == family && !r.inverted && r.table == table && r.fwmark.map { $0 & mask == mark & mask } == true
                && (r.fwmask ?? 0xFFFF_FFFF) == mask && (r.priority ?? 0) < 32766
        }
    }

    /// Whether `table` holds a `local` default route over `lo` for the family: what delivers marked packets to
    /// a local socket instead of routing them out.
    public func hasLocalDefaultRoute(family: Family, table: String) -> Bool {
        routes.contains { r in
            r.family == family && r.type == "local" && r.table == table && r.device == "lo"
                && ["default", "0.0.0.0/0", "::/0"].contains(r.destination)
        }
    }
}
