private import CNetlink
#if canImport(Glibc)
import Glibc
#endif
import NetfilterModel

/// A netlink socket (glibc's socket(2), no library) in the calling thread's network namespace, used only for GET dumps.
///
/// The namespace is fixed when the socket is created (`socket(2)` takes the thread's namespace), so callers that
/// read another namespace create it inside `NetworkNamespace.perform`. Every socket is `SOCK_CLOEXEC`, has a
/// receive timeout so a read always returns, and is closed in `deinit`. Replies are
/// checked against the request's sequence number and the socket's port id and copied into `NetlinkMessage`s
/// before the next `recvfrom` reuses the buffer.
///
/// This is the only file that imports `CNetlink`; the kernel ABI it needs (message types, fixed headers, attribute
/// numbers) is mirrored below as Swift values.
final class NetlinkSocket {
    enum Bus: Sendable {
        /// `NETLINK_ROUTE`: rules, routes, addresses, links.
        case route
        /// `NETLINK_NETFILTER`: nf_tables.
        case netfilter

        var name: String { self == .route ? "NETLINK_ROUTE" : "NETLINK_NETFILTER" }
    }

    /// How long one `recvfrom` waits before the read gives up.
    static let receiveTimeoutSeconds = 5
    /// How often a dump the kernel flags `NLM_F_DUMP_INTR` (the set changed while it was dumped) is repeated.
    static let dumpAttempts = 4

    let bus: Bus
    private let fd: Int32
    private let portID: UInt32
    private var sequence: UInt32

