private import CIPTC
#if canImport(Glibc)
import Glibc
#endif
import NetfilterModel

/// Why an entry's bytes could not be walked (a truncated or inconsistent entry; the kernel never hands one out).
struct EntryDecodingError: Error, Equatable {
    var reason: String
}

/// Turns one x_tables entry (`ipt_entry` / `ip6t_entry` plus its matches and target) into a model rule.
/// Pure: works on copied bytes, so tests can feed hand-built entries without libiptc.
enum LegacyEntryDecoder {
    /// Size of the fixed entry header, where the first match starts.
    static func headerSize(_ family: Family) -> Int {
        Int(family == .ipv4 ? iptaudit_ipt_entry_elems_offset() : iptaudit_ip6t_entry_elems_offset())
    }

    /// Size of the `xt_entry_match` / `xt_entry_target` header in front of each payload.
    static let extensionHeaderSize = MemoryLayout<xt_entry_match>.size

    /// `decodeRule` over an entry held in an array (hand-built entries in tests).
    static func decodeRule(entry: [UInt8], family: Family, standardTarget: String,
                           setName: (UInt16) -> String?) throws(EntryDecodingError) -> Rule {
        let result = entry.withUnsafeBytes { bytes in
            Result { () throws(EntryDecodingError) in
                try decodeRule(entry: bytes, family: family, standardTarget: standardTarget, setName: setName)
            }
        }
        return try result.get()
    }

    /// - Parameter entry: the entry's bytes where they are (libiptc's memory, while the caller holds the handle):
    ///   a node's table is decoded without copying each entry and each payload into arrays of their own.
    /// - Parameter standardTarget: libiptc's `iptc_get_target` for the entry: a verdict name, a chain, or "";
    ///   read only when the entry's target is the standard one (a module target is named in the entry).
    static func decodeRule(entry: UnsafeRawBufferPointer, family: Family, standardTarget: String,
                           setName: (UInt16) -> String?) throws(EntryDecodingError) -> Rule {
        let header = headerSize(family)
        guard entry.count >= header else { throw EntryDecodingError(reason: "entry of \(entry.count) bytes is shorter than its header") }
        // The rule is built once from these at the end: mutating a `Rule` field by field copied the whole value.
        let ip: IPHeader
        let counters: Counters
        let targetOffset: Int, nextOffset: Int, gotoFlag: Bool
        switch family {
        case .ipv4:
            let e = load(ipt_entry.self, entry, at: 0)
            ip = decodeIPv4Header(e.ip)
            counters = Counters(packets: e.counters.pcnt, bytes: e.counters.bcnt)
            targetOffset = Int(e.target_offset)
            nextOffset = Int(e.next_offset)
            gotoFlag = e.ip.flags & UInt8(IPT_F_GOTO) != 0
        case .ipv6:
            let e = load(ip6t_entry.self, entry, at: 0)
            ip = decodeIPv6Header(e.ipv6)
            counters = Counters(packets: e.counters.pcnt, bytes: e.counters.bcnt)
            targetOffset = Int(e.target_offset)
            nextOffset = Int(e.next_offset)
            gotoFlag = e.ipv6.flags & UInt8(IP6T_F_GOTO) != 0
        }
        guard targetOffset >= header, nextOffset <= entry.count, targetOffset + extensionHeaderSize <= nextOffset else {
            throw EntryDecodingError(reason: "inconsistent offsets (target \(targetOffset), next \(nextOffset), size \(entry.count))")
        }

        var matches: [Match] = []
        matches.reserveCapacity(matchCount(entry, from: header, to: targetOffset))
        var offset = header
        while offset < targetOffset {
            guard offset + extensionHeaderSize <= targetOffset else {
                throw EntryDecodingError(reason: "truncated match header at offset \(offset)")
            }
            let m = load(xt_entry_match.self, entry, at: offset)
            let size = Int(m.u.user.match_size)
            guard size >= extensionHeaderSize, offset + size <= targetOffset else {
                throw EntryDecodingError(reason: "match at offset \(offset) has size \(size)")
            }
            let name = withUnsafeBytes(of: m.u.user.name) { extensionName($0) }
            let payload = UnsafeRawBufferPointer(rebasing: entry[(offset + extensionHeaderSize)..<(offset + size)])
            matches.append(decodeMatch(name: name, revision: m.u.user.revision, payload: payload, family: family, setName: setName))
            offset += size
        }

        let t = load(xt_entry_target.self, entry, at: targetOffset)
        let targetSize = Int(t.u.user.target_size)
        guard targetSize >= extensionHeaderSize, targetOffset + targetSize <= nextOffset else {
            throw EntryDecodingError(reason: "target has size \(targetSize)")
        }
        let targetName = withUnsafeBytes(of: t.u.user.name) { extensionName($0) }
        let target: Target
        if targetName.isEmpty {
            // XT_STANDARD_TARGET: a verdict or a jump, whose offset only libiptc can turn into a chain name.
            target = standardVerdict(standardTarget, goto: gotoFlag)
        } else {
            let payload = UnsafeRawBufferPointer(rebasing: entry[(targetOffset + extensionHeaderSize)..<(targetOffset + targetSize)])
            target = decodeTarget(name: targetName, revision: t.u.user.revision, payload: payload, family: family)
        }
        return Rule(source: ip.source, destination: ip.destination, inInterface: ip.inInterface, outInterface: ip.outInterface,
                    protocol: ip.protocol, fragment: ip.fragment, matches: matches, target: target, counters: counters)
    }

    /// The IP header's part of a rule.
    private struct IPHeader {
        var source: AddressMatch?
        var destination: AddressMatch?
        var inInterface: InterfaceMatch?
        var outInterface: InterfaceMatch?
        var `protocol`: ProtocolMatch?
        var fragment: Bool?
    }

