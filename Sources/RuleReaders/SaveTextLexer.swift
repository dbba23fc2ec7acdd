import NetfilterModel

/// One argument of a rule line after iptables-restore's quoting rules.
struct SaveTextToken: Hashable, Sendable {
    /// The argument with quotes and escapes removed.
    var value: String
    /// The argument as written, quotes included, so unrecognized extensions print back unchanged.
    var raw: String
}

/// What is wrong with one line. The parser adds the file name and line number.
struct LineProblem: Error {
    var message: String
    /// Set instead of a message when an IPv6 value turned up while the family was still a guess,
    /// so the parser can read the part again as IPv6.
    var foundIPv6: Bool
    /// The line at fault when it is not the line being read (a table repeated from an earlier line).
    var line: Int?

    init(_ message: String, line: Int? = nil) {
        self.message = message
        self.foundIPv6 = false
        self.line = line
    }

    static let ipv6Evidence: LineProblem = {
        var p = LineProblem("IPv6 value in rules read as IPv4")
        p.foundIPv6 = true
        return p
    }()

    /// `expected WHAT after OPTION, got "VALUE"`: the shape of every bad-value message.
    static func expected(_ what: String, after option: String, got value: String) -> LineProblem {
        LineProblem("expected \(what) after \(option), got \(quoted(value))")
    }
}

/// A value quoted for an error message (`MessageText.quoted`: escaped, cut to a readable length).
func quoted(_ value: String) -> String {
    MessageText.quoted(value)
}

enum SaveTextLexer {
    /// Splits a rule line into arguments the way iptables-restore does (`add_param_to_argv`):
    /// blanks separate arguments; `"` opens a quoted argument in which `\x` stands for `x`
    /// (so `\"`, `\\`, `\'`); the closing quote ends the argument, so `""` is an empty one.
    /// Outside quotes a backslash is an ordinary character.
    static func split(_ line: Substring) throws(LineProblem) -> [SaveTextToken] {
        let bytes = Array(line.utf8)
        var tokens: [SaveTextToken] = []
        var value: [UInt8] = []
        var start: Int? = nil
        var inQuote = false
        var escaped = false

        func emit(end: Int) {
            guard let s = start else { return }
            tokens.append(SaveTextToken(value: String(decoding: value, as: UTF8.self),
                                        raw: String(decoding: bytes[s..<end], as: UTF8.self)))
            value.removeAll(keepingCapacity: true)
            start = nil
        }

        for (i, b) in bytes.enumerated() {
            if inQuote {
                if escaped {
                    value.append(b)
                    escaped = false
                } else if b == UInt8(ascii: "\\") {
                    escaped = true
                } else if b == UInt8(ascii: "\"") {
                    inQuote = false
                    emit(end: i + 1)
                } else {
                    value.append(b)
                }
                continue
            }
            switch b {
            case UInt8(ascii: "\""):
                inQuote = true
                if start == nil { start = i }
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                emit(end: i)
            default:
                if start == nil { start = i }
                value.append(b)
            }
        }
        if inQuote { throw LineProblem("unterminated quote: a \" opened an argument that the line never closes") }
        emit(end: bytes.count)
        return tokens
    }
}

