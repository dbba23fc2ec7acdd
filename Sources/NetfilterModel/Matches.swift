/// A port or port range with optional inversion (`[!] --dport 80`, `--sport 1:1024`).
public struct PortMatch: Hashable, Sendable, Codable {
    public var range: ClosedRange<UInt16>
    public var inverted: Bool
    public init(_ range: ClosedRange<UInt16>, inverted: Bool = false) {
        self.range = range
        self.inverted = inverted
    }
    public init(_ port: UInt16, inverted: Bool = false) { self.init(port...port, inverted: inverted) }

    /// The whole port space: the kernel's "no condition".
    public var isFullRange: Bool { range == 0...UInt16.max }

    public func matches(_ port: UInt16) -> Bool { range.contains(port) != inverted }
}

/// A numeric id range for the owner match (`--uid-owner 1000-2000`).
public struct IDRangeMatch: Hashable, Sendable, Codable {
    public var range: ClosedRange<UInt32>
    public var inverted: Bool
    public init(_ range: ClosedRange<UInt32>, inverted: Bool = false) {
        self.range = range
        self.inverted = inverted
    }
    public init(_ id: UInt32, inverted: Bool = false) { self.init(id...id, inverted: inverted) }
}

/// `-m tcp`: ports, TCP flags and a TCP option number.
public struct TCPMatch: Hashable, Sendable, Codable {
    public var sourcePort: PortMatch?
    public var destinationPort: PortMatch?
    /// `--tcp-flags MASK COMPARE`; `--syn` is `FIN,SYN,RST,ACK SYN`.
    public var flags: TCPFlagsMatch?
    public var option: TCPOptionMatch?
    public init(sourcePort: PortMatch? = nil, destinationPort: PortMatch? = nil, flags: TCPFlagsMatch? = nil, option: TCPOptionMatch? = nil) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.flags = flags
        self.option = option
    }
}

public struct TCPFlagsMatch: Hashable, Sendable, Codable {
    public var mask: UInt8
    public var compare: UInt8
    public var inverted: Bool
    public init(mask: UInt8, compare: UInt8, inverted: Bool = false) {
        self.mask = mask
        self.compare = compare
        self.inverted = inverted
    }
    /// Flag names in the order iptables prints them.
    public static let names: [(String, UInt8)] = [("FIN", 0x01), ("SYN", 0x02), ("RST", 0x04), ("PSH", 0x08), ("ACK", 0x10), ("URG", 0x20)]
}

public struct TCPOptionMatch: Hashable, Sendable, Codable {
    public var kind: UInt8
    public var inverted: Bool
    public init(kind: UInt8, inverted: Bool = false) {
        self.kind = kind
        self.inverted = inverted
    }
}

/// `-m udp`: source and destination ports.
public struct UDPMatch: Hashable, Sendable, Codable {
    public var sourcePort: PortMatch?
    public var destinationPort: PortMatch?
    public init(sourcePort: PortMatch? = nil, destinationPort: PortMatch? = nil) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }
}

/// `-m multiport`: up to 15 ports or ranges on one side, or on either side.
public struct MultiportMatch: Hashable, Sendable, Codable {
    public enum Direction: String, Hashable, Sendable, Codable {
        case source, destination, either
    }
    public var direction: Direction
    public var ports: [ClosedRange<UInt16>]
    public var inverted: Bool
    public init(direction: Direction, ports: [ClosedRange<UInt16>], inverted: Bool = false) {
        self.direction = direction
        self.ports = ports
        self.inverted = inverted
    }
    public func contains(_ port: UInt16) -> Bool { ports.contains { $0.contains(port) } }
}

/// `-m owner`: the socket owner of locally generated packets (OUTPUT and POSTROUTING only).
public struct OwnerMatch: Hashable, Sendable, Codable {
    public var uid: IDRangeMatch?
    public var gid: IDRangeMatch?
    /// `[!] --socket-exists`: nil when not given, else whether it is inverted.
    public var socketExists: Bool?
    /// `--suppl-groups`: `--gid-owner` also matches supplementary groups.
    public var supplementaryGroups: Bool
    public init(uid: IDRangeMatch? = nil, gid: IDRangeMatch? = nil, socketExists: Bool? = nil, supplementaryGroups: Bool = false) {
        self.uid = uid
        self.gid = gid
        self.socketExists = socketExists
        self.supplementaryGroups = supplementaryGroups
    }
}