    /// How many matches lie between the header and the target (as far as their sizes can be trusted), so the
    /// rule's match array is allocated once; the decoding loop still checks every size.
    private static func matchCount(_ entry: UnsafeRawBufferPointer, from start: Int, to end: Int) -> Int {
        var count = 0
        var offset = start
        while offset + extensionHeaderSize <= end {
            // `u.user.match_size` is the header's first field.
            let size = Int(entry.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            guard size >= extensionHeaderSize else { break }
            count += 1
            offset += size
        }
        return count
    }

    static func standardVerdict(_ name: String, goto: Bool) -> Target {
        switch name {
        case "": .continue
        case "ACCEPT": .accept
        case "DROP": .drop
        case "QUEUE": .queue
        case "RETURN": .return
        default: goto ? .goto(ChainName(name)) : .jump(ChainName(name))
        }
    }

    // MARK: IP header

    private static func decodeIPv4Header(_ ip: ipt_ip) -> IPHeader {
        var rule = IPHeader()
        let inv = ip.invflags
        rule.source = addressMatch(ipv4(ip.src.s_addr), mask: ipv4(ip.smsk.s_addr), inverted: inv & UInt8(IPT_INV_SRCIP) != 0)
        rule.destination = addressMatch(ipv4(ip.dst.s_addr), mask: ipv4(ip.dmsk.s_addr), inverted: inv & UInt8(IPT_INV_DSTIP) != 0)
        rule.inInterface = interface(ip.iniface, mask: ip.iniface_mask, inverted: inv & UInt8(IPT_INV_VIA_IN) != 0)
        rule.outInterface = interface(ip.outiface, mask: ip.outiface_mask, inverted: inv & UInt8(IPT_INV_VIA_OUT) != 0)
        if ip.proto != 0 { rule.protocol = ProtocolMatch(ip.proto, inverted: inv & UInt8(XT_INV_PROTO) != 0) }
        if ip.flags & UInt8(IPT_F_FRAG) != 0 { rule.fragment = inv & UInt8(IPT_INV_FRAG) != 0 }
        return rule
    }

    private static func decodeIPv6Header(_ ip: ip6t_ip6) -> IPHeader {
        var rule = IPHeader()
        let inv = ip.invflags
        rule.source = addressMatch(ipv6(ip.src), mask: ipv6(ip.smsk), inverted: inv & UInt8(IP6T_INV_SRCIP) != 0)
        rule.destination = addressMatch(ipv6(ip.dst), mask: ipv6(ip.dmsk), inverted: inv & UInt8(IP6T_INV_DSTIP) != 0)
        rule.inInterface = interface(ip.iniface, mask: ip.iniface_mask, inverted: inv & UInt8(IP6T_INV_VIA_IN) != 0)
        rule.outInterface = interface(ip.outiface, mask: ip.outiface_mask, inverted: inv & UInt8(IP6T_INV_VIA_OUT) != 0)
        if ip.proto != 0 { rule.protocol = ProtocolMatch(ip.proto, inverted: inv & UInt8(XT_INV_PROTO) != 0) }
        return rule
    }

    /// nil for "any address", which iptables-save omits.
    private static func addressMatch(_ address: IPAddress, mask: IPAddress, inverted: Bool) -> AddressMatch? {
        if address.value == 0, mask.value == 0, !inverted { return nil }
        return AddressMatch(address: address, mask: mask, inverted: inverted)
    }

    /// iptables' `save_iface`: the name's bytes where the mask is set; a `+` when the mask stops before the NUL.
    private static func interface<Name, Mask>(_ name: Name, mask: Mask, inverted: Bool) -> InterfaceMatch? {
        // Most rules name no interface: answer those before copying anything.
        withUnsafeBytes(of: name) { nameBytes in
            withUnsafeBytes(of: mask) { maskBytes -> InterfaceMatch? in
                guard let first = maskBytes.first, first != 0 else { return nil }
                var text: [UInt8] = []
                var wildcard = false
                for i in 0..<min(nameBytes.count, maskBytes.count) {
                    if maskBytes[i] != 0 {
                        if nameBytes[i] != 0 { text.append(nameBytes[i]) }
                    } else {
                        wildcard = nameBytes[i - 1] != 0
                        break
                    }
                }
                return InterfaceMatch(name: String(decoding: text, as: UTF8.self), wildcard: wildcard, inverted: inverted)
            }
        }
    }

    // MARK: Matches

    /// Decodes a match by (name, revision); an unknown one, or a payload of the wrong size, is kept as `.unrecognized`.
    static func decodeMatch(name: String, revision: UInt8, payload: [UInt8], family: Family,
                            setName: (UInt16) -> String?) -> Match {
        payload.withUnsafeBytes { decodeMatch(name: name, revision: revision, payload: $0, family: family, setName: setName) }
    }

    static func decodeMatch(name: String, revision: UInt8, payload: UnsafeRawBufferPointer, family: Family,
                            setName: (UInt16) -> String?) -> Match {
        // By name first, most frequent first (a node's table is mostly comments, tcp and statistic), then by
        // revision: matching the (name, revision) pair case by case compared and copied the pair at every case.
        let decoded: Match? = switch name {
        // `xt_comment_info` is the comment's 256 bytes: read the text where it lies instead of copying the struct.
        case "comment": revision == 0 && payload.count == xtAlign(MemoryLayout<xt_comment_info>.size) ? .comment(cString(payload)) : nil
        case "tcp": revision == 0 ? tcp(payload) : nil
        case "udp": revision == 0 ? udp(payload) : nil
        case "statistic": revision == 0 ? statistic(payload) : nil
        case "mark":
            revision == 1 ? info(xt_mark_mtinfo1.self, payload).map { .mark(MarkMatch(value: $0.mark, mask: $0.mask, inverted: $0.invert != 0)) } : nil
        case "owner": revision == 1 ? owner(payload) : nil
        case "multiport":
            switch revision {
            case 0: multiportV0(payload)
            case 1: multiportV1(payload)
            default: nil
            }
        case "connmark":
            revision == 1 ? info(xt_connmark_mtinfo1.self, payload).map { .connmark(MarkMatch(value: $0.mark, mask: $0.mask, inverted: $0.invert != 0)) } : nil
        case "conntrack":
            switch revision {
            case 1: info(xt_conntrack_mtinfo1.self, payload).flatMap { conntrack(ConntrackFields($0), family: family) }
            case 2: info(xt_conntrack_mtinfo2.self, payload).flatMap { conntrack(ConntrackFields($0), family: family) }
            case 3: info(xt_conntrack_mtinfo3.self, payload).flatMap { conntrack(ConntrackFields($0), family: family) }
            default: nil
            }
        case "state": revision == 0 ? info(xt_state_info.self, payload).map { state($0.statemask) } : nil
        case "addrtype":
            switch revision {
            case 0: addrtypeV0(payload)
            case 1: addrtypeV1(payload)
            default: nil
            }
        case "set":
            switch revision {
            case 1, 2: setV1(payload, returnNoMatchFlag: revision == 2, setName: setName)
            case 3: setV3(payload, setName: setName)
            case 4: setV4(payload, setName: setName)
            default: nil
            }
        case "socket":
            switch revision {
            case 0: payload.isEmpty ? .socket(SocketMatch()) : nil
            case 1, 2, 3: socket(payload)
            default: nil
            }
        case "mac":
            revision == 0 ? info(xt_mac_info.self, payload).map { m in
                .mac(MACMatch(address: withUnsafeBytes(of: m.srcaddr) { Array($0) }, inverted: m.invert != 0)) } : nil
        default: nil
        }
        return decoded ?? .unrecognized(UnrecognizedExtension(name: name, revision: revision, payload: Array(payload)))
    }

    private static func tcp(_ payload: UnsafeRawBufferPointer) -> Match? {
        guard let t = info(xt_tcp.self, payload) else { return nil }
        let inv = t.invflags
        guard let source = portMatch(t.spts, inverted: inv & UInt8(XT_TCP_INV_SRCPT) != 0),
              let destination = portMatch(t.dpts, inverted: inv & UInt8(XT_TCP_INV_DSTPT) != 0) else { return nil }
        var m = TCPMatch(sourcePort: source, destinationPort: destination)
        if t.option != 0 || inv & UInt8(XT_TCP_INV_OPTION) != 0 {
            m.option = TCPOptionMatch(kind: t.option, inverted: inv & UInt8(XT_TCP_INV_OPTION) != 0)
        }
        if t.flg_mask != 0 || inv & UInt8(XT_TCP_INV_FLAGS) != 0 {
            m.flags = TCPFlagsMatch(mask: t.flg_mask, compare: t.flg_cmp, inverted: inv & UInt8(XT_TCP_INV_FLAGS) != 0)
        }
        return .tcp(m)
    }

    private static func udp(_ payload: UnsafeRawBufferPointer) -> Match? {
        guard let u = info(xt_udp.self, payload),
              let source = portMatch(u.spts, inverted: u.invflags & UInt8(XT_UDP_INV_SRCPT) != 0),
              let destination = portMatch(u.dpts, inverted: u.invflags & UInt8(XT_UDP_INV_DSTPT) != 0) else { return nil }
        return .udp(UDPMatch(sourcePort: source, destinationPort: destination))
    }

    /// A tcp/udp port pair (host order): `.some(nil)` for the whole port space, nil when the range is backwards.
    private static func portMatch(_ ports: (UInt16, UInt16), inverted: Bool) -> PortMatch?? {
        guard let range = closedRange(ports.0, ports.1) else { return nil }
        if range == 0...UInt16.max { return .some(nil) }
        return .some(PortMatch(range, inverted: inverted))
    }

    private static func multiportDirection(_ flags: UInt8) -> MultiportMatch.Direction? {
        switch UInt32(flags) {
        case flag(XT_MULTIPORT_SOURCE): .source
        case flag(XT_MULTIPORT_DESTINATION): .destination
        case flag(XT_MULTIPORT_EITHER): .either
        default: nil
        }
    }

    private static func multiportV0(_ payload: UnsafeRawBufferPointer) -> Match? {
        guard let m = info(xt_multiport.self, payload), let direction = multiportDirection(m.flags) else { return nil }
        let ports = withUnsafeBytes(of: m.ports) { Array($0.bindMemory(to: UInt16.self)) }
        guard Int(m.count) <= ports.count else { return nil }
        return .multiport(MultiportMatch(direction: direction, ports: ports[0..<Int(m.count)].map { $0...$0 }))
    }

    private static func multiportV1(_ payload: UnsafeRawBufferPointer) -> Match? {
        guard let m = info(xt_multiport_v1.self, payload), let direction = multiportDirection(m.flags) else { return nil }
        let ports = withUnsafeBytes(of: m.ports) { Array($0.bindMemory(to: UInt16.self)) }
        let rangeFlags = withUnsafeBytes(of: m.pflags) { Array($0) }
        let count = Int(m.count)
        guard count <= ports.count else { return nil }
        var ranges: [ClosedRange<UInt16>] = []
        var i = 0
        while i < count {
            if rangeFlags[i] != 0 {
                guard i + 1 < count, let r = closedRange(ports[i], ports[i + 1]) else { return nil }
                ranges.append(r)
                i += 2
            } else {
                ranges.append(ports[i]...ports[i])
                i += 1
            }
        }
        return .multiport(MultiportMatch(direction: direction, ports: ranges, inverted: m.invert != 0))
    }

    private static func owner(_ payload: UnsafeRawBufferPointer) -> Match? {
        guard let o = info(xt_owner_match_info.self, payload) else { return nil }
        let known = UInt8(flag(XT_OWNER_UID) | flag(XT_OWNER_GID) | flag(XT_OWNER_SOCKET) | flag(XT_OWNER_SUPPL_GROUPS))
        let suppl = UInt8(flag(XT_OWNER_SUPPL_GROUPS))
        // `! --suppl-groups` has no place in the model; keep such a rule whole rather than misprint it.
        guard o.match & ~known == 0, o.invert & suppl == 0 else { return nil }
        var m = OwnerMatch()
        if o.match & UInt8(flag(XT_OWNER_UID)) != 0 {
            guard let r = closedRange(o.uid_min, o.uid_max) else { return nil }
            m.uid = IDRangeMatch(r, inverted: o.invert & UInt8(flag(XT_OWNER_UID)) != 0)
        }
        if o.match & UInt8(flag(XT_OWNER_GID)) != 0 {
            guard let r = closedRange(o.gid_min, o.gid_max) else { return nil }
            m.gid = IDRangeMatch(r, inverted: o.invert & UInt8(flag(XT_OWNER_GID)) != 0)
        }
        if o.match & UInt8(flag(XT_OWNER_SOCKET)) != 0 {
            m.socketExists = o.invert & UInt8(flag(XT_OWNER_SOCKET)) != 0
        }
        m.supplementaryGroups = o.match & suppl != 0
        return .owner(m)
    }

    /// The fields of conntrack revisions 1-3, widened to revision 3's shape (as libxt_conntrack does).
    private struct ConntrackFields {
        var addresses: [(nf_inet_addr, nf_inet_addr)]  // origsrc, origdst, replsrc, repldst: (address, mask)
        var ports: [(UInt16, UInt16)]  // host order, (low, high); high 0 = a single port
        var l4proto: UInt16
        var matchFlags: UInt16
        var invertFlags: UInt16
        var stateMask: UInt16
        var statusMask: UInt16
        var expires: (UInt32, UInt32)

        init(_ c: xt_conntrack_mtinfo1) {
            addresses = [(c.origsrc_addr, c.origsrc_mask), (c.origdst_addr, c.origdst_mask),
                         (c.replsrc_addr, c.replsrc_mask), (c.repldst_addr, c.repldst_mask)]
            ports = [c.origsrc_port, c.origdst_port, c.replsrc_port, c.repldst_port].map { (UInt16(bigEndian: $0), 0) }
            l4proto = c.l4proto
            matchFlags = c.match_flags
            invertFlags = c.invert_flags
            stateMask = UInt16(c.state_mask)
            statusMask = UInt16(c.status_mask)
            expires = (c.expires_min, c.expires_max)
        }

        init(_ c: xt_conntrack_mtinfo2) {
            addresses = [(c.origsrc_addr, c.origsrc_mask), (c.origdst_addr, c.origdst_mask),
                         (c.replsrc_addr, c.replsrc_mask), (c.repldst_addr, c.repldst_mask)]
            ports = [c.origsrc_port, c.origdst_port, c.replsrc_port, c.repldst_port].map { (UInt16(bigEndian: $0), 0) }
            l4proto = c.l4proto
            matchFlags = c.match_flags
            invertFlags = c.invert_flags
            stateMask = c.state_mask
            statusMask = c.status_mask
            expires = (c.expires_min, c.expires_max)
        }

        init(_ c: xt_conntrack_mtinfo3) {
            addresses = [(c.origsrc_addr, c.origsrc_mask), (c.origdst_addr, c.origdst_mask),
                         (c.replsrc_addr, c.replsrc_mask), (c.repldst_addr, c.repldst_mask)]
            // Revision 3 keeps ports in host order, with explicit upper bounds.
            ports = [(c.origsrc_port, c.origsrc_port_high), (c.origdst_port, c.origdst_port_high),
                     (c.replsrc_port, c.replsrc_port_high), (c.repldst_port, c.repldst_port_high)]
            l4proto = c.l4proto
            matchFlags = c.match_flags
            invertFlags = c.invert_flags
            stateMask = c.state_mask
            statusMask = c.status_mask
            expires = (c.expires_min, c.expires_max)
        }
    }

    private static func conntrack(_ c: ConntrackFields, family: Family) -> Match? {
        let state = UInt16(flag(XT_CONNTRACK_STATE)), alias = UInt16(flag(XT_CONNTRACK_STATE_ALIAS))
        let known: UInt16 = (UInt16(flag(XT_CONNTRACK_STATE_ALIAS)) << 1) - 1
        guard c.matchFlags & ~known == 0 else { return nil }
        func has(_ flag: UInt32) -> Bool { c.matchFlags & UInt16(flag) != 0 }
        func inverted(_ flag: UInt32) -> Bool { c.invertFlags & UInt16(flag) != 0 }
        let states = ConntrackStates(rawValue: UInt32(c.stateMask))

        // `-m state` is libxt_conntrack in disguise: the alias flag is how iptables-save knows to print "state".
        if c.matchFlags & alias != 0, c.matchFlags & ~(state | alias) == 0, c.matchFlags & state != 0 {
            return .state(StateMatch(states: states, inverted: c.invertFlags & state != 0))
        }
        var m = ConntrackMatch()
        if has(flag(XT_CONNTRACK_STATE)) { m.states = .init(states, inverted: inverted(flag(XT_CONNTRACK_STATE))) }
        if has(flag(XT_CONNTRACK_PROTO)) { m.l4Protocol = .init(c.l4proto, inverted: inverted(flag(XT_CONNTRACK_PROTO))) }
        let addressFlags = [XT_CONNTRACK_ORIGSRC, XT_CONNTRACK_ORIGDST, XT_CONNTRACK_REPLSRC, XT_CONNTRACK_REPLDST].map { flag($0) }
        var addresses: [ConntrackMatch.Condition<AddressMatch>?] = []
        for (flag, (address, mask)) in zip(addressFlags, c.addresses) {
            addresses.append(has(flag)
                ? .init(AddressMatch(unmaskedAddress: inetAddress(address, family), mask: inetAddress(mask, family)), inverted: inverted(flag))
                : nil)
        }
        m.originalSource = addresses[0]
        m.originalDestination = addresses[1]
        m.replySource = addresses[2]
        m.replyDestination = addresses[3]
        let portFlags = [XT_CONNTRACK_ORIGSRC_PORT, XT_CONNTRACK_ORIGDST_PORT, XT_CONNTRACK_REPLSRC_PORT, XT_CONNTRACK_REPLDST_PORT].map { flag($0) }
        var ports: [ConntrackMatch.Condition<ClosedRange<UInt16>>?] = []
        for (flag, (low, high)) in zip(portFlags, c.ports) {
            guard has(flag) else { ports.append(nil); continue }
            guard let r = closedRange(low, high == 0 ? low : high) else { return nil }
            ports.append(.init(r, inverted: inverted(flag)))
        }
        m.originalSourcePort = ports[0]
        m.originalDestinationPort = ports[1]
        m.replySourcePort = ports[2]
        m.replyDestinationPort = ports[3]
        if has(flag(XT_CONNTRACK_STATUS)) {
            m.status = .init(ConntrackStatus(rawValue: UInt32(c.statusMask)), inverted: inverted(flag(XT_CONNTRACK_STATUS)))
        }
        if has(flag(XT_CONNTRACK_EXPIRES)) {
            guard let r = closedRange(c.expires.0, c.expires.1) else { return nil }
            m.expires = .init(r, inverted: inverted(flag(XT_CONNTRACK_EXPIRES)))
        }
        if has(flag(XT_CONNTRACK_DIRECTION)) {
            // The kernel encodes REPLY as an inverted direction flag.
            m.direction = inverted(flag(XT_CONNTRACK_DIRECTION)) ? .reply : .original
        }
        return .conntrack(m)
    }

    /// xt_state revision 0 has its own UNTRACKED bit (1 << 6, where conntrack has SNAT), and no inversion flag:
    /// `! --state` stores the complement of the mask.
    private static func state(_ mask: UInt32) -> Match {
        let untracked: UInt32 = 1 << (UInt32(flag(IP_CT_NUMBER)) + 1)
        let valid: UInt32 = 0x0F | untracked
        let inverted = mask & ~valid != 0
        let bits = inverted ? ~mask & valid : mask
        var states = ConntrackStates(rawValue: bits & 0x0F)
        if bits & untracked != 0 { states.insert(.untracked) }
        return .state(StateMatch(states: states, inverted: inverted))
    }

    private static func addrtypeV0(_ payload: UnsafeRawBufferPointer) -> Match? {
        guard let a = info(xt_addrtype_info.self, payload) else { return nil }
        return .addrtype(AddrtypeMatch(sourceTypes: a.source == 0 ? nil : AddressTypes(rawValue: a.source),
                                       sourceInverted: a.invert_source != 0,
                                       destinationTypes: a.dest == 0 ? nil : AddressTypes(rawValue: a.dest),
                                       destinationInverted: a.invert_dest != 0))
    }

    private static func addrtypeV1(_ payload: UnsafeRawBufferPointer) -> Match? {
        guard let a = info(xt_addrtype_info_v1.self, payload) else { return nil }
        func isSet(_ f: UInt32) -> Bool { a.flags & f != 0 }
        return .addrtype(AddrtypeMatch(sourceTypes: a.source == 0 ? nil : AddressTypes(rawValue: a.source),
                                       sourceInverted: isSet(flag(XT_ADDRTYPE_INVERT_SOURCE)),
                                       destinationTypes: a.dest == 0 ? nil : AddressTypes(rawValue: a.dest),
                                       destinationInverted: isSet(flag(XT_ADDRTYPE_INVERT_DEST)),
                                       limitInterfaceIn: isSet(flag(XT_ADDRTYPE_LIMIT_IFACE_IN)),
                                       limitInterfaceOut: isSet(flag(XT_ADDRTYPE_LIMIT_IFACE_OUT))))
    }

    private static func statistic(_ payload: UnsafeRawBufferPointer) -> Match? {
        guard let s = info(xt_statistic_info.self, payload) else { return nil }
        let inverted = s.flags & UInt16(flag(XT_STATISTIC_INVERT)) != 0
        switch UInt32(s.mode) {
        case flag(XT_STATISTIC_MODE_RANDOM):
            return .statistic(StatisticMatch(mode: .random(probability: s.u.random.probability), inverted: inverted))
        case flag(XT_STATISTIC_MODE_NTH):
            // libxt_statistic stores `--every N` as N - 1 so the kernel's fast path saves a decrement.
            guard s.u.nth.every < UInt32.max else { return nil }
            return .statistic(StatisticMatch(mode: .nth(every: s.u.nth.every + 1, packet: s.u.nth.packet), inverted: inverted))
        default:
            return nil
        }
    }

    private static func setBase(_ s: xt_set_info, setName: (UInt16) -> String?) -> SetMatch? {
        guard s.dim <= UInt8(flag(IPSET_DIM_MAX)) else { return nil }
        let directions: [SetMatch.Direction] = (0..<Int(s.dim)).map { i in
            s.flags & UInt8(1 << (i + 1)) != 0 ? .source : .destination
        }
        return SetMatch(name: setName(s.index) ?? "#\(s.index)", directions: directions,
                        inverted: s.flags & UInt8(flag(IPSET_INV_MATCH)) != 0)
    }

    private static func setV1(_ payload: UnsafeRawBufferPointer, returnNoMatchFlag: Bool, setName: (UInt16) -> String?) -> Match? {
        guard let s = info(xt_set_info_match_v1.self, payload), var m = setBase(s.match_set, setName: setName) else { return nil }
        // Revision 2 keeps --return-nomatch in the per-dimension flags byte.
        if returnNoMatchFlag { m.returnNoMatch = s.match_set.flags & UInt8(truncatingIfNeeded: flag(IPSET_RETURN_NOMATCH)) != 0 }
        return .set(m)
    }

    private static func setFlags(_ m: inout SetMatch, _ flags: UInt32) {
        m.returnNoMatch = flags & flag(IPSET_FLAG_RETURN_NOMATCH) != 0
        m.updateCounters = flags & flag(IPSET_FLAG_SKIP_COUNTER_UPDATE) == 0
        m.updateSubcounters = flags & flag(IPSET_FLAG_SKIP_SUBCOUNTER_UPDATE) == 0
    }

    /// `--packets-gt 5`, `! --bytes-eq 0`: the counter conditions as libxt_set prints them.
    private static func counterCondition(_ op: UInt8, _ value: UInt64, _ what: String) -> [String]? {
        switch UInt32(op) {
        case flag(IPSET_COUNTER_NONE): []
        case flag(IPSET_COUNTER_EQ): ["--\(what)-eq \(value)"]
        case flag(IPSET_COUNTER_NE): ["! --\(what)-eq \(value)"]
        case flag(IPSET_COUNTER_LT): ["--\(what)-lt \(value)"]
        case flag(IPSET_COUNTER_GT): ["--\(what)-gt \(value)"]
        default: nil
        }
    }

    private static func setV3(_ payload: UnsafeRawBufferPointer, setName: (UInt16) -> String?) -> Match? {
        guard let s = info(xt_set_info_match_v3.self, payload), var m = setBase(s.match_set, setName: setName),
              let packets = counterCondition(s.packets.op, s.packets.value, "packets"),
              let bytes = counterCondition(s.bytes.op, s.bytes.value, "bytes") else { return nil }
        setFlags(&m, s.flags)
        m.counterConditions = packets + bytes
        return .set(m)
    }

    private static func setV4(_ payload: UnsafeRawBufferPointer, setName: (UInt16) -> String?) -> Match? {
        guard let s = info(xt_set_info_match_v4.self, payload), var m = setBase(s.match_set, setName: setName),
              let packets = counterCondition(s.packets.op, s.packets.value, "packets"),
              let bytes = counterCondition(s.bytes.op, s.bytes.value, "bytes") else { return nil }
        setFlags(&m, s.flags)
        m.counterConditions = packets + bytes
        return .set(m)
    }

    private static func socket(_ payload: UnsafeRawBufferPointer) -> Match? {
        guard let s = info(xt_socket_mtinfo3.self, payload) else { return nil }
        let known = UInt8(flag(XT_SOCKET_TRANSPARENT) | flag(XT_SOCKET_NOWILDCARD) | flag(XT_SOCKET_RESTORESKMARK))
        guard s.flags & ~known == 0 else { return nil }
        return .socket(SocketMatch(transparent: s.flags & UInt8(flag(XT_SOCKET_TRANSPARENT)) != 0,
                                   noWildcard: s.flags & UInt8(flag(XT_SOCKET_NOWILDCARD)) != 0,
                                   restoreSocketMark: s.flags & UInt8(flag(XT_SOCKET_RESTORESKMARK)) != 0))
    }

    // MARK: Targets

    /// Decodes a target extension by (name, revision); anything unknown or malformed becomes `.unrecognized`.
    /// `decodeTarget` over a payload held in an array (hand-built payloads in tests).
    static func decodeTarget(name: String, revision: UInt8, payload: [UInt8], family: Family) -> Target {
        payload.withUnsafeBytes { decodeTarget(name: name, revision: revision, payload: $0, family: family) }
    }

    static func decodeTarget(name: String, revision: UInt8, payload: UnsafeRawBufferPointer, family: Family) -> Target {
        let decoded: Target? = switch (name, revision, family) {
        case ("REDIRECT", 0, .ipv4): compatRange(payload).flatMap { portRewrite($0) }.map { .redirect($0) }
        case ("REDIRECT", 0, .ipv6): natRange(payload, family).flatMap { portRewrite($0) }.map { .redirect($0) }
        case ("MASQUERADE", 0, .ipv4): compatRange(payload).flatMap { portRewrite($0) }.map { .masquerade($0) }
        case ("MASQUERADE", 0, .ipv6): natRange(payload, family).flatMap { portRewrite($0) }.map { .masquerade($0) }
        case ("DNAT", 0, .ipv4): compatRange(payload).flatMap { nat($0) }.map { .dnat($0) }
        case ("SNAT", 0, .ipv4): compatRange(payload).flatMap { nat($0) }.map { .snat($0) }
        case ("DNAT", 1, _): natRange(payload, family).flatMap { nat($0) }.map { .dnat($0) }
        case ("SNAT", 1, _): natRange(payload, family).flatMap { nat($0) }.map { .snat($0) }
        case ("DNAT", 2, _): natRange2(payload, family).flatMap { nat($0) }.map { .dnat($0) }
        case ("SNAT", 2, _): natRange2(payload, family).flatMap { nat($0) }.map { .snat($0) }
        case ("MARK", 2, _): info(xt_mark_tginfo2.self, payload).map { .mark(MarkTarget(value: $0.mark, mask: $0.mask)) }
        case ("CONNMARK", 1, _): info(xt_connmark_tginfo1.self, payload).flatMap { connmark(mode: $0.mode, $0.ctmark, $0.ctmask, $0.nfmask) }
        case ("CONNMARK", 2, _): info(xt_connmark_tginfo2.self, payload).flatMap { c in
            connmark(mode: c.mode, c.ctmark, c.ctmask, c.nfmask, shiftLeft: c.shift_dir == UInt8(flag(D_SHIFT_LEFT)), shiftBits: c.shift_bits) }
        case ("TPROXY", 0, .ipv4): info(xt_tproxy_target_info.self, payload).map { t in
            .tproxy(TProxyTarget(port: UInt16(bigEndian: t.lport), address: ipv4(t.laddr), markValue: t.mark_value, markMask: t.mark_mask)) }
        case ("TPROXY", 1, _): info(xt_tproxy_target_info_v1.self, payload).map { t in
            .tproxy(TProxyTarget(port: UInt16(bigEndian: t.lport), address: inetAddress(t.laddr, family), markValue: t.mark_value, markMask: t.mark_mask)) }
        case ("CT", 0, _): info(xt_ct_target_info.self, payload).flatMap { c in
            ct(flags: c.flags, zone: c.zone, connectionEvents: c.ct_events, expectationEvents: c.exp_events,
               helper: withUnsafeBytes(of: c.helper) { cString($0) }, timeout: "") }
        case ("CT", 1, _), ("CT", 2, _): info(xt_ct_target_info_v1.self, payload).flatMap { c in
            ct(flags: c.flags, zone: c.zone, connectionEvents: c.ct_events, expectationEvents: c.exp_events,
               helper: withUnsafeBytes(of: c.helper) { cString($0) }, timeout: withUnsafeBytes(of: c.timeout) { cString($0) }) }
        case ("LOG", 0, _): info(xt_log_info.self, payload).map { l in
            .log(LogTarget(prefix: withUnsafeBytes(of: l.prefix) { cString($0) }, level: l.level, flags: l.logflags)) }
        case ("NFLOG", 0, _): info(xt_nflog_info.self, payload).map { n in
            .nflog(NFLogTarget(group: n.group, prefix: withUnsafeBytes(of: n.prefix) { cString($0) }, length: n.len,
                               sizeSet: n.flags & UInt16(XT_NFLOG_F_COPY_LEN) != 0, threshold: n.threshold)) }
        case ("REJECT", 0, .ipv4): info(ipt_reject_info.self, payload).flatMap { rejectIPv4[Int($0.with.rawValue)] }.map { .reject(RejectTarget(with: $0)) }
        case ("REJECT", 0, .ipv6): info(ip6t_reject_info.self, payload).flatMap { rejectIPv6[Int($0.with)] }.map { .reject(RejectTarget(with: $0)) }
        default: nil
        }
        return decoded ?? .unrecognized(UnrecognizedExtension(name: name, revision: revision, payload: Array(payload)))
    }

    /// One NAT range, ports already in host order (the kernel keeps NAT ports in network order).
    private struct NATFields {
        var flags: UInt32
        var minAddress: IPAddress
        var maxAddress: IPAddress
        var minPort: UInt16
        var maxPort: UInt16
        var basePort: UInt16?
    }

    /// `NF_NAT_RANGE_MASK`, which Swift cannot import (it is an expression of other macros).
    private static let natKnownFlags = UInt32(NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED | NF_NAT_RANGE_PROTO_RANDOM
        | NF_NAT_RANGE_PERSISTENT | NF_NAT_RANGE_PROTO_RANDOM_FULLY | NF_NAT_RANGE_PROTO_OFFSET | NF_NAT_RANGE_NETMAP)

    /// `nf_nat_ipv4_multi_range_compat`, IPv4 revision 0 of SNAT/DNAT/REDIRECT/MASQUERADE: exactly one range.
    private static func compatRange(_ payload: UnsafeRawBufferPointer) -> NATFields? {
        guard let mr = info(nf_nat_ipv4_multi_range_compat.self, payload), mr.rangesize == 1 else { return nil }
        let r = mr.range
        return NATFields(flags: r.flags, minAddress: ipv4(r.min_ip), maxAddress: ipv4(r.max_ip),
                         minPort: UInt16(bigEndian: r.min.all), maxPort: UInt16(bigEndian: r.max.all))
    }

    private static func natRange(_ payload: UnsafeRawBufferPointer, _ family: Family) -> NATFields? {
        guard let r = info(nf_nat_range.self, payload) else { return nil }
        return NATFields(flags: r.flags, minAddress: inetAddress(r.min_addr, family), maxAddress: inetAddress(r.max_addr, family),
                         minPort: UInt16(bigEndian: r.min_proto.all), maxPort: UInt16(bigEndian: r.max_proto.all))
    }

    private static func natRange2(_ payload: UnsafeRawBufferPointer, _ family: Family) -> NATFields? {
        guard let r = info(nf_nat_range2.self, payload) else { return nil }
        return NATFields(flags: r.flags, minAddress: inetAddress(r.min_addr, family), maxAddress: inetAddress(r.max_addr, family),
                         minPort: UInt16(bigEndian: r.min_proto.all), maxPort: UInt16(bigEndian: r.max_proto.all),
                         basePort: UInt16(bigEndian: r.base_proto.all))
    }

    private static func nat(_ f: NATFields) -> NATTarget? {
        guard f.flags & ~natKnownFlags == 0, f.flags & UInt32(NF_NAT_RANGE_NETMAP) == 0 else { return nil }
        let mapIPs = f.flags & UInt32(NF_NAT_RANGE_MAP_IPS) != 0
        let portsGiven = f.flags & UInt32(NF_NAT_RANGE_PROTO_SPECIFIED) != 0
        var range: NATRange?
        if mapIPs || portsGiven {
            var ports: ClosedRange<UInt16>?
            if portsGiven {
                guard let r = closedRange(f.minPort, f.maxPort) else { return nil }
                ports = r
            }
            let offset = f.flags & UInt32(NF_NAT_RANGE_PROTO_OFFSET) != 0
            range = NATRange(minAddress: mapIPs ? f.minAddress : nil, maxAddress: mapIPs ? f.maxAddress : nil,
                             ports: ports, basePort: offset ? f.basePort : nil)
        }
        return NATTarget(range: range, random: f.flags & UInt32(NF_NAT_RANGE_PROTO_RANDOM) != 0,
                         randomFully: f.flags & UInt32(NF_NAT_RANGE_PROTO_RANDOM_FULLY) != 0,
                         persistent: f.flags & UInt32(NF_NAT_RANGE_PERSISTENT) != 0)
    }

    /// REDIRECT and MASQUERADE only take ports and the random flags; anything else does not fit the model.
    private static func portRewrite(_ f: NATFields) -> PortRewriteTarget? {
        let allowed = UInt32(NF_NAT_RANGE_PROTO_SPECIFIED | NF_NAT_RANGE_PROTO_RANDOM | NF_NAT_RANGE_PROTO_RANDOM_FULLY)
        guard f.flags & ~allowed == 0 else { return nil }
        var ports: ClosedRange<UInt16>?
        if f.flags & UInt32(NF_NAT_RANGE_PROTO_SPECIFIED) != 0 {
            guard let r = closedRange(f.minPort, f.maxPort) else { return nil }
            ports = r
        }
        return PortRewriteTarget(ports: ports, random: f.flags & UInt32(NF_NAT_RANGE_PROTO_RANDOM) != 0,
                                 randomFully: f.flags & UInt32(NF_NAT_RANGE_PROTO_RANDOM_FULLY) != 0)
    }

    private static func connmark(mode: UInt8, _ ctmark: UInt32, _ ctmask: UInt32, _ nfmask: UInt32,
                                 shiftLeft: Bool = false, shiftBits: UInt8 = 0) -> Target? {
        let m: ConnmarkTarget.Mode
        switch UInt32(mode) {
        case flag(XT_CONNMARK_SET): m = .set(value: ctmark, mask: ctmask)
        case flag(XT_CONNMARK_SAVE): m = .save(nfmask: nfmask, ctmask: ctmask)
        case flag(XT_CONNMARK_RESTORE): m = .restore(nfmask: nfmask, ctmask: ctmask)
        default: return nil
        }
        // Without a shift its direction means nothing; normalise so text and kernel reads compare equal.
        return .connmark(ConnmarkTarget(mode: m, shiftLeft: shiftBits != 0 && shiftLeft, shiftBits: shiftBits))
    }

    private static func ct(flags: UInt16, zone: UInt16, connectionEvents: UInt32, expectationEvents: UInt32,
                           helper: String, timeout: String) -> Target? {
        let notrack = UInt16(flag(XT_CT_NOTRACK)), alias = UInt16(flag(XT_CT_NOTRACK_ALIAS))
        let orig = UInt16(flag(XT_CT_ZONE_DIR_ORIG)), reply = UInt16(flag(XT_CT_ZONE_DIR_REPL))
        // `--zone mark` (XT_CT_ZONE_MARK) has no place in the model.
        guard flags & ~(notrack | alias | orig | reply) == 0 else { return nil }
        if flags & alias != 0 { return .ct(CTTarget(notrack: true, notrackAlias: true)) }
        let direction = flags & (orig | reply)
        // iptables prints no zone at all for zone 0, whatever its direction.
        return .ct(CTTarget(notrack: flags & notrack != 0, helper: helper.isEmpty ? nil : helper,
                            timeout: timeout.isEmpty ? nil : timeout,
                            connectionEvents: connectionEvents, expectationEvents: expectationEvents, zone: zone,
                            zoneOriginalOnly: zone != 0 && direction == orig, zoneReplyOnly: zone != 0 && direction == reply))
    }

    /// `--reject-with` names by `ipt_reject_with`, as libipt_REJECT prints them (echo-reply is obsolete).
    private static let rejectIPv4: [Int: String] = [
        Int(flag(IPT_ICMP_NET_UNREACHABLE)): "icmp-net-unreachable",
        Int(flag(IPT_ICMP_HOST_UNREACHABLE)): "icmp-host-unreachable",
        Int(flag(IPT_ICMP_PROT_UNREACHABLE)): "icmp-proto-unreachable",
        Int(flag(IPT_ICMP_PORT_UNREACHABLE)): "icmp-port-unreachable",
        Int(flag(IPT_ICMP_NET_PROHIBITED)): "icmp-net-prohibited",
        Int(flag(IPT_ICMP_HOST_PROHIBITED)): "icmp-host-prohibited",
        Int(flag(IPT_TCP_RESET)): "tcp-reset",
        Int(flag(IPT_ICMP_ADMIN_PROHIBITED)): "icmp-admin-prohibited",
    ]

    /// `--reject-with` names by `ip6t_reject_with`, as libip6t_REJECT prints them.
    private static let rejectIPv6: [Int: String] = [
        Int(flag(IP6T_ICMP6_NO_ROUTE)): "icmp6-no-route",
        Int(flag(IP6T_ICMP6_ADM_PROHIBITED)): "icmp6-adm-prohibited",
        Int(flag(IP6T_ICMP6_ADDR_UNREACH)): "icmp6-addr-unreachable",
        Int(flag(IP6T_ICMP6_PORT_UNREACH)): "icmp6-port-unreachable",
        Int(flag(IP6T_TCP_RESET)): "tcp-reset",
        Int(flag(IP6T_ICMP6_POLICY_FAIL)): "icmp6-policy-fail",
        Int(flag(IP6T_ICMP6_REJECT_ROUTE)): "icmp6-reject-route",
    ]

    // MARK: Bytes

    /// A payload as the kernel struct `T`, when its size is exactly `XT_ALIGN(sizeof(T))`.
    private static func info<T>(_ type: T.Type, _ payload: UnsafeRawBufferPointer) -> T? {
        guard payload.count == xtAlign(MemoryLayout<T>.size) else { return nil }
        return load(T.self, payload, at: 0)
    }

    /// Copies bytes into suitably aligned storage and reads a kernel struct from them (zero-filled past the end).
    /// Only for the plain C structs of the x_tables ABI, which have no references and no invariants.
    private static func load<T>(_ type: T.Type, _ bytes: UnsafeRawBufferPointer, at offset: Int) -> T {
        withUnsafeTemporaryAllocation(byteCount: MemoryLayout<T>.size, alignment: MemoryLayout<T>.alignment) { storage in
            let available = max(0, min(storage.count, bytes.count - offset))
            if available < storage.count { storage.initializeMemory(as: UInt8.self, repeating: 0) }
            if available > 0 { storage.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + available)])) }
            return UnsafeRawBufferPointer(storage).load(as: T.self)
        }
    }

    private static func xtAlign(_ size: Int) -> Int { (size + 7) & ~7 }
}

