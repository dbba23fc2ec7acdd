/// An IPv4 or IPv6 address as a number, so masks and ranges are arithmetic.
/// IPv4 values occupy the low 32 bits.
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    // The value in two words, family last: 17 bytes at 8-byte alignment instead of a 16-byte-aligned `UInt128`
    // (32 bytes). Every rule holds two addresses and two masks, so on a node's table this is most of a rule.
    private let high: UInt64
    private let low: UInt64
    public let family: Family

    public var value: UInt128 { UInt128(high) << 64 | UInt128(low) }

    public init(family: Family, value: UInt128) {
        let value = family == .ipv4 ? value & 0xFFFF_FFFF : value
        self.family = family
        high = UInt64(truncatingIfNeeded: value >> 64)
        low = UInt64(truncatingIfNeeded: value)
    }

    public init(ipv4 value: UInt32) { self.init(family: .ipv4, value: UInt128(value)) }

    /// 127.0.0.0/8 or ::1: what the kernel routes over `lo` whatever the rules say.
    public var isLoopback: Bool {
        family == .ipv4 ? value >> 24 == 127 : value == 1
    }

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text; nil when it is neither.
    public init?(_ text: some StringProtocol) {
        if text.contains(":") {
            guard let v = IPAddress.parseIPv6(Substring(text)) else { return nil }
            self.init(family: .ipv6, value: v)
        } else {
            guard let v = IPAddress.parseIPv4(Substring(text)) else { return nil }
            self.init(family: .ipv4, value: UInt128(v))
        }
    }

    /// The all-zero address of a family (`0.0.0.0`, `::`).
    public static func zero(_ family: Family) -> IPAddress { IPAddress(family: family, value: 0) }

    /// A network mask of `prefixLength` leading one bits.
    public static func mask(prefixLength: Int, family: Family) -> IPAddress {
        let bits = family.addressBits
        precondition(prefixLength >= 0 && prefixLength <= bits)
        if prefixLength == 0 { return zero(family) }
        let all: UInt128 = bits == 32 ? 0xFFFF_FFFF : ~0
        return IPAddress(family: family, value: (all << UInt128(bits - prefixLength)) & all)
    }

    /// The prefix length if this address is a contiguous mask, else nil.
    public var prefixLength: Int? {
        let bits = family.addressBits
        let ones = value.nonzeroBitCount
        return IPAddress.mask(prefixLength: ones, family: family).value == value && ones <= bits ? ones : nil
    }

    public static func & (lhs: IPAddress, rhs: IPAddress) -> IPAddress {
        IPAddress(family: lhs.family, value: lhs.value & rhs.value)
    }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        (lhs.family, lhs.value) < (rhs.family, rhs.value)
    }

    /// The numeric text form that iptables prints (glibc `inet_ntop`).
    public var description: String {
        family == .ipv4 ? IPAddress.formatIPv4(UInt32(truncatingIfNeeded: value)) : IPAddress.formatIPv6(value)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let a = IPAddress(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an IP address: \(text)"))
        }
        self = a
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    static func parseIPv4(_ s: Substring) -> UInt32? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }), let n = UInt32(p), n <= 255 else { return nil }
            v = v << 8 | n
        }
        return v
    }

    static func parseIPv6(_ s: Substring) -> UInt128? {
        var groups: [UInt16] = []
        var tail: [UInt16] = []
        var sawDoubleColon = false
        var text = s
        if text.hasPrefix("::") {
            sawDoubleColon = true
            text = text.dropFirst(2)
        }
        // Split into head and tail around a single "::".
        if let range = text.firstRange(of: "::") {
            if sawDoubleColon { return nil }
            sawDoubleColon = true
            guard let h = parseGroups(text[..<range.lowerBound]), let t = parseGroups(text[range.upperBound...]) else { return nil }
            groups = h
            tail = t
        } else if sawDoubleColon {
            guard let t = parseGroups(text) else { return nil }
            tail = t
        } else {
            guard let h = parseGroups(text) else { return nil }
            groups = h
        }
        let total = groups.count + tail.count
        if sawDoubleColon {
            guard total <= 7 else { return nil }
            groups += Array(repeating: 0, count: 8 - total) + tail
        } else {
            guard total == 8 else { return nil }
        }
        return groups.reduce(UInt128(0)) { $0 << 16 | UInt128($1) }
    }

    private static func parseGroups(_ s: Substring) -> [UInt16]? {
        if s.isEmpty { return [] }
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        var out: [UInt16] = []
        for (i, p) in parts.enumerated() {
            if i == parts.count - 1, p.contains(".") {
                guard let v4 = parseIPv4(p) else { return nil }
                out.append(UInt16(v4 >> 16))
                out.append(UInt16(v4 & 0xFFFF))
            } else {
                guard !p.isEmpty, p.count <= 4, let n = UInt16(p, radix: 16) else { return nil }
                out.append(n)
            }
        }
        return out
    }

    static func formatIPv4(_ v: UInt32) -> String {
        var text = TextBuffer()
        writeIPv4(v, to: &text)
        return text.string
    }

    /// Dotted quad; the one definition `formatIPv4` and save syntax both use.
    static func writeIPv4(_ v: UInt32, to text: inout TextBuffer) {
        text.append(decimal: v >> 24)
        text.append(byte: 0x2E)
        text.append(decimal: v >> 16 & 0xFF)
        text.append(byte: 0x2E)
        text.append(decimal: v >> 8 & 0xFF)
        text.append(byte: 0x2E)
        text.append(decimal: v & 0xFF)
    }

    /// `description`, appended in place.
    func write(to text: inout TextBuffer) {
        if family == .ipv4 {
            IPAddress.writeIPv4(UInt32(truncatingIfNeeded: value), to: &text)
        } else {
            text.append(contentsOf: IPAddress.formatIPv6(value))
        }
    }

    /// glibc's `inet_ntop` for AF_INET6: the longest run (≥ 2) of zero groups becomes `::`,
    /// and `::a.b.c.d` / `::ffff:a.b.c.d` keep an embedded IPv4 tail.
    static func formatIPv6(_ v: UInt128) -> String {
        let words = (0..<8).map { UInt16(truncatingIfNeeded: v >> UInt128((7 - $0) * 16)) }
        var bestBase = -1, bestLen = 0, curBase = -1, curLen = 0
        for i in 0..<8 {
            if words[i] == 0 {
                if curBase == -1 { curBase = i; curLen = 1 } else { curLen += 1 }
            } else if curBase != -1 {
                if bestBase == -1 || curLen > bestLen { bestBase = curBase; bestLen = curLen }
                curBase = -1
            }
        }
        if curBase != -1, bestBase == -1 || curLen > bestLen { bestBase = curBase; bestLen = curLen }
        if bestBase != -1, bestLen < 2 { bestBase = -1 }
        var out = ""
        var i = 0
        while i < 8 {
            if bestBase != -1, i >= bestBase, i < bestBase + bestLen {
                if i == bestBase { out += ":" }
                i += 1
                continue
            }
            if i != 0 { out += ":" }
            if i == 6, bestBase == 0, bestLen == 6 || (bestLen == 5 && words[5] == 0xFFFF) {
                out += formatIPv4(UInt32(truncatingIfNeeded: v))
                break
            }
            out += String(words[i], radix: 16)
            i += 1
        }
        if bestBase != -1, bestBase + bestLen == 8 { out += ":" }
        return out
    }
}