/// `-m mark` and `-m connmark`: `(value & mask) == mark`.
public struct MarkMatch: Hashable, Sendable, Codable {
    public var value: UInt32
    public var mask: UInt32
    public var inverted: Bool
    public init(value: UInt32, mask: UInt32 = 0xFFFF_FFFF, inverted: Bool = false) {
        self.value = value
        self.mask = mask
        self.inverted = inverted
    }
    public func matches(_ mark: UInt32) -> Bool { ((mark & mask) == value) != inverted }
}

/// Conntrack states, with the kernel's bit values of `xt_conntrack`.
public struct ConntrackStates: OptionSet, Hashable, Sendable, Codable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let invalid = ConntrackStates(rawValue: 1 << 0)
    public static let established = ConntrackStates(rawValue: 1 << 1)
    public static let related = ConntrackStates(rawValue: 1 << 2)
    public static let new = ConntrackStates(rawValue: 1 << 3)
    public static let snat = ConntrackStates(rawValue: 1 << 6)
    public static let dnat = ConntrackStates(rawValue: 1 << 7)
    public static let untracked = ConntrackStates(rawValue: 1 << 8)
    /// Names in the order iptables prints them.
    public static let names: [(String, ConntrackStates)] = [
        ("INVALID", .invalid), ("NEW", .new), ("RELATED", .related), ("ESTABLISHED", .established),
        ("UNTRACKED", .untracked), ("SNAT", .snat), ("DNAT", .dnat),
    ]
}

/// Conntrack status bits (`--ctstatus`), as in `nf_conntrack_common.h`.
public struct ConntrackStatus: OptionSet, Hashable, Sendable, Codable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let names: [(String, ConntrackStatus)] = [
        ("EXPECTED", .init(rawValue: 1 << 0)), ("SEEN_REPLY", .init(rawValue: 1 << 1)),
        ("ASSURED", .init(rawValue: 1 << 2)), ("CONFIRMED", .init(rawValue: 1 << 3)),
    ]
}

/// `-m conntrack`: connection tracking state and tuple conditions.
public struct ConntrackMatch: Hashable, Sendable, Codable {
    public struct Condition<Value: Hashable & Sendable & Codable>: Hashable, Sendable, Codable {
        public var value: Value
        public var inverted: Bool
        public init(_ value: Value, inverted: Bool = false) {
            self.value = value
            self.inverted = inverted
        }
    }
    public enum Direction: String, Hashable, Sendable, Codable { case original = "ORIGINAL", reply = "REPLY" }

    public var states: Condition<ConntrackStates>?
    public var l4Protocol: Condition<UInt16>?
    public var originalSource: Condition<AddressMatch>?
    public var originalDestination: Condition<AddressMatch>?
    public var replySource: Condition<AddressMatch>?
    public var replyDestination: Condition<AddressMatch>?
    public var originalSourcePort: Condition<ClosedRange<UInt16>>?
    public var originalDestinationPort: Condition<ClosedRange<UInt16>>?
    public var replySourcePort: Condition<ClosedRange<UInt16>>?
    public var replyDestinationPort: Condition<ClosedRange<UInt16>>?
    public var status: Condition<ConntrackStatus>?
    public var expires: Condition<ClosedRange<UInt32>>?
    public var direction: Direction?

    public init(states: Condition<ConntrackStates>? = nil) { self.states = states }
}

/// `-m state --state ...` (kept apart from conntrack because iptables prints it as `state`).
public struct StateMatch: Hashable, Sendable, Codable {
    public var states: ConntrackStates
    public var inverted: Bool
    public init(states: ConntrackStates, inverted: Bool = false) {
        self.states = states
        self.inverted = inverted
    }
}

/// Address types of `-m addrtype` (bit i is RTN type i).
public struct AddressTypes: OptionSet, Hashable, Sendable, Codable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let names = ["UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE", "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE"]
    public static let local = AddressTypes(rawValue: 1 << 2)
}

public struct AddrtypeMatch: Hashable, Sendable, Codable {
    public var sourceTypes: AddressTypes?
    public var sourceInverted: Bool
    public var destinationTypes: AddressTypes?
    public var destinationInverted: Bool
    public var limitInterfaceIn: Bool
    public var limitInterfaceOut: Bool
    public init(sourceTypes: AddressTypes? = nil, sourceInverted: Bool = false, destinationTypes: AddressTypes? = nil,
                destinationInverted: Bool = false, limitInterfaceIn: Bool = false, limitInterfaceOut: Bool = false) {
        self.sourceTypes = sourceTypes
        self.sourceInverted = sourceInverted
        self.destinationTypes = destinationTypes
        self.destinationInverted = destinationInverted
        self.limitInterfaceIn = limitInterfaceIn
        self.limitInterfaceOut = limitInterfaceOut
    }
}

