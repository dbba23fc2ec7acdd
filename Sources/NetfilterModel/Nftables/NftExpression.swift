/// A value in an nft rule: what a match compares, what a statement sets, a set's element.
///
/// Coded as libnftables' JSON (libnftables-json(5)), so the reader decodes `nft -j` output directly and an
/// encoded rule is one `nft -j -f` accepts. Constants stay as nft printed them in JSON: symbols and addresses
/// as strings, numbers as integers; `NftSyntax` recovers the text form from what they are compared with.
public indirect enum NftExpression: Hashable, Sendable {
    /// A symbol (`tcp`, `established`), an address (`10.0.0.1`), an interface name, ...
    case string(String)
    case integer(Int64)
    /// `exists` / `missing` (and boolean keys such as `meta ipsec`).
    case boolean(Bool)
    /// Several flags at once (`ct state established,related`).
    case list([NftExpression])
    /// A named set or map (`@name`).
    case setReference(String)
    case payload(NftPayload)
    case meta(key: String)
    /// `ct [original|reply] KEY`.
    case ct(key: String, direction: String?)
    case prefix(address: NftExpression, length: Int)
    case range(NftExpression, NftExpression)
    /// An anonymous set `{ a, b }`; a map's elements are `.mapping`.
    case set([NftExpression])
    /// `key : data` inside a map.
    case mapping(NftExpression, NftExpression)
    /// `a . b`.
    case concat([NftExpression])
    /// A lookup `key map { ... }` (or `map @name`).
    case map(key: NftExpression, data: NftExpression)
    case binary(NftBinaryOperator, NftExpression, NftExpression)
    /// A verdict as a value, in a verdict map.
    case verdict(NftVerdict)
    /// A set element with attributes (`10.0.0.1 timeout 1m comment "x"`).
    case element(NftSetElement)
    /// Any other expression (`fib`, `rt`, `socket`, `exthdr`, `numgen`, ...), in nft's JSON form.
    case other(NftJSON)
}

/// A packet header field: a named one (`tcp dport`) or raw bits (`@th,16,16`).
public enum NftPayload: Hashable, Sendable {
    case field(protocol: String, field: String)
    /// `base` is `ll`, `nh`, `th` or `ih`; offset and length in bits.
    case raw(base: String, offset: Int, length: Int)
}

public enum NftBinaryOperator: String, Hashable, Sendable, Codable, CaseIterable {
    case and = "&", or = "|", xor = "^", leftShift = "<<", rightShift = ">>"

    /// nft's binding strength: lower binds tighter (`expr_binop_precedence`).
    var precedence: Int {
        switch self {
        case .leftShift, .rightShift: 1
        case .and: 2
        case .xor: 3
        case .or: 4
        }
    }
}

/// Where evaluation goes next.
public enum NftVerdict: Hashable, Sendable {
    case accept, drop, `continue`, `return`
    case jump(String)
    case goto(String)

    /// The chain a jump or goto enters.
    public var target: String? {
        switch self {
        case .jump(let chain), .goto(let chain): chain
        default: nil
        }
    }
}

/// A set element with the attributes that need nft's long element form.
public struct NftSetElement: Hashable, Sendable {
    public var value: NftExpression
    /// Seconds.
    public var timeout: Int64?
    public var expires: Int64?
    public var comment: String?
    /// Per-element statements (`counter`), in nft's JSON form, keyed by statement name.
    public var statements: [String: NftJSON]

    public init(value: NftExpression, timeout: Int64? = nil, expires: Int64? = nil, comment: String? = nil,
                statements: [String: NftJSON] = [:]) {
        self.value = value
        self.timeout = timeout
        self.expires = expires
        self.comment = comment
        self.statements = statements
    }
}

// MARK: nft's JSON

extension NftExpression: Codable {
    public init(from decoder: any Decoder) throws {
        try self.init(json: NftJSON(from: decoder), path: decoder.codingPath)
    }

    public func encode(to encoder: any Encoder) throws {
        try json.encode(to: encoder)
    }

