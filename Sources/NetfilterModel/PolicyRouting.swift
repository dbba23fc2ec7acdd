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
        /// What a rule does other than look a table up (`table` is then empty); nil for a lookup.
        public enum Action: String, Hashable, Sendable, Codable { case goto, nop, blackhole, unreachable, prohibit }
        public var action: Action?
        /// `goto`'s target priority.
        public var gotoTarget: UInt32?
        /// `ipproto`.
        public var ipProtocol: UInt8?
        /// Selectors iptaudit does not evaluate (and `suppress_ifgroup`), as `ip rule show` prints them:
        /// `tos 0x10`, `sport 1000-2000`, `uidrange 1000-2000`, ...; nil when there are none.
        public var otherSelectors: [String]?
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

        /// The rule with what it does other than a lookup, and the selectors iptaudit does not evaluate.
        public func with(action: Action?, gotoTarget: UInt32?, ipProtocol: UInt8?, otherSelectors: [String]?) -> RoutingRule {
            var r = self
            r.action = action
            r.gotoTarget = gotoTarget
            r.ipProtocol = ipProtocol
            r.otherSelectors = otherSelectors
            return r
        }

        /// The rule in `ip rule show`'s words: `100: from all lookup main suppress_prefixlength 0`.
        public var text: String {
            var words = ["\(priority ?? 0):"]
            if inverted { words.append("not") }
            words += ["from", source ?? "all"]
            if let destination { words += ["to", destination] }
            if let fwmark {
                words += ["fwmark", (fwmark == 0 ? "0" : "0x" + String(fwmark, radix: 16)) + (fwmask.map { "/0x" + String($0, radix: 16) } ?? "")]
            }
            if let inputInterface { words += ["iif", inputInterface] }
            if let outputInterface { words += ["oif", outputInterface] }
            if let ipProtocol { words += ["ipproto", SaveSyntax.protocolName(UInt16(ipProtocol))] }
            words += otherSelectors?.filter { !$0.hasPrefix("suppress_") } ?? []
            switch action {
            case nil: words += ["lookup", table]
            case .goto: words += ["goto", gotoTarget.map(String.init) ?? "none"]
            case let a?: words.append(a.rawValue)
            }
            if let suppressPrefixLength { words += ["suppress_prefixlength", String(suppressPrefixLength)] }
            words += otherSelectors?.filter { $0.hasPrefix("suppress_") } ?? []
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
            destination == "default" ? 0 : AddressMatch(destination)?.mask.prefixLength ?? 0
        }

        /// Route types whose lookup ends the walk with an error: the packet is dropped, whatever its prefix.
        public static let errorTypes: Set<String> = ["unreachable", "blackhole", "prohibit"]

        /// In `ip route show table T`'s words, without the gateway the model does not keep: `10.0.0.0/24 dev eth0`,
        /// `local default dev lo`.
        public var text: String {
            ([type == "unicast" ? nil : type, destination] + (device.map { ["dev", $0] } ?? [])).compactMap { $0 }.joined(separator: " ")
        }
    }
    public var rules: [RoutingRule]
    public var routes: [Route]
    /// Per family, the tables whose routes were read (all of them are in `routes`); nil in bundles from before
    /// it was recorded, which hold only the tables fwmark rules look up.
    public var routeTablesRead: [Family: [String]]?
    public init(rules: [RoutingRule] = [], routes: [Route] = [], routeTablesRead: [Family: [String]]? = nil) {
        self.rules = rules
        self.routes = routes
        self.routeTablesRead = routeTablesRead
    }
}

extension PolicyRouting {
    /// The first rule of a family that looks up `table` for every packet whose mark is `mark` under `mask` (the
    /// marking rules set those bits and leave the others as they were), if it is reached: the kernel walks rules
    /// by priority and the `main` table (32766) answers every unicast packet first. The kernel's test is
    /// `packet mark & fwmask == fwmark`, so the rule takes all such packets when its mask tests no bit outside
    /// `mask` and its value is the mark's under its mask (`fwmark 0x539` for TPROXY's `0x539/0xffffffff`;
    /// `fwmark 0x111/0xfff`, or `0x1/0x1`, for ambient's `0x111/0xfff`).
    public func markRule(family: Family, mark: UInt32, mask: UInt32, table: String) -> RoutingRule? {
        rules.first { r in
            guard r.family == family, !r.inverted, r.action == nil, r.table == table, let value = r.fwmark,
                  (r.priority ?? 0) < 32766 else { return false }
            let tested = r.fwmask ?? 0xFFFF_FFFF
            return tested & ~mask == 0 && mark & tested == value
        }
    }

    /// How much of a set of packets a rule's selectors take.
    public enum Reach: Sendable, Hashable, Comparable { case none, some, all }

