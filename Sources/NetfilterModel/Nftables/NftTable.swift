// The native nf_tables view of a namespace: tables as `nft list ruleset` shows them, not iptables' fixed tables.
// One `inet` table serves both IP families; chains are named freely and hook in with a priority.

/// An nf_tables family, spelled as `nft` spells it.
public enum NftFamily: String, Hashable, Sendable, Codable, CaseIterable {
    case ip, ip6, inet, arp, bridge, netdev

    /// The family of one IP family alone (`ip`, `ip6`): where iptables-nft keeps its tables.
    public init(_ family: Family) { self = family == .ipv4 ? .ip : .ip6 }
}

/// A table of one family: its chains in the kernel's order, and its named sets and maps.
public struct NftTable: Hashable, Sendable, Codable {
    public var family: NftFamily
    public var name: String
    /// The kernel's handle (`nft -a`), stable for the table's lifetime.
    public var handle: UInt64
    /// Table flags (`dormant`, `owner`); empty for most tables.
    public var flags: [String]
    /// Named sets and maps (anonymous sets live inside the rules that use them).
    public var sets: [NftSet]
    /// Stateful objects and flowtables (`counter NAME`, `quota`, `ct helper`, `flowtable`, ...), as nft's JSON
    /// printed them: kept so nothing is dropped, though nothing here interprets them yet.
    public var objects: [NftObject]
    public var chains: [NftChain]

    public init(family: NftFamily, name: String, handle: UInt64 = 0, flags: [String] = [], sets: [NftSet] = [],
                objects: [NftObject] = [], chains: [NftChain] = []) {
        self.family = family
        self.name = name
        self.handle = handle
        self.flags = flags
        self.sets = sets
        self.objects = objects
        self.chains = chains
    }

    public func chain(_ name: String) -> NftChain? { chains.first { $0.name == name } }

    public var ruleCount: Int { chains.reduce(0) { $0 + $1.rules.count } }
}

/// A chain: a base chain (attached to a hook) or a regular chain reached only by jump and goto.
public struct NftChain: Hashable, Sendable, Codable {
    public var name: String
    public var handle: UInt64
    /// Where a base chain hooks in; nil for a regular chain.
    public var base: NftBaseChain?
    public var rules: [NftRule]

    public init(name: String, handle: UInt64 = 0, base: NftBaseChain? = nil, rules: [NftRule] = []) {
        self.name = name
        self.handle = handle
        self.base = base
        self.rules = rules
    }

    public var isBaseChain: Bool { base != nil }
}

/// How a base chain is attached: `type nat hook output priority -100; policy accept;`.
public struct NftBaseChain: Hashable, Sendable, Codable {
    public typealias ChainType = HookRegistration.ChainType
    public typealias Hook = NetfilterModel.Hook
    public enum Policy: String, Hashable, Sendable, Codable { case accept, drop }

    public var type: ChainType
    public var hook: Hook
    /// The numeric priority; lower runs first. `NftSyntax` prints the standard ones by name, as nft does.
    public var priority: Int
    public var policy: Policy
    /// The device of a `netdev` ingress or egress chain.
    public var device: String?

    public init(type: ChainType, hook: Hook, priority: Int, policy: Policy = .accept, device: String? = nil) {
        self.type = type
        self.hook = hook
        self.priority = priority
        self.policy = policy
        self.device = device
    }
}

/// One rule: its statements in order (nft's JSON calls the list `expr`), evaluated left to right.
public struct NftRule: Hashable, Sendable, Codable {
    /// The kernel's handle (`nft -a`): rules are addressed by handle, not position.
    public var handle: UInt64
    public var comment: String?
    public var statements: [NftStatement]

    public init(handle: UInt64 = 0, comment: String? = nil, statements: [NftStatement]) {
        self.handle = handle
        self.comment = comment
        self.statements = statements
    }
}

/// A named set or map, with its elements.
public struct NftSet: Hashable, Sendable, Codable {
    public enum Kind: String, Hashable, Sendable, Codable { case set, map, meter }

    public var kind: Kind
    public var name: String
    public var handle: UInt64
    /// The key's datatype names (`ipv4_addr`; several for a concatenation: `ipv4_addr . inet_service`).
    public var keyType: [String]
    /// A map's data type (`verdict`, `ipv4_addr`, ...).
    public var dataType: String?
    /// `constant`, `interval`, `timeout`.
    public var flags: [String]
    public var policy: String?
    public var size: Int?
    /// Default element timeout and garbage-collection interval, in seconds.
    public var timeout: Int?
    public var gcInterval: Int?
    public var comment: String?
    /// Elements; a map's are `.mapping(key, data)`.
    public var elements: [NftExpression]

    public init(kind: Kind = .set, name: String, handle: UInt64 = 0, keyType: [String], dataType: String? = nil,
                flags: [String] = [], policy: String? = nil, size: Int? = nil, timeout: Int? = nil,
                gcInterval: Int? = nil, comment: String? = nil, elements: [NftExpression] = []) {
        self.kind = kind
        self.name = name
        self.handle = handle
        self.keyType = keyType
        self.dataType = dataType
        self.flags = flags
        self.policy = policy
        self.size = size
        self.timeout = timeout
        self.gcInterval = gcInterval
        self.comment = comment
        self.elements = elements
    }

    enum CodingKeys: String, CodingKey {
        case kind, name, handle, keyType, dataType, flags, policy, size, timeout, gcInterval, comment, elements
    }

    /// Elements decode as set members, so a map's `[key, data]` pairs come back as `.mapping`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(Kind.self, forKey: .kind)
        name = try c.decode(String.self, forKey: .name)
        handle = try c.decode(UInt64.self, forKey: .handle)
        keyType = try c.decode([String].self, forKey: .keyType)
        dataType = try c.decodeIfPresent(String.self, forKey: .dataType)
        flags = try c.decode([String].self, forKey: .flags)
        policy = try c.decodeIfPresent(String.self, forKey: .policy)
        size = try c.decodeIfPresent(Int.self, forKey: .size)
        timeout = try c.decodeIfPresent(Int.self, forKey: .timeout)
        gcInterval = try c.decodeIfPresent(Int.self, forKey: .gcInterval)
        comment = try c.decodeIfPresent(String.self, forKey: .comment)
        let path = c.codingPath
        elements = try c.decode([NftJSON].self, forKey: .elements).map { try NftExpression(setItem: $0, path: path) }
    }
}

/// A stateful object or flowtable, in nft's JSON form (`kind` is its key: `counter`, `quota`, `flowtable`, ...).
public struct NftObject: Hashable, Sendable, Codable {
    public var kind: String
    public var name: String
    public var handle: UInt64
    public var body: NftJSON

    public init(kind: String, name: String, handle: UInt64 = 0, body: NftJSON) {
        self.kind = kind
        self.name = name
        self.handle = handle
        self.body = body
    }
}
