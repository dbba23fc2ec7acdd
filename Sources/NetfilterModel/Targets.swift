/// An address and port range a NAT target maps to (`--to-destination 10.0.0.1-10.0.0.9:80-90`).
public struct NATRange: Hashable, Sendable, Codable {
    public var minAddress: IPAddress?
    public var maxAddress: IPAddress?
    public var ports: ClosedRange<UInt16>?
    /// `/BASE` port offset (revision 2 only).
    public var basePort: UInt16?
    public init(minAddress: IPAddress? = nil, maxAddress: IPAddress? = nil, ports: ClosedRange<UInt16>? = nil, basePort: UInt16? = nil) {
        self.minAddress = minAddress
        self.maxAddress = maxAddress ?? minAddress
        self.ports = ports
        self.basePort = basePort
    }
}

/// DNAT and SNAT.
public struct NATTarget: Hashable, Sendable, Codable {
    public var range: NATRange?
    public var random: Bool
    public var randomFully: Bool
    public var persistent: Bool
    public init(range: NATRange?, random: Bool = false, randomFully: Bool = false, persistent: Bool = false) {
        self.range = range
        self.random = random
        self.randomFully = randomFully
        self.persistent = persistent
    }
}

/// REDIRECT and MASQUERADE: rewrite to the local address (or the outgoing interface's), optionally to ports.
public struct PortRewriteTarget: Hashable, Sendable, Codable {
    public var ports: ClosedRange<UInt16>?
    public var random: Bool
    public var randomFully: Bool
    public init(ports: ClosedRange<UInt16>? = nil, random: Bool = false, randomFully: Bool = false) {
        self.ports = ports
        self.random = random
        self.randomFully = randomFully
    }
}

/// `MARK --set-xmark value/mask`: `mark = (mark & ~mask) ^ value`.
public struct MarkTarget: Hashable, Sendable, Codable {
    public var value: UInt32
    public var mask: UInt32
    public init(value: UInt32, mask: UInt32 = 0xFFFF_FFFF) {
        self.value = value
        self.mask = mask
    }
    public func apply(to mark: UInt32) -> UInt32 { (mark & ~mask) ^ value }
}

/// CONNMARK: set the connection mark, or copy between packet mark and connection mark.
public struct ConnmarkTarget: Hashable, Sendable, Codable {
    public enum Mode: Hashable, Sendable, Codable {
        case set(value: UInt32, mask: UInt32)
        /// Packet mark → connection mark.
        case save(nfmask: UInt32, ctmask: UInt32)
        /// Connection mark → packet mark.
        case restore(nfmask: UInt32, ctmask: UInt32)
    }
    public var mode: Mode
    /// Revision 2 shift (`--left-shift-mark N` / `--right-shift-mark N`), 0 when absent.
    public var shiftLeft: Bool
    public var shiftBits: UInt8
    public init(mode: Mode, shiftLeft: Bool = false, shiftBits: UInt8 = 0) {
        self.mode = mode
        self.shiftLeft = shiftLeft
        self.shiftBits = shiftBits
    }
}

/// TPROXY: deliver to a local socket without rewriting the destination, and mark the packet.
public struct TProxyTarget: Hashable, Sendable, Codable {
    public var port: UInt16
    public var address: IPAddress
    public var markValue: UInt32
    public var markMask: UInt32
    public init(port: UInt16, address: IPAddress, markValue: UInt32, markMask: UInt32) {
        self.port = port
        self.address = address
        self.markValue = markValue
        self.markMask = markMask
    }
}