    /// `socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, bus)`, a receive timeout, and a bind with a port id the kernel picks.
    init(_ bus: Bus) throws(NetlinkFailure) {
        self.bus = bus
        let proto = bus == .route ? NETLINK_ROUTE : NETLINK_NETFILTER
        let fd = cnetlink_socket(proto)
        guard fd >= 0 else {
            throw NetlinkFailure(request: "open \(bus.name) socket", errno: errno)
        }
        self.fd = fd
        var timeout = timeval(tv_sec: Self.receiveTimeoutSeconds, tv_usec: 0)
        if setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) != 0 {
            let err = errno
            close(fd)
            throw NetlinkFailure(request: "set a receive timeout on the \(bus.name) socket", errno: err)
        }
        var portID: UInt32 = 0
        if cnetlink_bind(fd, &portID) != 0 {
            let err = errno
            close(fd)
            throw NetlinkFailure(request: "bind the \(bus.name) socket", errno: err)
        }
        self.portID = portID
        // Any start works; distinct values make stale replies from another socket recognizable.
        sequence = UInt32(truncatingIfNeeded: time(nil))
    }

    deinit { close(fd) }

    /// Sends `NLM_F_REQUEST | NLM_F_DUMP` of `type` with the fixed `header` and returns every reply up to
    /// `NLMSG_DONE`. An interrupted dump (`NLM_F_DUMP_INTR`) is repeated up to `dumpAttempts` times.
    /// `headerLength` is the size of the fixed header of each reply; its attributes follow it.
    func dump(_ request: String, type: UInt16, header: [UInt8], replyHeaderLength: Int) throws(NetlinkFailure) -> [NetlinkMessage] {
        for _ in 1...Self.dumpAttempts {
            let (messages, interrupted) = try dumpOnce(request, type: type, header: header, replyHeaderLength: replyHeaderLength)
            if !interrupted { return messages }
        }
        throw NetlinkFailure(request: request, reason: "the kernel reported the dump inconsistent (NLM_F_DUMP_INTR) \(Self.dumpAttempts) times in a row")
    }

    private func dumpOnce(_ request: String, type: UInt16, header: [UInt8], replyHeaderLength: Int) throws(NetlinkFailure) -> ([NetlinkMessage], Bool) {
        sequence &+= 1
        let seq = sequence
        // Dump replies come in skbs of up to 32 KiB (the kernel's dump size).
        var buffer = [UInt8](repeating: 0, count: 32768)
        let sent: Int = buffer.withUnsafeMutableBytes { raw in
            let nlh = cnetlink_nlmsg_put_header(raw.baseAddress)!
            nlh.pointee.nlmsg_type = type
            nlh.pointee.nlmsg_flags = cnetlink_f_request() | cnetlink_f_dump()
            nlh.pointee.nlmsg_seq = seq
            let extra = cnetlink_nlmsg_put_extra_header(nlh, header.count)!
            header.withUnsafeBytes { extra.copyMemory(from: $0.baseAddress!, byteCount: header.count) }
            return cnetlink_sendto(fd, nlh, Int(nlh.pointee.nlmsg_len))
        }
        if sent < 0 { throw NetlinkFailure(request: request, errno: errno) }

        var messages: [NetlinkMessage] = []
        var interrupted = false
        while true {
            let received = buffer.withUnsafeMutableBytes { cnetlink_recvfrom(fd, $0.baseAddress, $0.count) }
            if received < 0 {
                let err = errno
                if err == EINTR { continue }
                if err == EAGAIN || err == EWOULDBLOCK {
                    throw NetlinkFailure(request: request, reason: "no answer from the kernel within \(Self.receiveTimeoutSeconds) s")
                }
                if err == ENOSPC {
                    throw NetlinkFailure(request: request, reason: "a reply was larger than the \(buffer.count)-byte receive buffer")
                }
                throw NetlinkFailure(request: request, errno: err)
            }
            var done = false
            // The closure reports a failure as its result: Array.withUnsafeBytes does not carry a typed throw.
            let failure: NetlinkFailure? = buffer.withUnsafeBytes { raw in
                var remaining = Int32(received)
                var nlh = raw.baseAddress!.assumingMemoryBound(to: nlmsghdr.self)
                while cnetlink_nlmsg_ok(nlh, remaining) {
                    let h = nlh.pointee
                    guard h.nlmsg_seq == seq else {
                        return NetlinkFailure(request: request, reason: "reply with sequence number \(h.nlmsg_seq), expected \(seq)")
                    }
                    guard h.nlmsg_pid == portID else {
                        return NetlinkFailure(request: request, reason: "reply for port id \(h.nlmsg_pid), expected \(portID)")
                    }
                    if h.nlmsg_flags & cnetlink_f_dump_intr() != 0 { interrupted = true }
                    let payloadLength = Int(cnetlink_nlmsg_get_payload_len(nlh))
                    let payload = cnetlink_nlmsg_get_payload(nlh)!
                    switch h.nlmsg_type {
                    case cnetlink_msg_noop():
                        break
                    case cnetlink_msg_error():
                        guard payloadLength >= Int(cnetlink_nlmsgerr_size()) else {
                            return NetlinkFailure(request: request, reason: "truncated NLMSG_ERROR reply")
                        }
                        let code = payload.load(as: nlmsgerr.self).error
                        if code != 0 { return NetlinkFailure(request: request, errno: -code) }
                        done = true  // an acknowledgement ends the exchange
                    case cnetlink_msg_done():
                        // A dump that failed part-way reports the error in NLMSG_DONE's payload.
                        if payloadLength >= 4 {
                            let code = payload.loadUnaligned(as: Int32.self)
                            if code < 0 { return NetlinkFailure(request: request, errno: -code) }
                        }
                        done = true
                    case cnetlink_msg_overrun():
                        return NetlinkFailure(request: request, reason: "the kernel reported a receive overrun (NLMSG_OVERRUN)")
                    default:
                        guard payloadLength >= replyHeaderLength else {
                            return NetlinkFailure(request: request, reason: "reply type \(h.nlmsg_type) shorter than its \(replyHeaderLength)-byte header")
                        }
                        messages.append(Self.copy(nlh, payload: payload, headerLength: replyHeaderLength))
                        if h.nlmsg_flags & cnetlink_f_multi() == 0 { done = true }
                    }
                    if done { return nil }
                    nlh = UnsafePointer(cnetlink_nlmsg_next(nlh, &remaining))
                }
                return nil
            }
            if let failure { throw failure }
            if done { return (messages, interrupted) }
        }
    }

    /// Copies the fixed header and each top-level attribute (`cnetlink_attr_ok` / `cnetlink_attr_next`) into Swift arrays.
    private static func copy(_ nlh: UnsafePointer<nlmsghdr>, payload: UnsafeMutableRawPointer, headerLength: Int) -> NetlinkMessage {
        let header = [UInt8](UnsafeRawBufferPointer(start: payload, count: headerLength))
        var attributes = NetlinkAttributes()
        let tail = UnsafeRawPointer(cnetlink_nlmsg_get_payload_tail(nlh)!)
        var attr = UnsafePointer(cnetlink_nlmsg_get_payload_offset(nlh, headerLength)!.assumingMemoryBound(to: nlattr.self))
        while cnetlink_attr_ok(attr, Int32(tail - UnsafeRawPointer(attr))) {
            let length = Int(cnetlink_attr_get_payload_len(attr))
            let start = UnsafeRawPointer(cnetlink_attr_get_payload(attr)!)
            attributes[cnetlink_attr_get_type(attr)] = [UInt8](UnsafeRawBufferPointer(start: start, count: length))
            attr = UnsafePointer(cnetlink_attr_next(attr)!)
        }
        return NetlinkMessage(type: nlh.pointee.nlmsg_type, flags: nlh.pointee.nlmsg_flags, header: header, attributes: attributes)
    }
}

