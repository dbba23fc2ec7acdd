#if canImport(Glibc)
import Glibc
#endif
import NetfilterModel

/// In-process `ip rule`, `ip route` and `ip addr`: rtnetlink dumps of the calling thread's network namespace,
/// decoded into the values (and the spellings) `ip -j` prints. Run them inside `NetworkNamespace.perform` to read
/// another namespace. Only GET dumps are sent; no child process is started.
public enum NetlinkRouting {
    /// Every policy routing rule of a family, in the kernel's (priority) order: RTM_GETRULE.
    public static func rules(family: Family) throws(RuleReaderError) -> [RoutingPolicyRule] {
        let socket = try open(.route)
        let dumped: [(RuleHeader, NetlinkAttributes)]
        do { dumped = try socket.dumpRules(family: family.addressFamily) } catch {
            if error.errno == EAFNOSUPPORT { return [] }  // no IPv6 (or no multiple tables) in this kernel
            throw error.readerError
        }
        return dumped.filter { $0.0.family == family.addressFamily }.map { RoutingPolicyRule(family: family, header: $0.0, attributes: $0.1) }
    }

    /// The routes of a family in one table (`nil`: every table), as `ip -j route show table T` lists them:
    /// RTM_GETROUTE dump filtered in userspace by `RTA_TABLE` (falling back to `rtm_table`), without cloned
    /// (cache) entries.
    public static func routes(family: Family, table: UInt32?) throws(RuleReaderError) -> [RoutingTableEntry] {
        let socket = try open(.route)
        let dumped: [(RouteHeader, NetlinkAttributes)]
        do { dumped = try socket.dumpRoutes(family: family.addressFamily) } catch {
            if error.errno == EAFNOSUPPORT { return [] }
            throw error.readerError
        }
        let selected = dumped.filter { header, attributes in
            // An unsupported family falls back to a dump of every family: keep only the one asked for.
            header.family == family.addressFamily && header.flags & KernelABI.rtmFCloned == 0
                && (table == nil || (attributes.u32(KernelABI.rtaTable) ?? UInt32(header.table)) == table)
        }
        var names: [UInt32: String] = [:]
        if selected.contains(where: { $0.1.contains(KernelABI.rtaOif) }) {
            do { names = try socket.dumpLinkNames() } catch { throw error.readerError }
        }
        return selected.map { RoutingTableEntry(family: family, header: $0.0, attributes: $0.1, linkNames: names) }
    }

    /// Every address of every interface (`family` nil: both families): RTM_GETADDR, names from RTM_GETLINK.
    public static func addresses(family: Family? = nil) throws(RuleReaderError) -> [InterfaceAddress] {
        let socket = try open(.route)
        do {
            let dumped = try socket.dumpAddresses(family: family?.addressFamily ?? 0)
            let names = try socket.dumpLinkNames()
            return dumped.compactMap { InterfaceAddress(header: $0.0, attributes: $0.1, linkNames: names) }
                .filter { family == nil || $0.family == family }
        } catch {
            throw error.readerError
        }
    }

    /// The table names `ip` prints: `local`, `main`, `default` for 255, 254, 253, else the number.
    /// (iproute2 also reads names from /etc/iproute2/rt_tables; iptaudit keeps numbers so reports do not
    /// depend on the node's files.)
    public static func tableName(_ id: UInt32) -> String {
        switch id {
        case KernelABI.rtTableLocal: "local"
        case KernelABI.rtTableMain: "main"
        case KernelABI.rtTableDefault: "default"
        default: String(id)
        }
    }

    /// The table number of a name `tableName` prints (or a decimal number).
    public static func tableID(_ name: String) -> UInt32? {
        switch name {
        case "local": KernelABI.rtTableLocal
        case "main": KernelABI.rtTableMain
        case "default": KernelABI.rtTableDefault
        default: UInt32(name)
        }
    }

    static func open(_ bus: NetlinkSocket.Bus) throws(RuleReaderError) -> NetlinkSocket {
        do { return try NetlinkSocket(bus) } catch { throw error.readerError }
    }

    /// A prefix as iproute2 prints `dst`/`from`/`to`: a bare address for a host prefix, else `address/length`;
    /// `default` (or `all` for rules) when there is neither address nor length.
    static func prefixText(family: Family, address: [UInt8]?, length: UInt8, none: String) -> String {
        if let address, let ip = IPAddress(bytes: address, family: family) {
            return Int(length) == family.addressBits ? ip.description : "\(ip)/\(length)"
        }
        return length == 0 ? none : "0/\(length)"
    }
}