// MARK: - Small conversions

/// `in_addr.s_addr` and friends hold the address in network order.
private func ipv4(_ networkOrder: UInt32) -> IPAddress { IPAddress(ipv4: UInt32(bigEndian: networkOrder)) }

private func ipv6(_ address: in6_addr) -> IPAddress {
    withUnsafeBytes(of: address) { IPAddress(family: .ipv6, value: bigEndianValue($0)) }
}

/// `union nf_inet_addr`: the first 4 bytes for IPv4, all 16 for IPv6, network order.
private func inetAddress(_ address: nf_inet_addr, _ family: Family) -> IPAddress {
    withUnsafeBytes(of: address) { raw in
        family == .ipv4 ? IPAddress(family: .ipv4, value: bigEndianValue(UnsafeRawBufferPointer(rebasing: raw[0..<4])))
            : IPAddress(family: .ipv6, value: bigEndianValue(UnsafeRawBufferPointer(rebasing: raw[0..<16])))
    }
}

private func bigEndianValue(_ bytes: UnsafeRawBufferPointer) -> UInt128 {
    bytes.reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
}

/// A NUL-terminated name from a fixed-size C array.
private func cString(_ bytes: UnsafeRawBufferPointer) -> String {
    guard let start = bytes.baseAddress else { return "" }
    let end = memchr(start, 0, bytes.count).map { $0 - UnsafeMutableRawPointer(mutating: start) } ?? bytes.count
    return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[..<end]), as: UTF8.self)
}

