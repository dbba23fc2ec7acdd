/// One netlink reply copied out of the receive buffer: type, flags, the fixed family header
/// (`rtmsg`, `fib_rule_hdr`, `ifaddrmsg`, `ifinfomsg`, `nfgenmsg`) and the top-level attributes.
/// Nothing in it points into the receive buffer.
struct NetlinkMessage: Sendable {
    var type: UInt16
    var flags: UInt16
    var header: [UInt8]
    var attributes: NetlinkAttributes
}

/// Top-level attributes of a message by type (flags such as `NLA_F_NESTED` masked off). A repeated type keeps
/// the last occurrence, as iproute2's `parse_rtattr` does.
struct NetlinkAttributes: Sendable {
    private var values: [UInt16: [UInt8]] = [:]

    init() {}

    subscript(type: UInt16) -> [UInt8]? {
        get { values[type] }
        set { values[type] = newValue }
    }

    func contains(_ type: UInt16) -> Bool { values[type] != nil }

    func u8(_ type: UInt16) -> UInt8? {
        guard let b = values[type], b.count >= 1 else { return nil }
        return b[0]
    }

    /// A `u32` in host byte order (rtnetlink's convention).
    func u32(_ type: UInt16) -> UInt32? {
        guard let b = values[type], b.count >= 4 else { return nil }
        return b.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
    }

    /// A `u32` in network byte order (nfnetlink's convention).
    func bigEndianU32(_ type: UInt16) -> UInt32? { u32(type).map { UInt32(bigEndian: $0) } }

    /// A `u64` in network byte order (nfnetlink's convention).
    func bigEndianU64(_ type: UInt16) -> UInt64? {
        guard let b = values[type], b.count >= 8 else { return nil }
        return UInt64(bigEndian: b.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
    }

    /// A NUL-terminated string attribute (interface and table names).
    func string(_ type: UInt16) -> String? {
        guard let b = values[type] else { return nil }
        let text = b.prefix { $0 != 0 }
        return String(decoding: text, as: UTF8.self)
    }
}