/// `-m statistic`: random sampling or every-nth packet, as kube-proxy uses for load balancing.
public struct StatisticMatch: Hashable, Sendable, Codable {
    public enum Mode: Hashable, Sendable, Codable {
        /// Probability in the kernel's fixed point: matches when `random32 < probability` (of 2^31).
        case random(probability: UInt32)
        case nth(every: UInt32, packet: UInt32)
    }
    public var mode: Mode
    public var inverted: Bool
    public init(mode: Mode, inverted: Bool = false) {
        self.mode = mode
        self.inverted = inverted
    }
}

/// `-m set --match-set NAME src,dst`.
public struct SetMatch: Hashable, Sendable, Codable {
    public enum Direction: String, Hashable, Sendable, Codable { case source = "src", destination = "dst" }
    public var name: String
    public var directions: [Direction]
    public var inverted: Bool
    public var returnNoMatch: Bool
    public var updateCounters: Bool
    public var updateSubcounters: Bool
    /// `[!] --packets-eq|lt|gt N` and the byte counterpart, as printed.
    public var counterConditions: [String]
    public init(name: String, directions: [Direction], inverted: Bool = false, returnNoMatch: Bool = false,
                updateCounters: Bool = true, updateSubcounters: Bool = true, counterConditions: [String] = []) {
        self.name = name
        self.directions = directions
        self.inverted = inverted
        self.returnNoMatch = returnNoMatch
        self.updateCounters = updateCounters
        self.updateSubcounters = updateSubcounters
        self.counterConditions = counterConditions
    }
}

/// `-m socket`: a local socket exists for the packet (TPROXY setups).
public struct SocketMatch: Hashable, Sendable, Codable {
    public var transparent: Bool
    public var noWildcard: Bool
    public var restoreSocketMark: Bool
    public init(transparent: Bool = false, noWildcard: Bool = false, restoreSocketMark: Bool = false) {
        self.transparent = transparent
        self.noWildcard = noWildcard
        self.restoreSocketMark = restoreSocketMark
    }
}

/// `-m mac --mac-source`.
public struct MACMatch: Hashable, Sendable, Codable {
    public var address: [UInt8]
    public var inverted: Bool
    public init(address: [UInt8], inverted: Bool = false) {
        self.address = address
        self.inverted = inverted
    }
}

/// A match or target iptaudit does not decode. Kept whole so nothing is silently dropped.
public struct UnrecognizedExtension: Hashable, Sendable, Codable {
    public var name: String
    /// Kernel revision, when read from the kernel.
    public var revision: UInt8?
    /// The kernel payload, when read through libiptc.
    public var payload: [UInt8]?
    /// The options as written, when read from save text (so they print back unchanged).
    public var arguments: [String]?
    public init(name: String, revision: UInt8? = nil, payload: [UInt8]? = nil, arguments: [String]? = nil) {
        self.name = name
        self.revision = revision
        self.payload = payload
        self.arguments = arguments
    }
}

/// A match (`-m NAME ...`) of a rule.
///
/// Rules store their matches inline, so a match costs as much as its largest case: `conntrack` (nearly 370 bytes
/// of optional tuple conditions) is boxed to keep every other match at 48 bytes, which on a node-sized table is
/// most of the model's memory and of the time spent copying matches.
public enum Match: Hashable, Sendable, Codable {
    case tcp(TCPMatch)
    case udp(UDPMatch)
    case multiport(MultiportMatch)
    case owner(OwnerMatch)
    case mark(MarkMatch)
    case connmark(MarkMatch)
    indirect case conntrack(ConntrackMatch)
    case state(StateMatch)
    case comment(String)
    case addrtype(AddrtypeMatch)
    case statistic(StatisticMatch)
    case set(SetMatch)
    case socket(SocketMatch)
    case mac(MACMatch)
    case unrecognized(UnrecognizedExtension)

    /// The extension name as `-m` spells it.
    public var name: String {
        switch self {
        case .tcp: "tcp"
        case .udp: "udp"
        case .multiport: "multiport"
        case .owner: "owner"
        case .mark: "mark"
        case .connmark: "connmark"
        case .conntrack: "conntrack"
        case .state: "state"
        case .comment: "comment"
        case .addrtype: "addrtype"
        case .statistic: "statistic"
        case .set: "set"
        case .socket: "socket"
        case .mac: "mac"
        case .unrecognized(let u): u.name
        }
    }
}
