/// One step of an nft rule: a match that must hold for the rule to go on, or something the rule does.
///
/// The cases follow nft's own statement kinds (what `nft list ruleset` prints), not the JSON keys: JSON writes
/// `meta mark set`, `ct mark set` and `ct zone set` all as `mangle`. Coded as libnftables' JSON.
public enum NftStatement: Hashable, Sendable {
    /// `LEFT [op] RIGHT`: the rule goes on only if it holds.
    case match(NftMatch)
    /// `counter packets N bytes M`.
    case counter(NftCounter)
    /// `counter name "NAME"`: a named counter object of the table.
    case namedCounter(String)
    case verdict(NftVerdict)
    /// `meta KEY set VALUE` (`meta mark set 0x00000539`).
    case metaSet(key: String, value: NftExpression)
    /// `ct [original|reply] KEY set VALUE` (`ct mark set meta mark`, `ct zone set 1`).
    case ctSet(key: String, direction: String?, value: NftExpression)
    /// Any other header write (`tcp dport set 80`, `ip dscp set cs1`).
    case mangle(key: NftExpression, value: NftExpression)
    /// `redirect [to :PORT]`: to the local machine, as Istio's capture does.
    case redirect(NftNAT)
    case snat(NftNAT)
    case dnat(NftNAT)
    case masquerade(NftNAT)
    /// `tproxy [ip|ip6] to [ADDR]:PORT`.
    case tproxy(NftTProxy)
    /// `notrack`: no connection tracking for this packet.
    case notrack
    /// `KEY vmap { ... }`: a verdict chosen by looking the key up.
    case verdictMap(key: NftExpression, data: NftExpression)
    /// Any other statement (`log`, `reject`, `limit`, `queue`, ...), in nft's JSON form.
    case other(NftJSON)
}

public struct NftMatch: Hashable, Sendable {
    public var op: NftRelationalOperator
    public var left: NftExpression
    public var right: NftExpression

    public init(_ left: NftExpression, _ op: NftRelationalOperator = .equal, _ right: NftExpression) {
        self.op = op
        self.left = left
        self.right = right
    }
}

public enum NftRelationalOperator: String, Hashable, Sendable, Codable, CaseIterable {
    case equal = "==", notEqual = "!=", less = "<", greater = ">", lessOrEqual = "<=", greaterOrEqual = ">="
    /// No operator written: membership in a set, or any of the flags (`ct state established,related`).
    case implicit = "in"
    /// None of the flags (`tcp flags ! syn,ack`).
    case noneOf = "!"
}

public struct NftCounter: Hashable, Sendable, Codable {
    public var packets: UInt64
    public var bytes: UInt64

    public init(packets: UInt64 = 0, bytes: UInt64 = 0) {
        self.packets = packets
        self.bytes = bytes
    }
}

/// The arguments of `snat`, `dnat`, `masquerade` and `redirect`.
public struct NftNAT: Hashable, Sendable {
    /// `ip` or `ip6` in an `inet` table.
    public var family: String?
    public var address: NftExpression?
    public var port: NftExpression?
    /// `random`, `fully-random`, `persistent`.
    public var flags: [String]
    /// `prefix` (`snat ip prefix to ...`).
    public var typeFlags: [String]

    public init(family: String? = nil, address: NftExpression? = nil, port: NftExpression? = nil,
                flags: [String] = [], typeFlags: [String] = []) {
        self.family = family
        self.address = address
        self.port = port
        self.flags = flags
        self.typeFlags = typeFlags
    }
}

public struct NftTProxy: Hashable, Sendable {
    /// `ip` or `ip6` in an `inet` table.
    public var family: String?
    public var address: NftExpression?
    public var port: NftExpression?

    public init(family: String? = nil, address: NftExpression? = nil, port: NftExpression? = nil) {
        self.family = family
        self.address = address
        self.port = port
    }
}

// MARK: nft's JSON

extension NftStatement: Codable {
    public init(from decoder: any Decoder) throws {
        try self.init(json: NftJSON(from: decoder), path: decoder.codingPath)
    }

    public func encode(to encoder: any Encoder) throws {
        try json.encode(to: encoder)
    }

