/// A JSON value as libnftables printed it, for the parts of nft's JSON schema the model has no case for:
/// kept whole so nothing read is dropped, and re-encoded unchanged.
public indirect enum NftJSON: Hashable, Sendable, Codable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([NftJSON])
    case object([String: NftJSON])

    public init(from decoder: any Decoder) throws {
        if var list = try? decoder.unkeyedContainer() {
            var items: [NftJSON] = []
            while !list.isAtEnd { items.append(try list.decode(NftJSON.self)) }
            self = .array(items)
            return
        }
        if let object = try? decoder.container(keyedBy: NftJSONKey.self) {
            var members: [String: NftJSON] = [:]
            for key in object.allKeys { members[key.stringValue] = try object.decode(NftJSON.self, forKey: key) }
            self = .object(members)
            return
        }
        let value = try decoder.singleValueContainer()
        if value.decodeNil() {
            self = .null
        } else if let b = try? value.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? value.decode(Int64.self) {
            self = .integer(i)
        } else if let d = try? value.decode(Double.self) {
            self = .number(d)
        } else {
            self = .string(try value.decode(String.self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var c = encoder.singleValueContainer()
            try c.encodeNil()
        case .bool(let b):
            var c = encoder.singleValueContainer()
            try c.encode(b)
        case .integer(let i):
            var c = encoder.singleValueContainer()
            try c.encode(i)
        case .number(let d):
            var c = encoder.singleValueContainer()
            try c.encode(d)
        case .string(let s):
            var c = encoder.singleValueContainer()
            try c.encode(s)
        case .array(let items):
            var c = encoder.unkeyedContainer()
            for item in items { try c.encode(item) }
        case .object(let members):
            var c = encoder.container(keyedBy: NftJSONKey.self)
            for (key, value) in members { try c.encode(value, forKey: NftJSONKey(key)) }
        }
    }

    /// The member `key` of an object.
    public subscript(key: String) -> NftJSON? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var integerValue: Int64? {
        if case .integer(let i) = self { return i }
        return nil
    }

    /// A string, or each string of an array of strings (nft writes a one-flag list as a bare string).
    public var stringList: [String]? {
        switch self {
        case .string(let s): return [s]
        case .array(let items):
            let strings = items.compactMap(\.stringValue)
            return strings.count == items.count ? strings : nil
        default: return nil
        }
    }
}

/// Any JSON object key: nft's schema names its objects by their only key (`{"match": {...}}`).
struct NftJSONKey: CodingKey, Hashable {
    let stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}