/// A failed netlink exchange: what was asked and why it failed, with the errno when there is one.
struct NetlinkFailure: Error, Sendable {
    var request: String
    var errno: Int32?
    var reason: String

    init(request: String, reason: String) {
        self.request = request
        self.errno = nil
        self.reason = reason
    }

    init(request: String, errno: Int32) {
        self.request = request
        self.errno = errno
        self.reason = String(cString: strerror(errno))
    }
}

// MARK: - rtnetlink: the requests and fixed headers of `ip rule`, `ip route`, `ip addr` and `ip link`

/// `struct fib_rule_hdr` of an RTM_NEWRULE reply.
struct RuleHeader: Sendable {
    var family: UInt8
    var destinationLength: UInt8
    var sourceLength: UInt8
    var table: UInt8
    var action: UInt8
    var flags: UInt32
    var tos: UInt8 = 0
}

/// `struct rtmsg` of an RTM_NEWROUTE reply.
struct RouteHeader: Sendable {
    var family: UInt8
    var destinationLength: UInt8
    var table: UInt8
    var protocolID: UInt8
    var scope: UInt8
    var type: UInt8
    var flags: UInt32
}

/// `struct ifaddrmsg` of an RTM_NEWADDR reply.
struct AddressHeader: Sendable {
    var family: UInt8
    var prefixLength: UInt8
    var flags: UInt8
    var scope: UInt8
    var index: UInt32
}

/// `struct nfgenmsg` of an NFT_MSG_NEWTABLE reply.
struct NfgenHeader: Sendable {
    var family: UInt8
}

/// Kernel constants the decoders name, mirrored from the C headers so no other file imports CNetlink.
enum KernelABI {
    static let afInet = UInt8(AF_INET)
    static let afInet6 = UInt8(AF_INET6)

    // fib_rules.h
    static let fraDst = UInt16(FRA_DST)
    static let fraSrc = UInt16(FRA_SRC)
    static let fraIifname = UInt16(FRA_IIFNAME)
    static let fraOifname = UInt16(FRA_OIFNAME)
    static let fraPriority = UInt16(FRA_PRIORITY)
    static let fraFwmark = UInt16(FRA_FWMARK)
    static let fraFwmask = UInt16(FRA_FWMASK)
    static let fraTable = UInt16(FRA_TABLE)
    static let fraGoto = UInt16(FRA_GOTO)
    static let fraSuppressPrefixlen = UInt16(FRA_SUPPRESS_PREFIXLEN)
    static let fraSuppressIfgroup = UInt16(FRA_SUPPRESS_IFGROUP)
    static let fraIPProto = UInt16(FRA_IP_PROTO)
    static let fraSportRange = UInt16(FRA_SPORT_RANGE)
    static let fraDportRange = UInt16(FRA_DPORT_RANGE)
    static let fraUIDRange = UInt16(FRA_UID_RANGE)
    static let fraTunID = UInt16(FRA_TUN_ID)
    static let fraL3mdev = UInt16(FRA_L3MDEV)
    static let fibRuleInvert = UInt32(FIB_RULE_INVERT)
    static let frActToTable = UInt8(FR_ACT_TO_TBL)
    static let frActGoto = UInt8(FR_ACT_GOTO)
    static let frActNop = UInt8(FR_ACT_NOP)
    static let frActBlackhole = UInt8(FR_ACT_BLACKHOLE)
    static let frActUnreachable = UInt8(FR_ACT_UNREACHABLE)
    static let frActProhibit = UInt8(FR_ACT_PROHIBIT)