    /// A rule consulted before `target` that keeps some packets carrying `mark` (and received on
    /// `inputInterface`) from reaching it, and what it does with them.
    public struct Preemption: Sendable, Hashable {
        public enum Effect: Sendable, Hashable {
            /// Its table routes them (after `suppress_prefixlength`).
            case routes([Route])
            /// Dropped: by the rule's own action (`blackhole`, `unreachable`, `prohibit`; nil route), or by an error
            /// route of its table.
            case dropped(by: Route?)
            /// `goto` past `target`.
            case skips(to: UInt32)
            /// Its table's routes were not captured (a bundle from before they were): no telling.
            case routesNotRead
        }
        public var rule: RoutingRule
        /// `.all`: every such packet; `.some`: those its selectors, or its table's routes, pick.
        public var reach: Reach
        public var effect: Effect
    }

    /// The rules the kernel consults before `target` that take over packets it is meant to route. The kernel walks
    /// a family's rules in dump order (by priority, a rule added later after those of its priority); a rule
    /// reaches a packet when all its selectors do, `not` inverting that. The fwmark is compared under its mask;
    /// `iif` with the packet's input interface (`lo` for a locally generated packet; nil: unknown); `oif` and
    /// `l3mdev` reach only sockets bound to a device or a VRF, which the application's replies are not. Source,
    /// destination, `ipproto`, ports and the selectors iptaudit does not evaluate may reach some: a reply rerouted
    /// after mangle OUTPUT carries its protocol and ports only when some rule needs them (`ip_route_me_harder`).
    /// Then `nop` and a `goto` to a priority no rule has go on; a `goto` that takes every packet jumps (past
    /// `target`: it skips it); `blackhole`/`unreachable`/`prohibit` drop; a lookup takes over where its table has
    /// a route: an error route always, a unicast route that `suppress_prefixlength` keeps, not a `throw` (the walk
    /// goes on) and not a `local` route (it delivers in the pod); every packet only through a default route.
    /// `local` at priority 0 routes only the namespace's own addresses, which replies to a peer never have.
    public func preemptions(of target: RoutingRule, mark: UInt32, inputInterface: String?) -> [Preemption] {
        guard let position = rules.firstIndex(of: target) else { return [] }
        let family = rules.filter { $0.family == target.family }
        var out: [Preemption] = []
        var landing: UInt32?  // a goto taken by every packet: the rules before this priority are not consulted
        for r in rules[..<position] where r.family == target.family {
            if let l = landing {
                guard (r.priority ?? 0) >= l else { continue }
                landing = nil
            }
            guard r.table != "local" || r.action != nil, r.action != .nop else { continue }
            if r.action == nil, r.table == target.table { continue }
            var reach = Reach.all
            if let fwmark = r.fwmark, mark & (r.fwmask ?? 0xFFFF_FFFF) != fwmark & (r.fwmask ?? 0xFFFF_FFFF) { reach = .none }
            if r.outputInterface != nil || r.otherSelectors?.contains("l3mdev") == true { reach = .none }
            if let iif = r.inputInterface {
                if let inputInterface { if iif != inputInterface { reach = .none } } else { reach = min(reach, .some) }
            }
            let evaluated = (r.otherSelectors ?? []).filter { $0 != "l3mdev" }
            if r.source != nil || r.destination != nil || r.ipProtocol != nil || !evaluated.isEmpty { reach = min(reach, .some) }
            if r.inverted { reach = reach == .all ? .none : reach == .none ? .all : .some }
            guard reach != .none else { continue }
            switch r.action {
            case .goto:
                // The kernel resolves a goto to the first rule of that priority; without one it goes on.
                guard let to = r.gotoTarget, family.contains(where: { ($0.priority ?? 0) == to }) else { continue }
                if to > (target.priority ?? 0) {
                    out.append(Preemption(rule: r, reach: reach, effect: .skips(to: to)))
                } else if reach == .all {
                    landing = to
                }
            case .blackhole, .unreachable, .prohibit:
                out.append(Preemption(rule: r, reach: reach, effect: .dropped(by: nil)))
            case .nop:
                continue
            case nil:
                let mine = routes.filter { $0.family == r.family && $0.table == r.table }
                if mine.isEmpty, !(routeTablesRead?[r.family] ?? []).contains(r.table) {
                    out.append(Preemption(rule: r, reach: .some, effect: .routesNotRead))
                    continue
                }
                let errors = mine.filter { Route.errorTypes.contains($0.type) }
                let kept = mine.filter { $0.type == "unicast" && $0.prefixLength > (r.suppressPrefixLength ?? -1) }
                // A default route takes every reply; a specific one the replies to its prefix only.
                if let error = errors.first(where: { $0.prefixLength == 0 }) {
                    out.append(Preemption(rule: r, reach: reach, effect: .dropped(by: error)))
                } else if kept.contains(where: { $0.prefixLength == 0 }) {
                    out.append(Preemption(rule: r, reach: reach, effect: .routes(kept)))
                } else if let error = errors.first {
                    out.append(Preemption(rule: r, reach: min(reach, .some), effect: .dropped(by: error)))
                } else if !kept.isEmpty {
                    out.append(Preemption(rule: r, reach: min(reach, .some), effect: .routes(kept)))
                }
            }
        }
        return out
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
