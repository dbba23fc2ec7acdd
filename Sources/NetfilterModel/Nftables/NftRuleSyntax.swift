/// Statements and expressions in nft 1.0.6's text form (`stmt_ops.print`, `expr_ops.print`).
enum NftRuleSyntax {
    static func statement(_ statement: NftStatement) -> String {
        switch statement {
        case .match(let m):
            let type = NftValueType.of(m.left)
            if let flags = flagComparison(m, leftType: type) { return flags }
            return expression(m.left, as: type) + relation(m, leftType: type) + expression(m.right, as: type)
        case .counter(let c):
            return "counter packets \(c.packets) bytes \(c.bytes)"
        case .namedCounter(let name):
            return "counter name \"\(name)\""
        case .verdict(let v):
            return verdict(v)
        case .metaSet(let key, let value):
            return expression(.meta(key: key), as: .plain) + " set " + expression(value, as: NftValueType.ofMeta(key))
        case .ctSet(let key, let direction, let value):
            return expression(.ct(key: key, direction: direction), as: .plain) + " set "
                + expression(value, as: NftValueType.ofConntrack(key))
        case .mangle(let key, let value):
            return expression(key, as: .plain) + " set " + expression(value, as: NftValueType.of(key))
        case .redirect(let nat): return "redirect" + natArguments(nat)
        case .snat(let nat): return "snat" + natArguments(nat)
        case .dnat(let nat): return "dnat" + natArguments(nat)
        case .masquerade(let nat): return "masquerade" + natArguments(nat)
        case .tproxy(let t):
            var out = "tproxy"
            if let family = t.family { out += " " + family }
            out += " to"
            if let address = t.address { out += " " + bracketed(address) }
            if let port = t.port { out += (t.address == nil ? " :" : ":") + expression(port, as: .plain) }
            return out
        case .notrack:
            return "notrack"
        case .verdictMap(let key, let data):
            return expression(key, as: .plain) + " vmap " + expression(data, as: NftValueType.of(key), data: .verdict)
        case .other(let json):
            return unrendered(json)
        }
    }

    /// The operator between a match's sides: `==` is left out unless nft's `must_print_eq_op` wants it (a
    /// single flag of a bitmask, or a binary operation on the left), and an implicit one is a space.
    static func relation(_ m: NftMatch, leftType: NftValueType) -> String {
        switch m.op {
        case .implicit:
            return " "
        case .equal:
            if case .binary = m.left { return " == " }
            if leftType == .bitmask, m.right.isSingleValue { return " == " }
            return " "
        default:
            return " \(m.op.rawValue) "
        }
    }

    /// nft 1.0.6 prints `FLAGS & MASK ==/!= VALUE` on a bitmask as `FLAGS [!=] VALUE / MASK`
    /// (`relational_binop_postprocess`), except when the mask is the value itself or the value is zero.
    static func flagComparison(_ m: NftMatch, leftType: NftValueType) -> String? {
        guard leftType == .bitmask, m.op == .equal || m.op == .notEqual,
              case .binary(.and, let flags, let mask) = m.left, m.right != .integer(0),
              !(mask.isSingleValue && mask == m.right) else { return nil }
        return expression(flags, as: leftType) + (m.op == .notEqual ? " != " : " ") + expression(m.right, as: leftType)
            + " / " + expression(mask, as: leftType)
    }

    /// `type` is the type of the values in `e`; `data` the type of a map's data.
    static func expression(_ e: NftExpression, as type: NftValueType, data: NftValueType = .plain) -> String {
        switch e {
        case .string(let s):
            return type == .quoted ? "\"\(s)\"" : s
        case .integer(let i):
            return integer(i, as: type)
        case .boolean(let b):
            return b ? "exists" : "missing"
        case .list(let items):
            return items.map { expression($0, as: type) }.joined(separator: ",")
        case .setReference(let name):
            return "@" + name
        case .payload(.field(let proto, let field)):
            return "\(proto) \(field)"
        case .payload(.raw(let base, let offset, let length)):
            return "@\(base),\(offset),\(length)"
        case .meta(let key):
            return unqualifiedMetaKeys.contains(key) ? key : "meta " + key
        case .ct(let key, let direction):
            return "ct " + (direction.map { $0 + " " } ?? "") + key
        case .prefix(let address, let length):
            return expression(address, as: type) + "/\(length)"
        case .range(let low, let high):
            return expression(low, as: type) + "-" + expression(high, as: type)
        case .set(let items):
            return "{ " + items.map { expression($0, as: type, data: data) }.joined(separator: ", ") + " }"
        case .mapping(let key, let value):
            return expression(key, as: type) + " : " + expression(value, as: data)
        case .concat(let items):
            let types: [NftValueType] = if case .concat(let t) = type, t.count == items.count { t } else { items.map(NftValueType.of) }
            return zip(items, types).map { expression($0, as: $1) }.joined(separator: " . ")
        case .map(let key, let mappings):
            return expression(key, as: .plain) + " map " + expression(mappings, as: NftValueType.of(key), data: type)
        case .binary(let op, let left, let right):
            // A shift's right operand is a bit count, not a value of the left's type.
            let rightType: NftValueType = op == .leftShift || op == .rightShift ? .plain : type
            return operand(left, of: op, as: type) + " \(op.rawValue) " + operand(right, of: op, as: rightType)
        case .verdict(let v):
            return verdict(v)
        case .element(let element):
            var out = expression(element.value, as: type)
            if let timeout = element.timeout { out += " timeout " + time(timeout) }
            if let expires = element.expires { out += " expires " + time(expires) }
            if let comment = element.comment { out += " comment \"\(comment)\"" }
            return out
        case .other(let json):
            return knownExpression(json) ?? unrendered(json)
        }
    }