    /// Decodes nft's JSON for an expression (libnftables-json(5), "EXPRESSIONS").
    public init(json: NftJSON, path: [any CodingKey] = []) throws {
        switch json {
        case .string(let s):
            self = s.hasPrefix("@") ? .setReference(String(s.dropFirst())) : .string(s)
        case .integer(let i):
            self = .integer(i)
        case .bool(let b):
            self = .boolean(b)
        case .array(let items):
            self = .list(try items.map { try NftExpression(json: $0, path: path) })
        case .null, .number:
            throw NftJSONError.unexpected("an expression", json, path)
        case .object(let members):
            guard members.count == 1, let (name, body) = members.first else {
                throw NftJSONError.unexpected("an expression object with one key", json, path)
            }
            self = try Self.decodeObject(name, body, whole: json, path: path)
        }
    }

    private static func decodeObject(_ name: String, _ body: NftJSON, whole: NftJSON, path: [any CodingKey]) throws -> NftExpression {
        func operands(_ count: Int) throws -> [NftExpression] {
            guard case .array(let items) = body, items.count == count else {
                throw NftJSONError.unexpected("\(count) operands of \(name)", body, path)
            }
            return try items.map { try NftExpression(json: $0, path: path) }
        }
        if let op = NftBinaryOperator(rawValue: name) {
            let o = try operands(2)
            return .binary(op, o[0], o[1])
        }
        if let verdict = try NftVerdict(name: name, body: body, path: path) { return .verdict(verdict) }
        switch name {
        case "payload":
            if let proto = body["protocol"]?.stringValue, let field = body["field"]?.stringValue {
                return .payload(.field(protocol: proto, field: field))
            }
            if let base = body["base"]?.stringValue, let offset = body["offset"]?.integerValue, let len = body["len"]?.integerValue {
                return .payload(.raw(base: base, offset: Int(offset), length: Int(len)))
            }
            return .other(whole)
        case "meta":
            guard let key = body["key"]?.stringValue else { return .other(whole) }
            return .meta(key: key)
        case "ct":
            // A `family` member (`ct original ip saddr`) has no case of its own: keep the whole expression.
            guard let key = body["key"]?.stringValue, body["family"] == nil else { return .other(whole) }
            return .ct(key: key, direction: body["dir"]?.stringValue)
        case "prefix":
            guard let addr = body["addr"], let len = body["len"]?.integerValue else {
                throw NftJSONError.unexpected("a prefix with addr and len", body, path)
            }
            return .prefix(address: try NftExpression(json: addr, path: path), length: Int(len))
        case "range":
            let o = try operands(2)
            return .range(o[0], o[1])
        case "set":
            if case .array(let items) = body { return .set(try items.map { try NftExpression(setItem: $0, path: path) }) }
            return .set([try NftExpression(setItem: body, path: path)])
        case "concat":
            guard case .array(let items) = body else { throw NftJSONError.unexpected("a concat list", body, path) }
            return .concat(try items.map { try NftExpression(json: $0, path: path) })
        case "map":
            guard let key = body["key"], let data = body["data"] else {
                throw NftJSONError.unexpected("a map with key and data", body, path)
            }
            return .map(key: try NftExpression(json: key, path: path), data: try NftExpression(json: data, path: path))
        case "elem":
            return .element(try NftSetElement(json: body, path: path))
        default:
            return .other(whole)
        }
    }

    /// A member of a set or map: nft writes a map's `key : data` as a two-item array.
    public init(setItem json: NftJSON, path: [any CodingKey] = []) throws {
        if case .array(let pair) = json, pair.count == 2 {
            self = .mapping(try NftExpression(json: pair[0], path: path), try NftExpression(json: pair[1], path: path))
        } else {
            try self.init(json: json, path: path)
        }
    }

