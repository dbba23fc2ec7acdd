/// `-i`/`-o`: an interface name, `+` for any suffix, possibly inverted.
public struct InterfaceMatch: Hashable, Sendable, Codable {
    /// The name without the trailing `+`.
    public var name: String
    public var wildcard: Bool
    public var inverted: Bool
    public init(name: String, wildcard: Bool = false, inverted: Bool = false) {
        self.name = name
        self.wildcard = wildcard
        self.inverted = inverted
    }
    /// Parses `eth0` or `veth+`.
    public init(_ text: String, inverted: Bool = false) {
        if text.hasSuffix("+") {
            self.init(name: String(text.dropLast()), wildcard: true, inverted: inverted)
        } else {
            self.init(name: text, wildcard: false, inverted: inverted)
        }
    }
    public var text: String { wildcard ? name + "+" : name }

    /// Whether a concrete interface name matches (with inversion).
    public func matches(_ interface: String) -> Bool {
        let hit = wildcard ? interface.hasPrefix(name) : interface == name
        return hit != inverted
    }
}

/// `-p`: an IP protocol number (0 would mean any and is stored as no match).
public struct ProtocolMatch: Hashable, Sendable, Codable {
    public var number: UInt16
    public var inverted: Bool
    public init(_ number: UInt16, inverted: Bool = false) {
        self.number = number
        self.inverted = inverted
    }
    public static let tcp: UInt16 = 6
    public static let udp: UInt16 = 17
    public func matches(_ proto: UInt16) -> Bool { (proto == number) != inverted }
}

/// Where a rule was read from text (`--input FILE`, its `-A` line), so a finding can point CI at that line.
public struct RuleOrigin: Hashable, Sendable, Codable, CustomStringConvertible {
    public var file: String
    /// 1-based.
    public var line: Int
    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }
    /// `file:line`.
    public var description: String { "\(file):\(line)" }
}

/// `Rule.origin`'s storage: invisible to `==` and hashing (and not coded). Where a rule was read never changes what it is,
/// and rules are compared (duplicates, drift, the readers' agreement, a bundle against its source) by what they are.
struct OriginSlot: Hashable, Sendable {
    var value: RuleOrigin?
    init(_ value: RuleOrigin?) { self.value = value }
    static func == (_: OriginSlot, _: OriginSlot) -> Bool { true }
    func hash(into _: inout Hasher) {}
}

/// One rule: the fixed IP header conditions, its matches in order, and its target.
public struct Rule: Hashable, Sendable, Codable {
    public var source: AddressMatch?
    public var destination: AddressMatch?
    public var inInterface: InterfaceMatch?
    public var outInterface: InterfaceMatch?
    public var `protocol`: ProtocolMatch?
    /// `[!] -f` (IPv4 only): nil when absent, else whether it is inverted.
    public var fragment: Bool?
    public var matches: [Match]
    public var target: Target
    public var counters: Counters
    /// The native nftables rule this one was normalized from (nil for iptables rules).
    public var native: NativeRule?
    /// The file and line it was read from (text input only).
    public var origin: RuleOrigin? {
        get { originSlot.value }
        set { originSlot.value = newValue }
    }
    private var originSlot = OriginSlot(nil)

    /// Everything but the origin, which is where the rule was read, not what it is.
    private enum CodingKeys: String, CodingKey {
        case source, destination, inInterface, outInterface, `protocol`, fragment, matches, target, counters, native
    }

    public init(source: AddressMatch? = nil, destination: AddressMatch? = nil, inInterface: InterfaceMatch? = nil,
                outInterface: InterfaceMatch? = nil, protocol: ProtocolMatch? = nil, fragment: Bool? = nil,
                matches: [Match] = [], target: Target = .continue, counters: Counters = .zero) {
        self.source = source
        self.destination = destination
        self.inInterface = inInterface
        self.outInterface = outInterface
        self.protocol = `protocol`
        self.fragment = fragment
        self.matches = matches
        self.target = target
        self.counters = counters
    }

    /// The same rule with counters (and a native rule's handle and text) cleared, for comparisons that must
    /// ignore traffic and where the rule came from.
    public var withoutCounters: Rule {
        var r = self
        r.counters = .zero
        r.native = nil
        r.origin = nil
        return r
    }
}

/// A rule normalized from native nftables: the kernel's handle and the rule as `nft list ruleset` prints it, so
/// findings and traces name it the way nft users know it.
public struct NativeRule: Hashable, Sendable, Codable {
    public var handle: UInt64
    public var text: String
    public init(handle: UInt64, text: String) {
        self.handle = handle
        self.text = text
    }
}
