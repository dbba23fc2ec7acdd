import NetfilterModel
@testable import RuleReaders
import Testing

/// Hand-built x_tables entries, laid out as `struct ipt_entry` (Linux UAPI, unchanged since 2.4): a 112-byte header
/// (`struct ipt_ip` with addresses, interfaces, proto, flags, invflags; then nfcache, target_offset at 88,
/// next_offset at 90, comefrom, counters at 96), the matches, then the target. Each match and target starts with a
/// 32-byte header: u16 size, a 29-byte name, a revision byte.
struct EntryBuilder {
    var bytes = [UInt8](repeating: 0, count: 112)
    private var extensions: [UInt8] = []

    mutating func put(_ value: some FixedWidthInteger, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { bytes.replaceSubrange(offset..<(offset + $0.count), with: $0) }
    }

    mutating func inInterface(_ name: String, maskLength: Int) {
        let n = Array(name.utf8)
        bytes.replaceSubrange(16..<(16 + n.count), with: n)
        for i in 0..<maskLength { bytes[48 + i] = 0xFF }
    }

    static func extensionBytes(_ name: String, revision: UInt8, payload: [UInt8]) -> [UInt8] {
        var e = [UInt8](repeating: 0, count: 32)
        let size = UInt16(32 + payload.count)
        e[0] = UInt8(size & 0xFF)
        e[1] = UInt8(size >> 8)
        let n = Array(name.utf8)
        e.replaceSubrange(2..<(2 + n.count), with: n)
        e[31] = revision
        return e + payload
    }

    mutating func match(_ name: String, revision: UInt8 = 0, payload: [UInt8]) {
        extensions += Self.extensionBytes(name, revision: revision, payload: payload)
    }

    /// The finished entry, with target_offset and next_offset filled in.
    func entry(target name: String, revision: UInt8 = 0, payload: [UInt8] = []) -> [UInt8] {
        var e = self
        let target = Self.extensionBytes(name, revision: revision, payload: payload)
        e.put(UInt16(112 + extensions.count), at: 88)
        e.put(UInt16(112 + extensions.count + target.count), at: 90)
        return e.bytes + extensions + target
    }
}

@Suite("Legacy entry decoding from bytes")
struct LegacyDecodeTests {
    let noSets: (UInt16) -> String? = { _ in nil }

    @Test func headerLayoutIsTheKernels() {
        #expect(LegacyEntryDecoder.headerSize(.ipv4) == 112)
        #expect(LegacyEntryDecoder.headerSize(.ipv6) == 168)
        #expect(LegacyEntryDecoder.extensionHeaderSize == 32)
    }

    @Test func unknownTargetIsKeptWithItsPayload() throws {
        var b = EntryBuilder()
        b.put(UInt64(7), at: 96)
        b.put(UInt64(420), at: 104)
        let payload: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
        let rule = try LegacyEntryDecoder.decodeRule(entry: b.entry(target: "FANCY", revision: 3, payload: payload),
                                                     family: .ipv4, standardTarget: "FANCY", setName: noSets)
        #expect(rule.target == .unrecognized(UnrecognizedExtension(name: "FANCY", revision: 3, payload: payload)))
        #expect(rule.counters == Counters(packets: 7, bytes: 420))
        #expect(SaveSyntax.render(rule, in: "X", family: .ipv4) == "-A X -j FANCY")
    }

    @Test func knownMatchOfTheWrongSizeIsKeptNotGuessed() throws {
        var b = EntryBuilder()
        b.match("tcp", payload: [UInt8](repeating: 0, count: 8))
        let rule = try LegacyEntryDecoder.decodeRule(entry: b.entry(target: ""), family: .ipv4, standardTarget: "", setName: noSets)
        #expect(rule.matches == [.unrecognized(UnrecognizedExtension(name: "tcp", revision: 0, payload: [UInt8](repeating: 0, count: 8)))])
        #expect(rule.target == .continue)
    }

    /// A match's or target's name is read up to its NUL, whatever follows it, at every length the 29-byte field
    /// allows: known names dispatch as before, and anything else is kept under exactly its own name.
    @Test func extensionNamesAreReadUpToTheirNul() throws {
        // "tcp", then bytes the kernel does not promise to clear: still the tcp match.
        var b = EntryBuilder()
        b.match("tcp", payload: [UInt8](repeating: 0, count: 16))
        var entry = b.entry(target: "")
        entry.replaceSubrange((112 + 2 + 4)..<(112 + 2 + 9), with: Array("xmark".utf8))
        let tcp = try LegacyEntryDecoder.decodeRule(entry: entry, family: .ipv4, standardTarget: "", setName: noSets)
        guard case .tcp = tcp.matches.first else { Issue.record("not tcp: \(tcp.matches)"); return }

        let names = ["tcpx", "tc", "marks", "conntrackx", "statistic2", "abcdefghijklmnop", "abcdefghijklmnopq",
                     "abcdefghijklmnopqrstuvwxyz12", "MARKS", "DNA", "xt_ü"]
        for name in names {
            var m = EntryBuilder()
            m.match(name, payload: [1, 2, 3, 4, 5, 6, 7, 8])
            let rule = try LegacyEntryDecoder.decodeRule(entry: m.entry(target: name, payload: [9, 9, 9, 9, 9, 9, 9, 9]),
                                                         family: .ipv4, standardTarget: "", setName: noSets)
            #expect(rule.matches == [.unrecognized(UnrecognizedExtension(name: name, revision: 0, payload: [1, 2, 3, 4, 5, 6, 7, 8]))])
            #expect(rule.target == .unrecognized(UnrecognizedExtension(name: name, revision: 0, payload: [9, 9, 9, 9, 9, 9, 9, 9])))
        }
    }

