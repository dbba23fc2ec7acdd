/// One node of a composed YAML document: what `kubectl get -o yaml` (or `-o json`) hands iptaudit.
///
/// Scalars keep their text, style and explicit tag, so the reader decides how to interpret them: plain `1337`
/// is an integer and quoted `"1337"` a string only once `resolved` is asked (YAML 1.1, as Kubernetes reads it).
/// Aliases are already replaced by the node they name. Built by `YAMLComposer`.
public struct YAMLNode: Hashable, Sendable {
    public enum Content: Hashable, Sendable {
        case scalar(String, style: ScalarStyle)
        case sequence([YAMLNode])
        /// Key/value pairs in document order; keys are unique (a duplicate scalar key is a composer error).
        case mapping([Pair])
    }

    public enum ScalarStyle: Hashable, Sendable {
        case plain, singleQuoted, doubleQuoted, literal, folded
    }

    public struct Pair: Hashable, Sendable {
        public var key: YAMLNode
        public var value: YAMLNode
        public init(key: YAMLNode, value: YAMLNode) {
            self.key = key
            self.value = value
        }
    }

    public var content: Content
    /// The explicit tag with its handle expanded (`!!int` → `tag:yaml.org,2002:int`, `!` stays `!`); nil when implicit.
    public var tag: String?
    /// Where the node starts, 1-based.
    public var line: Int
    public var column: Int

    public init(_ content: Content, tag: String? = nil, line: Int = 0, column: Int = 0) {
        self.content = content
        self.tag = tag
        self.line = line
        self.column = column
    }

    /// The scalar's text exactly as written (after quote and block processing), whatever it resolves to.
    public var text: String? {
        if case .scalar(let text, _) = content { return text }
        return nil
    }

    public var sequence: [YAMLNode]? {
        if case .sequence(let items) = content { return items }
        return nil
    }

    public var mapping: [Pair]? {
        if case .mapping(let pairs) = content { return pairs }
        return nil
    }

    /// The value of a mapping's scalar key spelled `key`; nil for a missing key or a node that is not a mapping.
    public subscript(key: String) -> YAMLNode? {
        mapping?.first { $0.key.text == key }?.value
    }
}

// MARK: - Scalar resolution

extension YAMLNode {
    /// What a scalar means under YAML 1.1's implicit typing as Kubernetes' YAML reader (go-yaml v2, through
    /// sigs.k8s.io/yaml) applies it.
    public enum Resolved: Hashable, Sendable {
        case null
        case bool(Bool)
        case int(Int64)
        case float(Double)
        case string(String)
    }

    static let tagPrefix = "tag:yaml.org,2002:"

    /// The scalar's meaning; nil for a sequence or mapping. Only plain scalars are typed implicitly; quoted and
    /// block scalars are strings unless an explicit `!!int`, `!!bool`, `!!float` or `!!null` tag says otherwise.
    public var resolved: Resolved? {
        guard case .scalar(let text, let style) = content else { return nil }
        switch tag {
        case nil: return style == .plain ? Self.resolvePlain(text) : .string(text)
        case Self.tagPrefix + "null": return Self.resolvePlain(text) == .null ? .null : .string(text)
        case Self.tagPrefix + "bool": return Self.resolveBool(text).map(Resolved.bool) ?? .string(text)
        case Self.tagPrefix + "int": return Self.resolveInt(text).map(Resolved.int) ?? .string(text)
        case Self.tagPrefix + "float":
            if let i = Self.resolveInt(text) { return .float(Double(i)) }
            return Self.resolveFloat(text).map(Resolved.float) ?? .string(text)
        default: return .string(text)
        }
    }

    /// go-yaml v2's `resolve` for an untagged plain scalar.
    static func resolvePlain(_ text: String) -> Resolved {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        default: break
        }
        if let b = resolveBool(text) { return .bool(b) }
        if let i = resolveInt(text) { return .int(i) }
        if let f = resolveFloat(text) { return .float(f) }
        return .string(text)
    }

    static func resolveBool(_ text: String) -> Bool? {
        switch text {
        case "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON": return true
        case "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF": return false
        default: return nil
        }
    }

    /// Integers as Go's `strconv.ParseInt(s, 0, 64)` reads them after go-yaml drops `_`: an optional sign, then
    /// decimal, `0x` hex, `0o` or leading-`0` octal, or `0b` binary.
    static func resolveInt(_ text: String) -> Int64? {
        var digits = Substring(text.filter { $0 != "_" })
        var negative = false
        if let sign = digits.first, sign == "+" || sign == "-" {
            negative = sign == "-"
            digits = digits.dropFirst()
        }
        var radix = 10
        for (prefix, r) in [("0x", 16), ("0X", 16), ("0o", 8), ("0O", 8), ("0b", 2), ("0B", 2)] where digits.hasPrefix(prefix) {
            radix = r
            digits = digits.dropFirst(2)
            break
        }
        if radix == 10, digits.count > 1, digits.first == "0" {
            radix = 8
            digits = digits.dropFirst()
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isHexDigit }),
              let magnitude = UInt64(digits, radix: radix) else { return nil }
        if negative {
            return magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- magnitude) : nil
        }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }

    /// go-yaml v2's float pattern `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` and the `.inf` / `.nan` spellings.
    static func resolveFloat(_ text: String) -> Double? {
        switch text {
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .infinity
        case "-.inf", "-.Inf", "-.INF": return -.infinity
        case ".nan", ".NaN", ".NAN": return .nan
        default: break
        }
        let plain = text.filter { $0 != "_" }
        var s = Substring(plain)
        if let sign = s.first, sign == "+" || sign == "-" { s = s.dropFirst() }
        let mantissaEnd = s.firstIndex { $0 == "e" || $0 == "E" } ?? s.endIndex
        let mantissa = s[..<mantissaEnd]
        var exponent = s[mantissaEnd...].dropFirst()
        if mantissaEnd != s.endIndex {
            if let sign = exponent.first, sign == "+" || sign == "-" { exponent = exponent.dropFirst() }
            guard !exponent.isEmpty, exponent.allSatisfy(\.isASCIIDigit) else { return nil }
        }
        let parts = mantissa.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard mantissa.filter({ $0 == "." }).count <= 1, parts.allSatisfy({ $0.allSatisfy(\.isASCIIDigit) }) else { return nil }
        let whole = parts[0], fraction = parts.count > 1 ? parts[1] : nil
        // `.5` and `5.` and `5` are floats; `.` and `` are not.
        guard !whole.isEmpty || (fraction.map { !$0.isEmpty } ?? false) else { return nil }
        if whole.isEmpty, fraction == nil { return nil }
        return Double(plain)
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
