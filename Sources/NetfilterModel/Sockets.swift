/// One address and port of a socket, as `/proc/net/tcp` lists it.
public struct SocketEndpoint: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(_ address: IPAddress, _ port: UInt16) {
        self.address = address
        self.port = port
    }

    /// `10.0.0.1:80`, `[fd00::1]:80`.
    public var description: String {
        address.family == .ipv6 ? "[\(address)]:\(port)" : "\(address):\(port)"
    }

    /// The unspecified address (`0.0.0.0`, `::`): a listener on every address, or an unconnected peer.
    public var isUnspecified: Bool { address.value == 0 }

    public var isLoopback: Bool { address.isLoopback }

    public static func < (a: SocketEndpoint, b: SocketEndpoint) -> Bool { (a.address, a.port) < (b.address, b.port) }
}

/// One socket of a network namespace, as the kernel's socket tables (`/proc/net/tcp`, `tcp6`, `udp`, `udp6`)
/// show it to any process in the namespace, privileged or not: what `iptaudit observe` audits capture by.
///
/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, a dual-stack socket carrying IPv4) is kept as the IPv4
/// address it carries, since that is the family its packets have.
public struct ObservedSocket: Hashable, Sendable, Codable {
    public enum Transport: String, Hashable, Sendable, Codable { case tcp, udp }

    /// The kernel's TCP states (`include/net/tcp_states.h`); UDP sockets show 07 (`CLOSE`) unconnected and 01
    /// (`ESTABLISHED`) after `connect`.
    public enum State: UInt8, Hashable, Sendable, Codable {
        case established = 1, synSent, synReceived, finWait1, finWait2, timeWait, close, closeWait, lastAck, listen, closing, newSynReceived
    }

    public var transport: Transport
    public var local: SocketEndpoint
    public var remote: SocketEndpoint
    public var state: State
    /// The effective UID that created the socket: what `-m owner --uid-owner` matches.
    public var uid: UInt32
    /// 0 for sockets no process holds any more (TIME_WAIT, orphans).
    public var inode: UInt64

    public init(transport: Transport, local: SocketEndpoint, remote: SocketEndpoint, state: State, uid: UInt32, inode: UInt64) {
        self.transport = transport
        self.local = local
        self.remote = remote
        self.state = state
        self.uid = uid
        self.inode = inode
    }

    public var family: Family { local.address.family }
    public var protocolNumber: UInt16 { transport == .tcp ? ProtocolMatch.tcp : ProtocolMatch.udp }
}