    @Test func tcpPortsAreHostOrder() throws {
        // xt_tcp: spts[2], dpts[2] (host order), option, flg_mask, flg_cmp, invflags; padded to 16.
        var payload = [UInt8](repeating: 0, count: 16)
        payload.replaceSubrange(0..<8, with: [0, 0, 0xFF, 0xFF, 0x50, 0x00, 0x50, 0x00])
        payload[11] = 0x02  // XT_TCP_INV_DSTPT
        let m = LegacyEntryDecoder.decodeMatch(name: "tcp", revision: 0, payload: payload, family: .ipv4, setName: noSets)
        #expect(m == .tcp(TCPMatch(destinationPort: PortMatch(80, inverted: true))))
    }

    @Test func backwardsPortRangeDoesNotTrap() {
        var payload = [UInt8](repeating: 0, count: 16)
        payload.replaceSubrange(0..<4, with: [100, 0, 50, 0])
        let m = LegacyEntryDecoder.decodeMatch(name: "tcp", revision: 0, payload: payload, family: .ipv4, setName: noSets)
        guard case .unrecognized = m else { Issue.record("decoded \(m)"); return }
    }

    @Test func unresolvedSetKeepsItsIndex() {
        // xt_set_info_match_v1: index (u16) = 3, dim = 2, flags = src for dimension 1 only; padded to 8.
        let payload: [UInt8] = [3, 0, 2, 0b0000_0010, 0, 0, 0, 0]
        let m = LegacyEntryDecoder.decodeMatch(name: "set", revision: 1, payload: payload, family: .ipv4, setName: noSets)
        #expect(m == .set(SetMatch(name: "#3", directions: [.source, .destination])))
        let named = LegacyEntryDecoder.decodeMatch(name: "set", revision: 1, payload: payload, family: .ipv4) { $0 == 3 ? "probes" : nil }
        #expect(named == .set(SetMatch(name: "probes", directions: [.source, .destination])))
    }

    @Test func verdictsJumpsAndGotos() throws {
        var b = EntryBuilder()
        #expect(try LegacyEntryDecoder.decodeRule(entry: b.entry(target: ""), family: .ipv4, standardTarget: "ISTIO_REDIRECT",
                                                  setName: noSets).target == .jump("ISTIO_REDIRECT"))
        b.bytes[82] = 0x02  // IPT_F_GOTO
        #expect(try LegacyEntryDecoder.decodeRule(entry: b.entry(target: ""), family: .ipv4, standardTarget: "ISTIO_REDIRECT",
                                                  setName: noSets).target == .goto("ISTIO_REDIRECT"))
        #expect(try LegacyEntryDecoder.decodeRule(entry: b.entry(target: ""), family: .ipv4, standardTarget: "RETURN",
                                                  setName: noSets).target == .return)
    }

    @Test func interfaceWildcardFollowsTheMask() throws {
        var b = EntryBuilder()
        b.inInterface("veth", maskLength: 4)
        var rule = try LegacyEntryDecoder.decodeRule(entry: b.entry(target: ""), family: .ipv4, standardTarget: "", setName: noSets)
        #expect(rule.inInterface == InterfaceMatch(name: "veth", wildcard: true))
        b = EntryBuilder()
        b.inInterface("eth0", maskLength: 5)
        b.bytes[83] = 0x01  // IPT_INV_VIA_IN
        rule = try LegacyEntryDecoder.decodeRule(entry: b.entry(target: ""), family: .ipv4, standardTarget: "", setName: noSets)
        #expect(rule.inInterface == InterfaceMatch(name: "eth0", wildcard: false, inverted: true))
    }

    @Test func rejectValuesIptablesCannotPrintAreKept() {
        // ip6t_reject_info { u32 with } = IP6T_ICMP6_ECHOREPLY (5), which ip6tables no longer names.
        let t = LegacyEntryDecoder.decodeTarget(name: "REJECT", revision: 0, payload: [5, 0, 0, 0, 0, 0, 0, 0], family: .ipv6)
        #expect(t == .unrecognized(UnrecognizedExtension(name: "REJECT", revision: 0, payload: [5, 0, 0, 0, 0, 0, 0, 0])))
        let reset = LegacyEntryDecoder.decodeTarget(name: "REJECT", revision: 0, payload: [6, 0, 0, 0, 0, 0, 0, 0], family: .ipv6)
        #expect(reset == .reject(RejectTarget(with: "tcp-reset")))
    }

    @Test func truncatedEntriesAreErrorsNotCrashes() {
        let b = EntryBuilder()
        let whole = b.entry(target: "X", payload: [0, 0, 0, 0, 0, 0, 0, 0])
        for length in [0, 50, 111, 112, 140, whole.count - 1] {
            #expect(throws: EntryDecodingError.self) {
                try LegacyEntryDecoder.decodeRule(entry: Array(whole.prefix(length)), family: .ipv4, standardTarget: "", setName: noSets)
            }
        }
        var bad = EntryBuilder()
        bad.match("tcp", payload: [])
        var bytes = bad.entry(target: "")
        bytes[112] = 0xFF  // match_size runs past the target
        #expect(throws: EntryDecodingError.self) {
            try LegacyEntryDecoder.decodeRule(entry: bytes, family: .ipv4, standardTarget: "", setName: noSets)
        }
    }
}