/// One `ip rule`: its selectors and action, beyond the fields the capture model keeps.
public struct RoutingPolicyRule: Sendable, Hashable {
    public var family: Family
    /// `FRA_PRIORITY` (0 when absent, as `ip` prints it).
    public var priority: UInt32
    /// `fwmark`/`fwmask` as `ip` prints them: the mask only when it is not 0xffffffff.
    public var fwmark: UInt32?
    public var fwmask: UInt32?
    /// The table number (`FRA_TABLE`, else `fib_rule_hdr.table`); 0 when the action is not a lookup.
    public var table: UInt32
    /// `lookup`, `goto`, `nop`, `blackhole`, `unreachable`, `prohibit`, or the number.
    public var action: String
    /// `not`: the selector is inverted (`FIB_RULE_INVERT`).
    public var inverted: Bool
    /// `from` and `to` as `ip` prints them (`all` for any).
    public var source: String
    public var destination: String
    public var inputInterface: String?
    public var outputInterface: String?
    /// `suppress_prefixlength` (`FRA_SUPPRESS_PREFIXLEN`, which the kernel sends only when set).
    public var suppressPrefixLength: Int?
    /// `goto`'s target priority (`FRA_GOTO`).
    public var gotoTarget: UInt32?
    /// `ipproto` (`FRA_IP_PROTO`).
    public var ipProtocol: UInt8?
    /// The other selectors (and `suppress_ifgroup`), as `ip rule show` prints them: `tos 0x10`, `sport 1000-2000`,
    /// `dport 53`, `uidrange 1000-2000`, `tun_id 7`, `suppress_ifgroup 3`, `l3mdev`.
    public var otherSelectors: [String]

    /// The capture model's view (what `ip -j rule` reports: priority, selectors, and the table looked up or the
    /// action); nil for a lookup without a table (`l3mdev`, which a socket outside a VRF never matches).
    public var routingRule: PolicyRouting.RoutingRule? {
        let kind: PolicyRouting.RoutingRule.Action?
        switch action {
        case "lookup": kind = nil
        case "goto": kind = .goto
        case "nop": kind = .nop
        case "blackhole": kind = .blackhole
        case "unreachable": kind = .unreachable
        case "prohibit": kind = .prohibit
        default: return nil
        }
        // An `l3mdev` lookup names no table: a packet outside a VRF does not match it, but under `not` it does, and
        // the kernel then looks up table 0, which is main.
        let l3mdevMain = kind == nil && table == 0 && inverted && otherSelectors.contains("l3mdev")
        guard kind != nil || table != 0 || l3mdevMain else { return nil }
        var r = PolicyRouting.RoutingRule(family: family, priority: priority, fwmark: fwmark, fwmask: fwmask,
                                          table: kind != nil ? "" : l3mdevMain ? "main" : NetlinkRouting.tableName(table),
                                          inverted: inverted, source: source == "all" ? nil : source,
                                          destination: destination == "all" ? nil : destination,
                                          inputInterface: inputInterface, outputInterface: outputInterface,
                                          suppressPrefixLength: suppressPrefixLength)
        r.action = kind
        r.gotoTarget = kind == .goto ? gotoTarget : nil
        r.ipProtocol = ipProtocol
        r.otherSelectors = otherSelectors.isEmpty ? nil : otherSelectors
        return r
    }

    init(family: Family, header: RuleHeader, attributes a: NetlinkAttributes) {
        self.family = family
        priority = a.u32(KernelABI.fraPriority) ?? 0
        if a.contains(KernelABI.fraFwmark) || a.contains(KernelABI.fraFwmask) {
            fwmark = a.u32(KernelABI.fraFwmark) ?? 0
            let mask = a.u32(KernelABI.fraFwmask)
            fwmask = mask == 0xFFFF_FFFF ? nil : mask
        }
        table = a.u32(KernelABI.fraTable) ?? UInt32(header.table)
        action = switch header.action {
        case KernelABI.frActToTable: "lookup"
        case KernelABI.frActGoto: "goto"
        case KernelABI.frActNop: "nop"
        case KernelABI.frActBlackhole: "blackhole"
        case KernelABI.frActUnreachable: "unreachable"
        case KernelABI.frActProhibit: "prohibit"
        default: String(header.action)
        }
        inverted = header.flags & KernelABI.fibRuleInvert != 0
        source = NetlinkRouting.prefixText(family: family, address: a[KernelABI.fraSrc], length: header.sourceLength, none: "all")
        destination = NetlinkRouting.prefixText(family: family, address: a[KernelABI.fraDst], length: header.destinationLength, none: "all")
        inputInterface = a.string(KernelABI.fraIifname)
        outputInterface = a.string(KernelABI.fraOifname)
        // The kernel stores "unset" as -1 (all ones) and leaves the attribute out then; an old kernel may not.
        suppressPrefixLength = a.u32(KernelABI.fraSuppressPrefixlen).flatMap { $0 == UInt32.max ? nil : Int($0) }
        gotoTarget = a.u32(KernelABI.fraGoto)
        ipProtocol = a.u8(KernelABI.fraIPProto)
        var other: [String] = []
        if header.tos != 0 { other.append("tos 0x" + String(header.tos, radix: 16)) }
        // `struct fib_rule_port_range` and `fib_rule_uid_range`: start and end in host order.
        func range<T: FixedWidthInteger>(_ bytes: [UInt8]?, _: T.Type) -> String? {
            guard let bytes, bytes.count >= 2 * MemoryLayout<T>.size else { return nil }
            let (start, end) = bytes.withUnsafeBytes { ($0.loadUnaligned(as: T.self), $0.loadUnaligned(fromByteOffset: MemoryLayout<T>.size, as: T.self)) }
            return start == end ? String(start) : "\(start)-\(end)"
        }
        if let r = range(a[KernelABI.fraSportRange], UInt16.self) { other.append("sport " + r) }
        if let r = range(a[KernelABI.fraDportRange], UInt16.self) { other.append("dport " + r) }
        if let r = range(a[KernelABI.fraUIDRange], UInt32.self) { other.append("uidrange " + r) }
        if let id = a.bigEndianU64(KernelABI.fraTunID) { other.append("tun_id \(id)") }
        if let g = a.u32(KernelABI.fraSuppressIfgroup), g != UInt32.max { other.append("suppress_ifgroup \(g)") }
        if a.u8(KernelABI.fraL3mdev).map({ $0 != 0 }) == true { other.append("l3mdev") }
        otherSelectors = other
    }
}