    /// Decodes nft's JSON for a statement (libnftables-json(5), "STATEMENTS").
    public init(json: NftJSON, path: [any CodingKey] = []) throws {
        guard case .object(let members) = json, members.count == 1, let (name, body) = members.first else {
            throw NftJSONError.unexpected("a statement object with one key", json, path)
        }
        func expression(_ key: String) throws -> NftExpression? {
            try body[key].map { try NftExpression(json: $0, path: path) }
        }
        if let verdict = try NftVerdict(name: name, body: body, path: path) {
            self = .verdict(verdict)
            return
        }
        switch name {
        case "match":
            guard let opName = body["op"]?.stringValue, let op = NftRelationalOperator(rawValue: opName),
                  let left = try expression("left"), let right = try expression("right") else {
                throw NftJSONError.unexpected("a match with op, left and right", body, path)
            }
            self = .match(NftMatch(left, op, right))
        case "counter":
            if let name = body.stringValue {
                self = .namedCounter(name)
            } else if let packets = body["packets"]?.integerValue, let bytes = body["bytes"]?.integerValue {
                self = .counter(NftCounter(packets: UInt64(bitPattern: packets), bytes: UInt64(bitPattern: bytes)))
            } else {
                self = .other(json)
            }
        case "mangle":
            guard let key = try expression("key"), let value = try expression("value") else {
                throw NftJSONError.unexpected("a mangle with key and value", body, path)
            }
            switch key {
            case .meta(let k): self = .metaSet(key: k, value: value)
            case .ct(let k, let direction): self = .ctSet(key: k, direction: direction, value: value)
            default: self = .mangle(key: key, value: value)
            }
        case "redirect", "snat", "dnat", "masquerade":
            let nat = NftNAT(family: body["family"]?.stringValue, address: try expression("addr"), port: try expression("port"),
                             flags: body["flags"]?.stringList ?? [], typeFlags: body["type_flags"]?.stringList ?? [])
            self = switch name {
            case "redirect": .redirect(nat)
            case "snat": .snat(nat)
            case "dnat": .dnat(nat)
            default: .masquerade(nat)
            }
        case "tproxy":
            self = .tproxy(NftTProxy(family: body["family"]?.stringValue, address: try expression("addr"), port: try expression("port")))
        case "notrack":
            self = .notrack
        case "vmap":
            guard let key = try expression("key"), let data = try expression("data") else {
                throw NftJSONError.unexpected("a vmap with key and data", body, path)
            }
            self = .verdictMap(key: key, data: data)
        default:
            self = .other(json)
        }
    }

    /// This statement in nft's JSON form.
    public var json: NftJSON {
        switch self {
        case .match(let m):
            return .object(["match": .object(["op": .string(m.op.rawValue), "left": m.left.json, "right": m.right.json])])
        case .counter(let c):
            return .object(["counter": .object(["packets": .integer(Int64(bitPattern: c.packets)),
                                                "bytes": .integer(Int64(bitPattern: c.bytes))])])
        case .namedCounter(let name):
            return .object(["counter": .string(name)])
        case .verdict(let v):
            return v.json
        case .metaSet(let key, let value):
            return Self.mangleJSON(NftExpression.meta(key: key).json, value)
        case .ctSet(let key, let direction, let value):
            return Self.mangleJSON(NftExpression.ct(key: key, direction: direction).json, value)
        case .mangle(let key, let value):
            return Self.mangleJSON(key.json, value)
        case .redirect(let nat): return .object(["redirect": nat.json])
        case .snat(let nat): return .object(["snat": nat.json])
        case .dnat(let nat): return .object(["dnat": nat.json])
        case .masquerade(let nat): return .object(["masquerade": nat.json])
        case .tproxy(let t):
            var body: [String: NftJSON] = [:]
            if let family = t.family { body["family"] = .string(family) }
            if let address = t.address { body["addr"] = address.json }
            if let port = t.port { body["port"] = port.json }
            return .object(["tproxy": .object(body)])
        case .notrack:
            return .object(["notrack": .null])
        case .verdictMap(let key, let data):
            return .object(["vmap": .object(["key": key.json, "data": data.json])])
        case .other(let json):
            return json
        }
    }

    private static func mangleJSON(_ key: NftJSON, _ value: NftExpression) -> NftJSON {
        .object(["mangle": .object(["key": key, "value": value.json])])
    }
}

extension NftNAT {
    /// nft writes a single flag as a bare string, several as an array, and no arguments at all as null.
    var json: NftJSON {
        var body: [String: NftJSON] = [:]
        if let family { body["family"] = .string(family) }
        if let address { body["addr"] = address.json }
        if let port { body["port"] = port.json }
        if !flags.isEmpty { body["flags"] = flags.count == 1 ? .string(flags[0]) : .array(flags.map(NftJSON.string)) }
        if !typeFlags.isEmpty {
            body["type_flags"] = typeFlags.count == 1 ? .string(typeFlags[0]) : .array(typeFlags.map(NftJSON.string))
        }
        return body.isEmpty ? .null : .object(body)
    }
}
