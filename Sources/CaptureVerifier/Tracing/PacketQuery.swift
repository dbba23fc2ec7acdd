import NetfilterModel

/// A packet as `iptaudit trace` was told about it: the fields the user gave are fixed, the others are
/// unknown and every value they can take is followed. The conntrack state, mark and connmark default to
/// what the first packet of a new connection carries (NEW, 0, 0): they are set, not unknown.
public struct PacketQuery: Hashable, Sendable {
    /// Locally generated (raw → mangle → nat OUTPUT, then back in on `lo` when routed there) or arriving
    /// from the network (raw → mangle → nat PREROUTING).
    public enum Direction: String, Hashable, Sendable, Codable {
        case outbound = "out", inbound = "in"
    }

    public var direction: Direction
    public var family: Family
    public var protocolNumber: UInt16
    public var destination: IPAddress
    public var destinationPort: UInt16?
    public var source: IPAddress?
    public var sourcePort: UInt16?
    /// Socket owner; only locally generated packets have one.
    public var uid: UInt32?
    public var gid: UInt32?
    /// Inbound only. Unknown: any interface but `lo`.
    public var inInterface: String?
    /// Outbound only. Unknown: `lo` for a loopback destination (the kernel routes it there), else any other.
    public var outInterface: String?
    public var mark: UInt32
    public var connmark: UInt32
    public var state: ConntrackState

    public init(direction: Direction, family: Family, protocolNumber: UInt16, destination: IPAddress,
                destinationPort: UInt16? = nil, source: IPAddress? = nil, sourcePort: UInt16? = nil,
                uid: UInt32? = nil, gid: UInt32? = nil, inInterface: String? = nil, outInterface: String? = nil,
                mark: UInt32 = 0, connmark: UInt32 = 0, state: ConntrackState = .new) {
        self.direction = direction
        self.family = family
        self.protocolNumber = protocolNumber
        self.destination = destination
        self.destinationPort = destinationPort
        self.source = source
        self.sourcePort = sourcePort
        self.uid = uid
        self.gid = gid
        self.inInterface = inInterface
        self.outInterface = outInterface
        self.mark = mark
        self.connmark = connmark
        self.state = state
    }

    /// Every field fixed to the packet's values (a witness replayed). Outbound when the packet has an owner
    /// or no input interface.
    public init(packet p: Packet) {
        let outbound = p.uid != nil || p.gid != nil || p.inInterface == nil
        self.init(direction: outbound ? .outbound : .inbound, family: p.family, protocolNumber: p.protocolNumber,
                  destination: p.destination, destinationPort: p.destinationPort, source: p.source,
                  sourcePort: p.sourcePort, uid: p.uid, gid: p.gid,
                  inInterface: outbound ? nil : p.inInterface, outInterface: outbound ? p.outInterface : nil,
                  mark: p.mark, connmark: p.connmark, state: p.state)
        if outbound, p.outInterface == nil { unroutedOutput = true }
    }

    /// A locally generated packet with no output interface (only a replayed witness can be one).
    var unroutedOutput = false

    /// The destination is one of the namespace's own addresses (a live read knows them): the kernel routes it over
    /// `lo`, as it does a loopback address, and hands it back in on `lo`.
    public var destinationIsLocal = false

    /// The tables this packet meets, as the kernel orders them.
    public var pipeline: Pipeline { direction == .outbound ? .localOutputThenLoopback : .inbound }

    var hasPorts: Bool { [6, 17, 33, 132, 136].contains(protocolNumber) }

    /// Loopback destinations, and the namespace's own addresses, are routed over `lo`.
    var loopbackDestination: Bool { destination.isLoopback || destinationIsLocal }

    /// Fields the user fixed (state, mark and connmark always are).
    public var givenFields: Set<PacketField> {
        var s: Set<PacketField> = [.l4Protocol, .destination, .mark, .connmark, .ctState]
        if destinationPort != nil || !hasPorts { s.insert(.destinationPort) }
        if source != nil { s.insert(.source) }
        if sourcePort != nil || !hasPorts { s.insert(.sourcePort) }
        if direction == .outbound {
            s.insert(.inInterface)
            if outInterface != nil || loopbackDestination || unroutedOutput { s.insert(.outInterface) }
            if uid != nil { s.insert(.uid) }
            if gid != nil { s.insert(.gid) }
        } else {
            s.formUnion([.outInterface, .uid, .gid])
            if inInterface != nil { s.insert(.inInterface) }
        }
        return s
    }
}