/// Number, port, mark and address parsing with iptables' own rules (`xtables_strtoui` and friends).
enum SaveTextValues {
    /// `strtoul(s, 0)` as `xtables_strtoui` uses it: decimal, `0x` hex or leading-`0` octal, the whole string,
    /// at most `max`. nil otherwise.
    static func number(_ s: some StringProtocol, max: UInt64) -> UInt64? {
        var digits = Substring(s)
        if digits.hasPrefix("+") { digits = digits.dropFirst() }
        var radix: UInt64 = 10
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") {
            radix = 16
            digits = digits.dropFirst(2)
        } else if digits.count > 1, digits.hasPrefix("0") {
            radix = 8
            digits = digits.dropFirst()
        }
        guard !digits.isEmpty else { return nil }
        var v: UInt64 = 0
        for c in digits.utf8 {
            let d: UInt64
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt64(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt64(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt64(c - UInt8(ascii: "A") + 10)
            default: return nil
            }
            guard d < radix else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: radix)
            let (a, o2) = m.addingReportingOverflow(d)
            guard !o1, !o2 else { return nil }
            v = a
        }
        return v <= max ? v : nil
    }

    static func uint32(_ s: some StringProtocol) -> UInt32? { number(s, max: UInt64(UInt32.max)).map { UInt32($0) } }
    static func uint16(_ s: some StringProtocol) -> UInt16? { number(s, max: UInt64(UInt16.max)).map { UInt16($0) } }

    /// A port number (service names are not resolved: iptables-save always prints numbers).
    static func port(_ s: some StringProtocol, option: String) throws(LineProblem) -> UInt16 {
        guard let p = uint16(s) else { throw .expected("a port number (0-65535)", after: option, got: String(s)) }
        return p
    }

    /// `PORT`, `LO:HI`, `:HI` or `LO:` as the tcp and udp matches take them.
    static func portRange(_ s: String, option: String) throws(LineProblem) -> ClosedRange<UInt16> {
        guard let colon = s.firstIndex(of: ":") else {
            let p = try port(s, option: option)
            return p...p
        }
        let lo = s[..<colon].isEmpty ? 0 : try port(s[..<colon], option: option)
        let hiText = s[s.index(after: colon)...]
        let hi = hiText.isEmpty ? UInt16.max : try port(hiText, option: option)
        guard lo <= hi else { throw .expected("a port range LOW:HIGH with LOW <= HIGH", after: option, got: s) }
        return lo...hi
    }

    /// `VALUE[/MASK]` of marks; the mask is `0xffffffff` when absent.
    static func markAndMask(_ s: String, option: String) throws(LineProblem) -> (value: UInt32, mask: UInt32) {
        let parts = s.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let value = uint32(parts[0]) else {
            throw .expected("a mark VALUE[/MASK] (32-bit numbers)", after: option, got: s)
        }
        guard parts.count == 2 else { return (value, 0xFFFF_FFFF) }
        guard let mask = uint32(parts[1]) else {
            throw .expected("a mark VALUE[/MASK] (32-bit numbers)", after: option, got: s)
        }
        return (value, mask)
    }

    /// A plain 32-bit value (no mask), as `--and-mark` and friends take it.
    static func mark(_ s: String, option: String) throws(LineProblem) -> UInt32 {
        guard let v = uint32(s) else { throw .expected("a 32-bit mark value", after: option, got: s) }
        return v
    }

    // MARK: addresses

    /// iptables' `__numeric_to_ipaddr`: dotted quad whose bytes are `strtoul(…, 0)` numbers; as an address (not
    /// a mask) fewer than four parts are completed with zeros (`10.1` is 10.1.0.0).
    static func ipv4(_ s: some StringProtocol, isMask: Bool) -> UInt32? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 4, parts.count == 4 || !isMask else { return nil }
        var v: UInt32 = 0
        for i in 0..<4 {
            var byte: UInt32 = 0
            if i < parts.count {
                guard let n = number(parts[i], max: 255) else { return nil }
                byte = UInt32(n)
            }
            v = v << 8 | byte
        }
        return v
    }

    /// A host address of `family`. When the rules are still being read as IPv4 on a guess and `text` is an
    /// IPv6 address, throws `LineProblem.ipv6Evidence` so the parser reads them again as IPv6.
    static func host(_ text: some StringProtocol, family: Family, guessing: Bool, option: String,
                     note: String = "") throws(LineProblem) -> IPAddress {
        let got = quoted(String(text))
        switch family {
        case .ipv4:
            if !text.contains(":"), let v = ipv4(text, isMask: false) { return IPAddress(ipv4: v) }
            if text.contains(":"), IPAddress(text) != nil {
                if guessing { throw .ipv6Evidence }
                throw LineProblem("expected an IPv4 address after \(option), got \(got)\(note)")
            }
        case .ipv6:
            if text.contains(":"), let a = IPAddress(text) { return a }
            if !text.isEmpty, ipv4(text, isMask: false) != nil {
                throw LineProblem("expected an IPv6 address after \(option), got \(got)\(note)")
            }
        }
        throw LineProblem("expected an address after \(option), got \(got)\(note)")
    }

    /// `ADDR`, `ADDR/LEN` or `ADDR/MASK` (non-contiguous masks allowed); a bare address is a host.
    /// The address is stored masked, as the kernel keeps it (10.1.2.3/8 is 10.0.0.0/8).
    static func addressMatch(_ text: some StringProtocol, family: Family, guessing: Bool, inverted: Bool,
                             option: String, note: String = "") throws(LineProblem) -> AddressMatch {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let address = try host(parts[0], family: family, guessing: guessing, option: option, note: note)
        guard parts.count == 2 else {
            return AddressMatch(address: address, prefixLength: family.addressBits, inverted: inverted)
        }
        let m = parts[1]
        let bits = family.addressBits
        if let len = number(m, max: UInt64(bits)), !m.contains(".") && !m.contains(":") {
            return AddressMatch(address: address, prefixLength: Int(len), inverted: inverted)
        }
        switch family {
        case .ipv4:
            if m.contains("."), let v = ipv4(m, isMask: true) {
                return AddressMatch(address: address, mask: IPAddress(ipv4: v), inverted: inverted)
            }
        case .ipv6:
            if m.contains(":"), let v = IPAddress(m), v.family == .ipv6 {
                return AddressMatch(address: address, mask: v, inverted: inverted)
            }
        }
        let form = family == .ipv4 ? "0-32 or a dotted mask" : "0-128 or an IPv6 mask"
        throw LineProblem("expected a mask (\(form)) after \(parts[0])/ in \(option), got \(quoted(String(m)))")
    }
}
