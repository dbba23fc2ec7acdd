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