/// The names the decoder dispatches on, each packed into two words (NUL-padded, first byte lowest) beside its
/// literal: a large table has 30,000 matches and targets, and a known name then costs a few compares instead of
/// a String built and validated. A name the switches know but this list lacks is still decoded, only slower.
private let knownExtensionNames: [(low: UInt64, high: UInt64, name: String)] = [
    "comment", "tcp", "udp", "statistic", "mark", "owner", "multiport", "connmark", "conntrack", "state",
    "addrtype", "set", "socket", "mac",
    "DNAT", "MARK", "REDIRECT", "SNAT", "MASQUERADE", "CONNMARK", "TPROXY", "CT", "LOG", "NFLOG", "REJECT",
].map { name in
    var text = name
    let (low, high) = text.withUTF8 { packedName(UnsafeRawBufferPointer($0)) }!
    return (low, high, name)
}

/// A name of at most 16 bytes up to its NUL, packed as `knownExtensionNames` keeps them; nil for a longer one.
/// Word-wise: the kernel's name arrays are 29 bytes, and the first NUL is found with the zero-byte trick.
private func packedName(_ bytes: UnsafeRawBufferPointer) -> (UInt64, UInt64)? {
    guard bytes.count > 16, let base = bytes.baseAddress else {
        var padded = (UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &padded) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes.prefix(17))) }
        return withUnsafeBytes(of: padded) { packedName($0) }
    }
    let low = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
    let high = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    if let n = firstZeroByte(low) { return (low & lowBytes(n), 0) }
    if let n = firstZeroByte(high) { return (low, high & lowBytes(n)) }
    return bytes[16] == 0 ? (low, high) : nil
}