    /// Expressions the model keeps as JSON but whose text is simple: `fib`, `rt`, `socket`.
    static func knownExpression(_ json: NftJSON) -> String? {
        if let fib = json["fib"], let result = fib["result"]?.stringValue {
            let flags = fib["flags"]?.stringList ?? []
            return "fib " + flags.joined(separator: " . ") + " " + result
        }
        if let rt = json["rt"], let key = rt["key"]?.stringValue {
            return "rt " + (rt["family"]?.stringValue.map { $0 + " " } ?? "") + key
        }
        if let socket = json["socket"], let key = socket["key"]?.stringValue {
            return "socket " + key
        }
        return nil
    }

    /// nft's `binop_arg_print`: parentheses around a looser-binding operation.
    static func operand(_ e: NftExpression, of op: NftBinaryOperator, as type: NftValueType) -> String {
        let text = expression(e, as: type)
        if case .binary(let inner, _, _) = e, op.precedence < inner.precedence { return "(" + text + ")" }
        return text
    }

    static func integer(_ i: Int64, as type: NftValueType) -> String {
        switch type {
        case .mark:
            let hex = String(UInt32(truncatingIfNeeded: i), radix: 16)
            return "0x" + String(repeating: "0", count: max(0, 8 - hex.count)) + hex
        case .hex:
            return "0x" + String(UInt64(bitPattern: i), radix: 16)
        case .time:
            return time(i)
        case .boolean:
            return i != 0 ? "exists" : "missing"
        default:
            return String(i)
        }
    }

    /// nft's `time_print` for a number of seconds: `1d2h3m4s`; zero is `0s`.
    static func time(_ seconds: Int64) -> String {
        var rest = seconds
        var out = ""
        for (unit, size) in [("d", Int64(86400)), ("h", 3600), ("m", 60), ("s", 1)] where rest >= size {
            out += "\(rest / size)\(unit)"
            rest %= size
        }
        return out.isEmpty ? "0s" : out
    }

    static func verdict(_ v: NftVerdict) -> String {
        switch v {
        case .jump(let chain): "jump \(chain)"
        case .goto(let chain): "goto \(chain)"
        default: v.name
        }
    }

    /// nft's `nat_stmt_print` after the statement's name: `[ip|ip6] [prefix] to ADDR:PORT [flags]`.
    static func natArguments(_ nat: NftNAT) -> String {
        var out = ""
        if nat.address != nil || nat.port != nil {
            if let family = nat.family { out += " " + family }
            if nat.typeFlags.contains("prefix") { out += " prefix" }
            out += " to"
        }
        if let address = nat.address {
            out += " " + (nat.port != nil ? bracketed(address) : expression(address, as: .plain))
        }
        if let port = nat.port {
            out += (nat.address == nil ? " :" : ":") + expression(port, as: .plain)
        }
        let order = ["random", "fully-random", "persistent"]
        let flags = order.filter(nat.flags.contains)
        if !flags.isEmpty { out += " " + flags.joined(separator: ",") }
        return out
    }

    /// An IPv6 address (or range of them) in brackets, where a port follows or may follow.
    static func bracketed(_ address: NftExpression) -> String {
        switch address {
        case .string(let s) where s.contains(":"):
            return "[\(s)]"
        case .range(.string(let low), .string(let high)) where low.contains(":"):
            return "[\(low)]-[\(high)]"
        default:
            return expression(address, as: .plain)
        }
    }

    /// Meta keys nft prints without `meta` (`meta_key_is_unqualified`).
    static let unqualifiedMetaKeys: Set<String> = ["iif", "oif", "iifname", "oifname", "iifgroup", "oifgroup"]

    /// Something the model keeps only as JSON: shown as its JSON so it is visible, never silently dropped.
    static func unrendered(_ json: NftJSON) -> String {
        json.compact
    }
}

extension NftSyntax {
    /// One statement in nft syntax (`meta l4proto tcp`, `redirect to :15001`).
    public static func render(_ statement: NftStatement) -> String { NftRuleSyntax.statement(statement) }
}

extension NftExpression {
    /// A single constant, as opposed to a set, list, range or prefix.
    var isSingleValue: Bool {
        switch self {
        case .string, .integer, .boolean: true
        default: false
        }
    }
}

extension NftJSON {
    /// Compact JSON text with sorted keys, for the things no text form exists for here.
    var compact: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .integer(let i): return String(i)
        case .number(let d): return "\(d)"
        case .string(let s):
            var out = "\""
            for c in s.unicodeScalars {
                if c == "\"" || c == "\\" { out += "\\" }
                out.unicodeScalars.append(c)
            }
            return out + "\""
        case .array(let items): return "[" + items.map(\.compact).joined(separator: ",") + "]"
        case .object(let members):
            return "{" + members.keys.sorted().map { NftJSON.string($0).compact + ":" + members[$0]!.compact }.joined(separator: ",") + "}"
        }
    }
}