/// `-s`/`-d`: an address under a mask, possibly inverted. The address is stored masked, as the kernel keeps it.
public struct AddressMatch: Hashable, Sendable, Codable {
    public var address: IPAddress
    public var mask: IPAddress
    public var inverted: Bool

    public init(address: IPAddress, mask: IPAddress, inverted: Bool = false) {
        self.address = address & mask
        self.mask = mask
        self.inverted = inverted
    }

    /// As the kernel keeps conntrack tuple addresses (`--ctorigsrc 10.1.2.3/8`): host bits are kept, since
    /// iptables prints them back, and only matter nowhere else (matching masks both sides).
    public init(unmaskedAddress address: IPAddress, mask: IPAddress, inverted: Bool = false) {
        self.address = address
        self.mask = mask
        self.inverted = inverted
    }

    public init(address: IPAddress, prefixLength: Int, inverted: Bool = false) {
        self.init(address: address, mask: .mask(prefixLength: prefixLength, family: address.family), inverted: inverted)
    }

    /// Parses `ADDR`, `ADDR/LEN` or `ADDR/MASK`; a bare address is a host (/32, /128).
    public init?(_ text: some StringProtocol, inverted: Bool = false) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { return nil }
        var mask = IPAddress.mask(prefixLength: address.family.addressBits, family: address.family)
        if parts.count == 2 {
            if let len = Int(parts[1]), parts[1].allSatisfy(\.isNumber) {
                guard len >= 0, len <= address.family.addressBits else { return nil }
                mask = .mask(prefixLength: len, family: address.family)
            } else if let m = IPAddress(parts[1]), m.family == address.family {
                mask = m
            } else {
                return nil
            }
        }
        self.init(address: address, mask: mask, inverted: inverted)
    }

    /// True when this match does not constrain anything (`0.0.0.0/0`, not inverted).
    public var isWildcard: Bool { mask.value == 0 && address.value == 0 && !inverted }

    /// `ADDR/LEN`, or `ADDR/MASK` for a non-contiguous mask, as iptables-save prints it.
    public var cidrText: String {
        var text = TextBuffer()
        writeCIDR(to: &text)
        return text.string
    }

    /// `cidrText`, appended in place.
    func writeCIDR(to text: inout TextBuffer) {
        address.write(to: &text)
        text.append(byte: 0x2F)
        if let len = mask.prefixLength { text.append(decimal: len) } else { mask.write(to: &text) }
    }

    /// Whether a concrete address falls inside (ignoring inversion).
    public func contains(_ a: IPAddress) -> Bool {
        a.family == address.family && (a.value & mask.value) == (address.value & mask.value)
    }
}
