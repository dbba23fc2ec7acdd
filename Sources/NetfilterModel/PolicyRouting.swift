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
        /// `from` and `to` prefixes as `ip` prints them; nil for `all`.
        public var source: String?
        public var destination: String?
        /// `iif` and `oif` selectors.
        public var inputInterface: String?
        public var outputInterface: String?
        /// `suppress_prefixlength N`: the table's routes with a prefix of N bits or fewer are ignored (wg-quick's
        /// `lookup main suppress_prefixlength 0` uses every route of main but its default).
        public var suppressPrefixLength: Int?
        public init(family: Family, priority: UInt32? = nil, fwmark: UInt32? = nil, fwmask: UInt32? = nil, table: String,
                    inverted: Bool = false, source: String? = nil, destination: String? = nil, inputInterface: String? = nil,
                    outputInterface: String? = nil, suppressPrefixLength: Int? = nil) {
            self.family = family
            self.priority = priority
            self.fwmark = fwmark
            self.fwmask = fwmask
            self.table = table
            self.inverted = inverted
            self.source = source
            self.destination = destination
            self.inputInterface = inputInterface
            self.outputInterface = outputInterface
            self.suppressPrefixLength = suppressPrefixLength
        }

        /// The rule as `ip rule show` prints it: `100: from all lookup main suppress_prefixlength 0`.
        public var text: String {
            var words = ["\(priority ?? 0):"]
            if inverted { words.append("not") }
            words += ["from", source ?? "all"]
            if let destination { words += ["to", destination] }
            if let fwmark {
                words += ["fwmark", "0x" + String(fwmark, radix: 16) + (fwmask.map { "/0x" + String($0, radix: 16) } ?? "")]
            }
            if let inputInterface { words += ["iif", inputInterface] }
            if let outputInterface { words += ["oif", outputInterface] }
            words += ["lookup", table]
            if let suppressPrefixLength { words += ["suppress_prefixlength", String(suppressPrefixLength)] }
            return words.joined(separator: " ")
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

        /// The prefix length of `destination`: 0 for `default`, the family's width for a bare address.
        public var prefixLength: Int {
            if destination == "default" { return 0 }
            if let slash = destination.firstIndex(of: "/") { return Int(destination[destination.index(after: slash)...]) ?? 0 }
            return family.addressBits
        }

        /// As `ip route show table T` prints it: `10.0.0.0/24 dev eth0`, `local default dev lo`.
        public var text: String {
            ([type == "unicast" ? nil : type, destination] + (device.map { ["dev", $0] } ?? [])).compactMap { $0 }.joined(separator: " ")
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

    /// How much of a set of packets a rule's selectors take.
    public enum Reach: Sendable, Hashable { case none, some, all }

    /// A rule consulted before `target` that routes some packets carrying `mark` (and received on
    /// `inputInterface`) elsewhere, with the routes of its table those packets may take.
    public struct Preemption: Sendable, Hashable {
        public var rule: RoutingRule
        /// `.all`: every such packet; `.some`: those its source, destination or interface selectors pick.
        public var reach: Reach
        /// The routes (after `suppress_prefixlength`) that answer instead of `target`'s table.
        public var routes: [Route]
    }

    /// The rules before `target` that take over packets it is meant to route: the kernel walks rules by priority
    /// and the first lookup whose table has a matching route decides. A rule reaches a packet with `mark` when its
    /// fwmark selector (under its mask) agrees, `not` inverting its selectors; `iif` is compared with the packet's
    /// input interface (`lo` for locally generated packets; nil: any); an `oif` rule reaches only sockets bound to
    /// that device, which a proxy's are not. A lookup takes over only with a route its `suppress_prefixlength`
    /// keeps and that is not `throw` (which goes on to the next rule); `local` (priority 0) routes only the
    /// namespace's own addresses, which marked traffic to a peer never has.
    public func preemptions(of target: RoutingRule, mark: UInt32, inputInterface: String?) -> [Preemption] {
        let before = target.priority ?? 0
        return rules.compactMap { r -> Preemption? in
            guard r.family == target.family, r != target, (r.priority ?? 0) < before, r.table != target.table, r.table != "local"
            else { return nil }
            var reach = Reach.all
            if let fwmark = r.fwmark, mark & (r.fwmask ?? 0xFFFF_FFFF) != fwmark & (r.fwmask ?? 0xFFFF_FFFF) { reach = .none }
            if r.outputInterface != nil { reach = .none }
            if let iif = r.inputInterface, reach != .none {
                if let inputInterface { if !Self.interface(iif, matches: inputInterface) { reach = .none } } else { reach = .some }
            }
            if reach == .all, r.source != nil || r.destination != nil { reach = .some }
            if r.inverted { reach = reach == .all ? .none : reach == .none ? .all : .some }
            guard reach != .none else { return nil }
            let kept = routes.filter { route in
                route.family == r.family && route.table == r.table && route.type != "throw"
                    && route.prefixLength > (r.suppressPrefixLength ?? -1)
            }
            return kept.isEmpty ? nil : Preemption(rule: r, reach: reach, routes: kept)
        }
    }

    /// `ip rule`'s interface match: a name, or a prefix ending in `+`.
    static func interface(_ pattern: String, matches name: String) -> Bool {
        pattern.hasSuffix("+") ? name.hasPrefix(pattern.dropLast()) : pattern == name
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