/// CT: conntrack template (zones, notrack, helper).
public struct CTTarget: Hashable, Sendable, Codable {
    public var notrack: Bool
    /// Written as `-j NOTRACK`, which iptables keeps as an alias of `CT --notrack`.
    public var notrackAlias: Bool
    public var helper: String?
    public var timeout: String?
    public var connectionEvents: UInt32
    public var expectationEvents: UInt32
    public var zone: UInt16
    /// `--zone-orig` / `--zone-reply` restrict the zone to one direction.
    public var zoneOriginalOnly: Bool
    public var zoneReplyOnly: Bool
    public init(notrack: Bool = false, notrackAlias: Bool = false, helper: String? = nil, timeout: String? = nil,
                connectionEvents: UInt32 = 0, expectationEvents: UInt32 = 0, zone: UInt16 = 0,
                zoneOriginalOnly: Bool = false, zoneReplyOnly: Bool = false) {
        self.notrack = notrack
        self.notrackAlias = notrackAlias
        self.helper = helper
        self.timeout = timeout
        self.connectionEvents = connectionEvents
        self.expectationEvents = expectationEvents
        self.zone = zone
        self.zoneOriginalOnly = zoneOriginalOnly
        self.zoneReplyOnly = zoneReplyOnly
    }
    /// Event names by bit, as `--ctevents` spells them.
    public static let connectionEventNames = ["new", "related", "destroy", "reply", "assured", "protoinfo", "helper", "mark", "natseqinfo", "secmark", "label"]
    public static let expectationEventNames = ["new"]
}

public struct LogTarget: Hashable, Sendable, Codable {
    public var prefix: String
    public var level: UInt8
    /// `XT_LOG_*` bits: 1 tcp-sequence, 2 tcp-options, 4 ip-options, 8 uid, 0x20 macdecode.
    public var flags: UInt8
    public init(prefix: String = "", level: UInt8 = 4, flags: UInt8 = 0) {
        self.prefix = prefix
        self.level = level
        self.flags = flags
    }
}

public struct NFLogTarget: Hashable, Sendable, Codable {
    public var group: UInt16
    public var prefix: String
    /// Copy length: `--nflog-size` when `sizeSet`, else the legacy `--nflog-range`.
    public var length: UInt32
    public var sizeSet: Bool
    /// `--nflog-threshold`; iptables 1.8.9 leaves it 0 unless given, and prints it whenever it is not 0.
    public var threshold: UInt16
    public init(group: UInt16 = 0, prefix: String = "", length: UInt32 = 0, sizeSet: Bool = false, threshold: UInt16 = 0) {
        self.group = group
        self.prefix = prefix
        self.length = length
        self.sizeSet = sizeSet
        self.threshold = threshold
    }
}

/// REJECT with the ICMP (or TCP reset) reply, spelled as iptables does for the family.
public struct RejectTarget: Hashable, Sendable, Codable {
    public var with: String
    public init(with: String) { self.with = with }
}

/// What a rule does when it matches.
public enum Target: Hashable, Sendable, Codable {
    /// No `-j`: the rule only counts, evaluation continues.
    case `continue`
    case accept
    case drop
    case queue
    case `return`
    case jump(ChainName)
    case goto(ChainName)
    case redirect(PortRewriteTarget)
    case masquerade(PortRewriteTarget)
    case dnat(NATTarget)
    case snat(NATTarget)
    case mark(MarkTarget)
    case connmark(ConnmarkTarget)
    case tproxy(TProxyTarget)
    case ct(CTTarget)
    case log(LogTarget)
    case nflog(NFLogTarget)
    case reject(RejectTarget)
    case unrecognized(UnrecognizedExtension)

    /// The user chain this target continues in, if any.
    public var chainReference: ChainName? {
        switch self {
        case .jump(let c), .goto(let c): c
        default: nil
        }
    }

    /// The name `-j` uses.
    public var name: String {
        switch self {
        case .continue: ""
        case .accept: "ACCEPT"
        case .drop: "DROP"
        case .queue: "QUEUE"
        case .return: "RETURN"
        case .jump(let c), .goto(let c): c.rawValue
        case .redirect: "REDIRECT"
        case .masquerade: "MASQUERADE"
        case .dnat: "DNAT"
        case .snat: "SNAT"
        case .mark: "MARK"
        case .connmark: "CONNMARK"
        case .tproxy: "TPROXY"
        case .ct(let ct): ct.notrackAlias ? "NOTRACK" : "CT"
        case .log: "LOG"
        case .nflog: "NFLOG"
        case .reject: "REJECT"
        case .unrecognized(let u): u.name
        }
    }
}