/// One route, with the fields `ip -j route` prints that the capture model keeps, plus its table number.
public struct RoutingTableEntry: Sendable, Hashable {
    public var family: Family
    public var table: UInt32
    /// `rtm_type` as `ip` names it (`unicast`, `local`, `blackhole`, ...).
    public var type: String
    /// `dst` as `ip` prints it: `default`, a bare host address for a host prefix, else `address/length`.
    public var destination: String
    /// `dev`: the output interface's name (`if<index>` when it has none, as `ip` does).
    public var device: String?
    /// `scope` as `ip` names it (`global`, `link`, `host`, ...).
    public var scope: String

    /// The capture model's view, with the table spelled as `ip` spells it.
    public var route: PolicyRouting.Route {
        .init(family: family, type: type, destination: destination, device: device, table: NetlinkRouting.tableName(table))
    }

    init(family: Family, header: RouteHeader, attributes a: NetlinkAttributes, linkNames: [UInt32: String]) {
        self.family = family
        table = a.u32(KernelABI.rtaTable) ?? UInt32(header.table)
        type = KernelABI.routeTypeNames[header.type] ?? String(header.type)
        destination = NetlinkRouting.prefixText(family: family, address: a[KernelABI.rtaDst], length: header.destinationLength, none: "default")
        device = a.u32(KernelABI.rtaOif).map { linkNames[$0] ?? "if\($0)" }
        scope = KernelABI.scopeNames[header.scope] ?? String(header.scope)
    }
}

/// One interface address (`ip addr`): used for "does the pod have a global IPv6 address" and to match pods by IP.
public struct InterfaceAddress: Sendable, Hashable {
    public var interface: String
    public var interfaceIndex: UInt32
    public var family: Family
    /// `IFA_LOCAL`, else `IFA_ADDRESS` (what `ip` prints as `local`).
    public var address: IPAddress
    public var prefixLength: Int
    /// `global`, `link`, `host`, `site`, `nowhere`, or the number.
    public var scope: String
    /// `IFA_FLAGS` (else `ifa_flags`): `IFA_F_TENTATIVE`, `IFA_F_DADFAILED`, ...
    public var flags: UInt32

    public var isGlobal: Bool { scope == "global" }

    init?(header: AddressHeader, attributes a: NetlinkAttributes, linkNames: [UInt32: String]) {
        guard let family = Family(addressFamily: header.family),
              let bytes = a[KernelABI.ifaLocal] ?? a[KernelABI.ifaAddress],
              let address = IPAddress(bytes: bytes, family: family) else { return nil }
        self.family = family
        self.address = address
        interfaceIndex = header.index
        interface = linkNames[header.index] ?? "if\(header.index)"
        prefixLength = Int(header.prefixLength)
        scope = KernelABI.scopeNames[header.scope] ?? String(header.scope)
        flags = a.u32(KernelABI.ifaFlags) ?? UInt32(header.flags)
    }
}

extension Family {
    /// `AF_INET` / `AF_INET6`.
    var addressFamily: UInt8 { self == .ipv4 ? KernelABI.afInet : KernelABI.afInet6 }

    init?(addressFamily: UInt8) {
        switch addressFamily {
        case KernelABI.afInet: self = .ipv4
        case KernelABI.afInet6: self = .ipv6
        default: return nil
        }
    }
}

extension IPAddress {
    /// An address from its network-order bytes (4 or 16, matching the family).
    init?(bytes: [UInt8], family: Family) {
        guard bytes.count == family.addressBits / 8 else { return nil }
        self.init(family: family, value: bytes.reduce(UInt128(0)) { $0 << 8 | UInt128($1) })
    }
}

extension NetlinkFailure {
    /// The reader error callers see, one line.
    var readerError: RuleReaderError {
        if errno == EPERM || errno == EACCES {
            return .insufficientPrivilege(detail: "\(request): \(reason)")
        }
        return .netlink(request: request, reason: reason)
    }
}