    /// This expression in nft's JSON form.
    public var json: NftJSON {
        switch self {
        case .string(let s): .string(s)
        case .integer(let i): .integer(i)
        case .boolean(let b): .bool(b)
        case .list(let items): .array(items.map(\.json))
        case .setReference(let name): .string("@" + name)
        case .payload(.field(let proto, let field)):
            .object(["payload": .object(["protocol": .string(proto), "field": .string(field)])])
        case .payload(.raw(let base, let offset, let length)):
            .object(["payload": .object(["base": .string(base), "offset": .integer(Int64(offset)), "len": .integer(Int64(length))])])
        case .meta(let key): .object(["meta": .object(["key": .string(key)])])
        case .ct(let key, let direction):
            .object(["ct": .object(["key": .string(key)].merging(direction.map { ["dir": .string($0)] } ?? [:]) { a, _ in a })])
        case .prefix(let address, let length): .object(["prefix": .object(["addr": address.json, "len": .integer(Int64(length))])])
        case .range(let low, let high): .object(["range": .array([low.json, high.json])])
        case .set(let items): .object(["set": .array(items.map(\.json))])
        case .mapping(let key, let data): .array([key.json, data.json])
        case .concat(let items): .object(["concat": .array(items.map(\.json))])
        case .map(let key, let data): .object(["map": .object(["key": key.json, "data": data.json])])
        case .binary(let op, let left, let right): .object([op.rawValue: .array([left.json, right.json])])
        case .verdict(let verdict): verdict.json
        case .element(let element): .object(["elem": element.json])
        case .other(let json): json
        }
    }
}

extension NftVerdict {
    /// A verdict object (`{"accept": null}`, `{"jump": {"target": "x"}}`), or nil when `name` is not a verdict.
    init?(name: String, body: NftJSON, path: [any CodingKey]) throws {
        switch name {
        case "accept": self = .accept
        case "drop": self = .drop
        case "continue": self = .continue
        case "return": self = .return
        case "jump", "goto":
            guard let target = body["target"]?.stringValue else {
                throw NftJSONError.unexpected("a \(name) target", body, path)
            }
            self = name == "jump" ? .jump(target) : .goto(target)
        default: return nil
        }
    }

    var name: String {
        switch self {
        case .accept: "accept"
        case .drop: "drop"
        case .continue: "continue"
        case .return: "return"
        case .jump: "jump"
        case .goto: "goto"
        }
    }

    var json: NftJSON {
        if let target { return .object([name: .object(["target": .string(target)])]) }
        return .object([name: .null])
    }
}

extension NftSetElement {
    init(json: NftJSON, path: [any CodingKey]) throws {
        guard case .object(var members) = json, let value = members.removeValue(forKey: "val") else {
            throw NftJSONError.unexpected("an element with val", json, path)
        }
        self.value = try NftExpression(json: value, path: path)
        timeout = members.removeValue(forKey: "timeout")?.integerValue
        expires = members.removeValue(forKey: "expires")?.integerValue
        comment = members.removeValue(forKey: "comment")?.stringValue
        statements = members
    }

    var json: NftJSON {
        var members = statements
        members["val"] = value.json
        if let timeout { members["timeout"] = .integer(timeout) }
        if let expires { members["expires"] = .integer(expires) }
        if let comment { members["comment"] = .string(comment) }
        return .object(members)
    }
}

/// nft's JSON had a shape the model does not expect.
public struct NftJSONError: Error, CustomStringConvertible {
    public let description: String

    static func unexpected(_ expected: String, _ found: NftJSON, _ path: [any CodingKey]) -> NftJSONError {
        let at = path.map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }.joined()
        return NftJSONError(description: "expected \(expected)\(at.isEmpty ? "" : " at " + at), found \(found.brief)")
    }
}

extension NftJSON {
    /// A short description for error messages.
    var brief: String {
        switch self {
        case .null: "null"
        case .bool(let b): "\(b)"
        case .integer(let i): "\(i)"
        case .number(let d): "\(d)"
        case .string(let s): "\"\(s)\""
        case .array(let items): "an array of \(items.count)"
        case .object(let members): "an object with keys \(members.keys.sorted().joined(separator: ", "))"
        }
    }
}
