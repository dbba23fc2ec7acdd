import NetfilterModel

/// The namespace's sockets and addresses, read the way any process in the pod may: `/proc/…/net/tcp`, `tcp6`,
/// `udp`, `udp6` (world-readable) and an RTM_GETADDR dump (unprivileged). No capability, no packet, no rule.
public struct NamespaceSockets: Sendable, Hashable {
    public var sockets: [ObservedSocket]
    /// Every address of the namespace's interfaces (loopback included): a destination among them is routed
    /// over `lo`; a peer among them is another socket of the pod.
    public var localAddresses: [IPAddress]
    /// The files that were read, for the report's header.
    public var source: String

    public init(sockets: [ObservedSocket], localAddresses: [IPAddress], source: String) {
        self.sockets = sockets
        self.localAddresses = localAddresses
        self.source = source
    }
}

public enum SocketTables {
    /// The tables of the current namespace (`/proc/thread-self/net`), of a process's (`/proc/PID/net`, which the
    /// kernel shows for the process's namespace), or of a namespace file, read on `NetworkNamespace`'s thread.
    public static func read(pid: Int32?, namespacePath: String?) throws(RuleReaderError) -> NamespaceSockets {
        if let pid {
            let sockets = try readTables(directory: "/proc/\(pid)/net")
            // The addresses need a netlink socket in the namespace; a process's namespace file is entered only
            // when allowed (root), else the sockets' own local addresses stand in.
            let addresses = (try? NetworkNamespace.performing(at: "/proc/\(pid)/ns/net") { () throws(RuleReaderError) in
                try NetlinkRouting.addresses()
            }).map { $0.map(\.address) }
            return NamespaceSockets(sockets: sockets, localAddresses: addresses ?? boundAddresses(sockets),
                                    source: "sockets of process \(pid) (/proc/\(pid)/net)")
        }
        let (sockets, addresses) = try NetworkNamespace.performing(at: namespacePath) { () throws(RuleReaderError) in
            (try readTables(directory: "/proc/thread-self/net"), try NetlinkRouting.addresses().map(\.address))
        }
        return NamespaceSockets(sockets: sockets, localAddresses: addresses,
                                source: namespacePath.map { "sockets of namespace \($0)" } ?? "sockets of this network namespace")
    }

    /// Local addresses of bound sockets: the namespace's addresses as far as its sockets show them.
    static func boundAddresses(_ sockets: [ObservedSocket]) -> [IPAddress] {
        Array(Set(sockets.map(\.local.address).filter { $0.value != 0 })).sorted()
    }

    static func readTables(directory: String) throws(RuleReaderError) -> [ObservedSocket] {
        var out: [ObservedSocket] = []
        for (file, transport) in [("tcp", ObservedSocket.Transport.tcp), ("tcp6", .tcp), ("udp", .udp), ("udp6", .udp)] {
            let path = directory + "/" + file
            guard let text = readSmallFile(path, limit: 256 << 20) else {
                // tcp6/udp6 are absent when the kernel has no IPv6; tcp is always there.
                if file.hasSuffix("6") { continue }
                throw .unreadableInput(file: path, reason: "cannot read the socket table")
            }
            out += try parse(text, transport: transport, file: path)
        }
        return out
    }

    /// One socket table's text. Columns: `sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt
    /// uid timeout inode …`; addresses are hex, each 32-bit word in host (little-endian) byte order, ports big-endian hex.
    public static func parse(_ text: String, transport: ObservedSocket.Transport, file: String = "socket table") throws(RuleReaderError) -> [ObservedSocket] {
        var out: [ObservedSocket] = []
        for (index, line) in text.split(separator: "\n").enumerated() where index > 0 {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 10 else { continue }
            guard let local = endpoint(fields[1]), let remote = endpoint(fields[2]),
                  let stateValue = UInt8(fields[3], radix: 16), let state = ObservedSocket.State(rawValue: stateValue),
                  let uid = UInt32(fields[7]), let inode = UInt64(fields[9]) else {
                throw .malformed(file: file, line: index + 1, message: "expected `sl local rem st … uid timeout inode`, got \(line.trimmingWhitespace)")
            }
            out.append(ObservedSocket(transport: transport, local: local, remote: remote, state: state, uid: uid, inode: inode))
        }
        return out
    }

    /// `0100000A:0050` → 10.0.0.1:80; 32 hex digits → IPv6 (an IPv4-mapped one → IPv4).
    static func endpoint(_ text: Substring) -> SocketEndpoint? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1], radix: 16) else { return nil }
        let hex = parts[0]
        guard hex.count == 8 || hex.count == 32 else { return nil }
        var words: [UInt32] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 8)
            guard let w = UInt32(hex[i..<j], radix: 16) else { return nil }
            words.append(UInt32(bigEndian: w))  // the kernel prints each network-order word as a host integer
            i = j
        }
        if words.count == 1 { return SocketEndpoint(IPAddress(ipv4: words[0]), port) }
        let value = words.reduce(UInt128(0)) { ($0 << 32) | UInt128($1) }
        if value >> 32 == 0xFFFF { return SocketEndpoint(IPAddress(ipv4: UInt32(truncatingIfNeeded: value)), port) }
        return SocketEndpoint(IPAddress(family: .ipv6, value: value), port)
    }
}

public enum Privileges {
    /// Whether this thread holds CAP_NET_ADMIN (`CapEff` bit 12 in `/proc/thread-self/status`): without it no
    /// rule store can be read, and `observe` does not try (nor load the libraries that would).
    public static var canReadRules: Bool {
        guard let status = readSmallFile("/proc/thread-self/status", limit: 1 << 16) else { return false }
        for line in status.split(separator: "\n") where line.hasPrefix("CapEff:") {
            guard let mask = UInt64(line.dropFirst("CapEff:".count).trimmingWhitespace, radix: 16) else { return false }
            let capNetAdmin: UInt64 = 12
            return mask & (1 << capNetAdmin) != 0
        }
        return false
    }
}