/// The index of the first (lowest) zero byte of a little-endian word.
private func firstZeroByte(_ v: UInt64) -> Int? {
    let found = (v &- 0x0101_0101_0101_0101) & ~v & 0x8080_8080_8080_8080
    return found == 0 ? nil : found.trailingZeroBitCount / 8
}

/// A mask of the lowest `n` bytes (n < 8).
private func lowBytes(_ n: Int) -> UInt64 { (UInt64(1) << UInt64(8 * n)) &- 1 }

/// A match's or target's name from its fixed-size C array: the literal when the decoder knows it.
private func extensionName(_ bytes: UnsafeRawBufferPointer) -> String {
    if let (low, high) = packedName(bytes) {
        for known in knownExtensionNames where known.low == low && known.high == high { return known.name }
    }
    return cString(bytes)
}

/// `lo...hi`, or nil when the kernel data has them backwards (a ClosedRange would trap).
private func closedRange<T: Comparable>(_ low: T, _ high: T) -> ClosedRange<T>? {
    low <= high ? low...high : nil
}

/// Kernel flag constants arrive as Int (anonymous enums), Int32 (macros) or named enums; compare them as UInt32.
private func flag(_ value: Int) -> UInt32 { UInt32(truncatingIfNeeded: value) }
private func flag(_ value: Int32) -> UInt32 { UInt32(truncatingIfNeeded: value) }
private func flag<E: RawRepresentable>(_ value: E) -> UInt32 where E.RawValue: BinaryInteger {
    UInt32(truncatingIfNeeded: value.rawValue)
}