    // rtnetlink.h
    static let rtaDst = UInt16(RTA_DST.rawValue)
    static let rtaOif = UInt16(RTA_OIF.rawValue)
    static let rtaTable = UInt16(RTA_TABLE.rawValue)
    static let rtmFCloned = UInt32(RTM_F_CLONED)
    static let rtTableDefault = UInt32(RT_TABLE_DEFAULT.rawValue)
    static let rtTableMain = UInt32(RT_TABLE_MAIN.rawValue)
    static let rtTableLocal = UInt32(RT_TABLE_LOCAL.rawValue)
    /// `rtm_type` values in order, as iproute2's `rtnl_rtntype_n2a` names them.
    static let routeTypeNames: [UInt8: String] = [
        UInt8(RTN_UNSPEC): "none", UInt8(RTN_UNICAST): "unicast", UInt8(RTN_LOCAL): "local",
        UInt8(RTN_BROADCAST): "broadcast", UInt8(RTN_ANYCAST): "anycast", UInt8(RTN_MULTICAST): "multicast",
        UInt8(RTN_BLACKHOLE): "blackhole", UInt8(RTN_UNREACHABLE): "unreachable", UInt8(RTN_PROHIBIT): "prohibit",
        UInt8(RTN_THROW): "throw", UInt8(RTN_NAT): "nat", UInt8(RTN_XRESOLVE): "xresolve",
    ]
    /// `rt_scope_t`, as iproute2's `rtnl_rtscope_n2a` names them.
    static let scopeNames: [UInt8: String] = [
        UInt8(RT_SCOPE_UNIVERSE.rawValue): "global", UInt8(RT_SCOPE_SITE.rawValue): "site", UInt8(RT_SCOPE_LINK.rawValue): "link",
        UInt8(RT_SCOPE_HOST.rawValue): "host", UInt8(RT_SCOPE_NOWHERE.rawValue): "nowhere",
    ]

    // if_addr.h, if_link.h
    static let ifaAddress = UInt16(IFA_ADDRESS)
    static let ifaLocal = UInt16(IFA_LOCAL)
    static let ifaFlags = UInt16(IFA_FLAGS)
    static let iflaIfname = UInt16(IFLA_IFNAME)

    // nf_tables.h, netfilter.h
    static let nftaTableName = UInt16(NFTA_TABLE_NAME.rawValue)
    static let nftaTableFlags = UInt16(NFTA_TABLE_FLAGS.rawValue)
    static let nftaTableUse = UInt16(NFTA_TABLE_USE.rawValue)
    static let nftaTableHandle = UInt16(NFTA_TABLE_HANDLE.rawValue)
    static let nfprotoInet = UInt8(NFPROTO_INET)
    static let nfprotoIPv4 = UInt8(NFPROTO_IPV4)
    static let nfprotoIPv6 = UInt8(NFPROTO_IPV6)
    static let nfprotoARP = UInt8(NFPROTO_ARP)
    static let nfprotoBridge = UInt8(NFPROTO_BRIDGE)
    static let nfprotoNetdev = UInt8(NFPROTO_NETDEV)
}

extension NetlinkSocket {
    private static func bytes<T>(of value: T) -> [UInt8] {
        withUnsafeBytes(of: value) { Array($0) }
    }

    private static func load<T>(_ type: T.Type, from bytes: [UInt8]) -> T {
        bytes.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }

    /// RTM_GETRULE dump of one family (`ip -4|-6 rule show`).
    func dumpRules(family: UInt8) throws(NetlinkFailure) -> [(RuleHeader, NetlinkAttributes)] {
        var request = fib_rule_hdr()
        request.family = family
        let replies = try dump("RTM_GETRULE dump", type: UInt16(RTM_GETRULE), header: Self.bytes(of: request),
                               replyHeaderLength: MemoryLayout<fib_rule_hdr>.size)
        return replies.filter { $0.type == UInt16(RTM_NEWRULE) }.map { m in
            let h = Self.load(fib_rule_hdr.self, from: m.header)
            return (RuleHeader(family: h.family, destinationLength: h.dst_len, sourceLength: h.src_len, table: h.table,
                               action: h.action, flags: h.flags, tos: h.tos), m.attributes)
        }
    }

    /// RTM_GETROUTE dump of one family, every table (`ip route show table all`).
    func dumpRoutes(family: UInt8) throws(NetlinkFailure) -> [(RouteHeader, NetlinkAttributes)] {
        var request = rtmsg()
        request.rtm_family = family
        let replies = try dump("RTM_GETROUTE dump", type: UInt16(RTM_GETROUTE), header: Self.bytes(of: request),
                               replyHeaderLength: MemoryLayout<rtmsg>.size)
        return replies.filter { $0.type == UInt16(RTM_NEWROUTE) }.map { m in
            let h = Self.load(rtmsg.self, from: m.header)
            return (RouteHeader(family: h.rtm_family, destinationLength: h.rtm_dst_len, table: h.rtm_table, protocolID: h.rtm_protocol,
                                scope: h.rtm_scope, type: h.rtm_type, flags: h.rtm_flags), m.attributes)
        }
    }

    /// RTM_GETADDR dump (`ip addr show`); `family` 0 is both.
    func dumpAddresses(family: UInt8) throws(NetlinkFailure) -> [(AddressHeader, NetlinkAttributes)] {
        var request = ifaddrmsg()
        request.ifa_family = family
        let replies = try dump("RTM_GETADDR dump", type: UInt16(RTM_GETADDR), header: Self.bytes(of: request),
                               replyHeaderLength: MemoryLayout<ifaddrmsg>.size)
        return replies.filter { $0.type == UInt16(RTM_NEWADDR) }.map { m in
            let h = Self.load(ifaddrmsg.self, from: m.header)
            return (AddressHeader(family: h.ifa_family, prefixLength: h.ifa_prefixlen, flags: h.ifa_flags, scope: h.ifa_scope,
                                  index: h.ifa_index), m.attributes)
        }
    }

    /// RTM_GETLINK dump: interface index → name (`ip link show`).
    func dumpLinkNames() throws(NetlinkFailure) -> [UInt32: String] {
        let request = ifinfomsg()
        let replies = try dump("RTM_GETLINK dump", type: UInt16(RTM_GETLINK), header: Self.bytes(of: request),
                               replyHeaderLength: MemoryLayout<ifinfomsg>.size)
        var names: [UInt32: String] = [:]
        for m in replies where m.type == UInt16(RTM_NEWLINK) {
            let h = Self.load(ifinfomsg.self, from: m.header)
            if let name = m.attributes.string(KernelABI.iflaIfname) { names[UInt32(bitPattern: h.ifi_index)] = name }
        }
        return names
    }

    /// NFT_MSG_GETTABLE dump over every family (`nft list tables`); only lists, never creates.
    func dumpNftTables() throws(NetlinkFailure) -> [(NfgenHeader, NetlinkAttributes)] {
        var request = nfgenmsg()
        request.nfgen_family = UInt8(NFPROTO_UNSPEC)
        request.version = UInt8(NFNETLINK_V0)
        request.res_id = 0
        let replies = try dump("NFT_MSG_GETTABLE dump", type: cnetlink_nft_msg_type(UInt16(NFT_MSG_GETTABLE.rawValue)),
                               header: Self.bytes(of: request), replyHeaderLength: MemoryLayout<nfgenmsg>.size)
        let newTable = cnetlink_nft_msg_type(UInt16(NFT_MSG_NEWTABLE.rawValue))
        return replies.filter { $0.type == newTable }.map { m in
            (NfgenHeader(family: Self.load(nfgenmsg.self, from: m.header).nfgen_family), m.attributes)
        }
    }
}
