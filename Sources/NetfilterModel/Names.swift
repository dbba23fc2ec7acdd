/// The address family a table belongs to: iptables (IPv4) or ip6tables (IPv6).
public enum Family: String, Sendable, Codable, CaseIterable, Hashable, Comparable, CustomStringConvertible {
    case ipv4
    case ipv6

    /// Spelled out so that `"\(family)"` is a static call: without it, interpolation finds the case name at run
    /// time, scanning every protocol conformance in the binary (a quarter of a healthy pod's `verify`).
    public var description: String { rawValue }

    /// Bits in an address of this family.
    public var addressBits: Int { self == .ipv4 ? 32 : 128 }

    /// The command whose save output this family corresponds to.
    public var saveCommand: String { self == .ipv4 ? "iptables-save" : "ip6tables-save" }

    public static func < (lhs: Family, rhs: Family) -> Bool { lhs == .ipv4 && rhs == .ipv6 }
}

/// A netfilter table name. The four that carry Istio's rules have constants; others are kept as given.
public struct TableName: RawRepresentable, Hashable, Sendable, Codable, Comparable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    public static let nat: TableName = "nat"
    public static let mangle: TableName = "mangle"
    public static let raw: TableName = "raw"
    public static let filter: TableName = "filter"
    public static let security: TableName = "security"

    /// Tables iptaudit reads by default, in the order reports walk them.
    public static let standard: [TableName] = [.raw, .mangle, .nat, .filter]

    /// Built-in chains of this table in hook order, the order iptables-save lists them.
    public var builtinChains: [ChainName] {
        switch rawValue {
        case "nat": return [.prerouting, .input, .output, .postrouting]
        case "mangle": return [.prerouting, .input, .forward, .output, .postrouting]
        case "raw": return [.prerouting, .output]
        case "filter", "security": return [.input, .forward, .output]
        default: return []
        }
    }

    public var description: String { rawValue }
    public static func < (lhs: TableName, rhs: TableName) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A chain name: a built-in hook chain or a user-defined chain.
public struct ChainName: RawRepresentable, Hashable, Sendable, Codable, Comparable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    public static let prerouting: ChainName = "PREROUTING"
    public static let input: ChainName = "INPUT"
    public static let forward: ChainName = "FORWARD"
    public static let output: ChainName = "OUTPUT"
    public static let postrouting: ChainName = "POSTROUTING"

    public static let hookChains: Set<ChainName> = [.prerouting, .input, .forward, .output, .postrouting]

    public var isHookChain: Bool { Self.hookChains.contains(self) }
    public var description: String { rawValue }
    public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: any Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(rawValue) }
    public static func < (lhs: ChainName, rhs: ChainName) -> Bool { lhs.rawValue < rhs.rawValue }
}

extension TableName {
    public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: any Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(rawValue) }
}

/// The policy of a built-in chain.
public enum Policy: String, Sendable, Codable, Hashable {
    case accept = "ACCEPT"
    case drop = "DROP"
}

/// Packet and byte counters, as the kernel keeps them per rule and per built-in policy.
public struct Counters: Sendable, Codable, Hashable {
    public var packets: UInt64
    public var bytes: UInt64
    public init(packets: UInt64 = 0, bytes: UInt64 = 0) {
        self.packets = packets
        self.bytes = bytes
    }
    public static let zero = Counters()
}
