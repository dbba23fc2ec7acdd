import NetfilterModel

/// The text `iptables -L -n` prints for a rule's matches and target (the extension's `print` callback in
/// iptables 1.8.9's `extensions/libxt_*.c`, numeric mode), so `show --format list` reads the way users know it.
///
/// Each piece starts with a space, as the extensions print it. Matches and targets iptaudit does not decode print
/// as their name and saved options: iptables' own text for them is not known here.
enum ListingText {
    static func match(_ match: Match, family: Family) -> String {
        switch match {
        case .tcp(let t):
            var s = " tcp" + ports("spt", t.sourcePort) + ports("dpt", t.destinationPort)
            if let o = t.option, o.kind != 0 || o.inverted { s += " option=" + (o.inverted ? "!" : "") + "\(o.kind)" }
            if let f = t.flags, f.mask != 0 || f.inverted {
                s += " flags:" + (f.inverted ? "!" : "") + "0x" + hex2(f.mask) + "/0x" + hex2(f.compare)
            }
            return s
        case .udp(let u):
            return " udp" + ports("spt", u.sourcePort) + ports("dpt", u.destinationPort)
        case .multiport(let m):
            let side = switch m.direction {
            case .source: "sports "
            case .destination: "dports "
            case .either: "ports "
            }
            return " multiport " + side + (m.inverted ? " !" : "") + m.ports.map { portRange($0, ":") }.joined(separator: ",")
        case .owner(let o):
            var s = ""
            if let inv = o.socketExists { s += (inv ? " !" : "") + " owner socket exists" }
            if let u = o.uid { s += (u.inverted ? " !" : "") + " owner UID match " + idRange(u.range) }
            if let g = o.gid { s += (g.inverted ? " !" : "") + " owner GID match " + idRange(g.range) }
            if o.supplementaryGroups { s += " incl. suppl. groups" }
            return s
        case .mark(let m):
            return " mark match" + (m.inverted ? " !" : "") + markMask(m.value, m.mask)
        case .connmark(let m):
            return " connmark match " + (m.inverted ? "!" : "") + markMask(m.value, m.mask)
        case .conntrack(let c):
            return conntrack(c, family: family)
        case .state(let st):
            return (st.inverted ? " !" : "") + " state" + states(st.states)
        case .comment(let text):
            return " /* \(text) */"
        case .addrtype(let a):
            var s = " ADDRTYPE match"
            if let t = a.sourceTypes, t.rawValue != 0 { s += " src-type " + (a.sourceInverted ? "!" : "") + addressTypes(t) }
            if let t = a.destinationTypes, t.rawValue != 0 { s += " dst-type " + (a.destinationInverted ? "!" : "") + addressTypes(t) }
            if a.limitInterfaceIn { s += " limit-in" }
            if a.limitInterfaceOut { s += " limit-out" }
            return s
        case .statistic(let st):
            switch st.mode {
            case .random(let p):
                return " statistic mode random" + (st.inverted ? " !" : "") + " probability " + SaveSyntax.probabilityText(p)
            case .nth(let every, let packet):
                return " statistic mode nth" + (st.inverted ? " !" : "") + " every \(every)" + (packet != 0 ? " packet \(packet)" : "")
            }
        case .set(let m):
            var s = (m.inverted ? " !" : "") + " match-set \(m.name) " + m.directions.map(\.rawValue).joined(separator: ",")
            if m.returnNoMatch { s += " return-nomatch" }
            if !m.updateCounters { s += " ! update-counters" }
            if !m.updateSubcounters { s += " ! update-subcounters" }
            // Kept as saved (`[!] --packets-eq N`); the listing drops the dashes.
            for c in m.counterConditions {
                s += " " + c.split(separator: " ").map { $0.hasPrefix("--") ? $0.dropFirst(2) : $0 }.joined(separator: " ")
            }
            return s
        case .socket:
            // libxt_socket prints its saved options after the name.
            return " socket" + SaveSyntax.matchOptions(match, family: family)
        case .mac(let m):
            return " MAC " + (m.inverted ? "! " : "") + m.address.map { hex2($0, uppercase: false) }.joined(separator: ":")
        case .unrecognized(let u):
            return " \(u.name)" + SaveSyntax.matchOptions(match, family: family)
        }
    }

    static func target(_ target: Target, family: Family) -> String {
        switch target {
        case .continue, .accept, .drop, .queue, .return, .jump: return ""
        case .goto: return ""
        case .redirect(let r): return portRewrite(" redir ports ", r)
        case .masquerade(let r): return portRewrite(" masq ports: ", r)
        case .dnat(let n), .snat(let n):
            var s = ""
            if let r = n.range { s += " to:" + natRange(r, family: family) }
            if n.random { s += " random" }
            if n.randomFully { s += " random-fully" }
            if n.persistent { s += " persistent" }
            return s
        case .mark(let m): return " MARK" + markOperation(m.value, m.mask)
        case .connmark(let c):
            var s = " CONNMARK"
            switch c.mode {
            case .set(let v, let m): s += markOperation(v, m)
            case .save(let nf, let ct):
                s += nf == .max && ct == .max ? " save" : nf == ct ? " save mask \(hex(nf))" : " save nfmask \(hex(nf)) ctmask ~\(hex(ct))"
            case .restore(let nf, let ct):
                s += nf == .max && ct == .max ? " restore" : nf == ct ? " restore mask \(hex(ct))" : " restore ctmask \(hex(ct)) nfmask ~\(hex(nf))"
            }
            if c.shiftBits != 0 { s += (c.shiftLeft ? " left-shift-mark " : " right-shift-mark ") + "\(c.shiftBits)" }
            return s
        case .tproxy(let t):
            return " TPROXY redirect \(t.address):\(t.port) mark \(hex(t.markValue))/\(hex(t.markMask))"
        case .ct(let ct):
            if ct.notrackAlias { return " NOTRACK" }
            var s = " CT"
            if ct.notrack { s += " notrack" }
            if let h = ct.helper { s += " helper \(h)" }
            if let t = ct.timeout { s += " timeout \(t)" }
            if ct.connectionEvents != 0 { s += " ctevents " + events(ct.connectionEvents, CTTarget.connectionEventNames) }
            if ct.expectationEvents != 0 { s += " expevents " + events(ct.expectationEvents, CTTarget.expectationEventNames) }
            if ct.zone != 0 {
                s += " zone" + (ct.zoneOriginalOnly ? "-orig" : ct.zoneReplyOnly ? "-reply" : "") + " \(ct.zone)"
            }
            return s
        case .log(let l):
            return " LOG flags \(l.flags) level \(l.level)" + (l.prefix.isEmpty ? "" : " prefix \"\(l.prefix)\"")
        case .nflog(let n):
            var s = ""
            if !n.prefix.isEmpty { s += " nflog-prefix" + SaveSyntax.quoted(n.prefix) }
            if n.group != 0 { s += " nflog-group \(n.group)" }
            if n.sizeSet { s += " nflog-size \(n.length)" } else if n.length != 0 { s += " nflog-range \(n.length)" }
            if n.threshold != 0 { s += " nflog-threshold \(n.threshold)" }
            return s
        case .reject(let r): return " reject-with \(r.with)"
        case .unrecognized(let u): return (u.arguments ?? []).map { " " + $0 }.joined()
        }
    }

    /// An address as the source and destination columns print it: the prefix length only when it is not the
    /// whole address, a non-contiguous mask spelled out.
    static func address(_ a: AddressMatch) -> String {
        let bits = a.address.family.addressBits
        guard let length = a.mask.prefixLength else { return "\(a.address)/\(a.mask)" }
        return length == bits ? "\(a.address)" : "\(a.address)/\(length)"
    }

    // MARK: pieces

    /// libxt_tcp/udp `print_ports`: nothing for the whole range unless inverted.
    static func ports(_ name: String, _ p: PortMatch?) -> String {
        guard let p, !p.isFullRange || p.inverted else { return "" }
        let inv = p.inverted ? "!" : ""
        return p.range.lowerBound == p.range.upperBound
            ? " \(name):\(inv)\(p.range.lowerBound)"
            : " \(name)s:\(inv)\(p.range.lowerBound):\(p.range.upperBound)"
    }

    static func portRange(_ r: ClosedRange<UInt16>, _ separator: String) -> String {
        r.lowerBound == r.upperBound ? "\(r.lowerBound)" : "\(r.lowerBound)\(separator)\(r.upperBound)"
    }

    static func idRange(_ r: ClosedRange<UInt32>) -> String {
        r.lowerBound == r.upperBound ? "\(r.lowerBound)" : "\(r.lowerBound)-\(r.upperBound)"
    }

    static func hex(_ v: UInt32) -> String { "0x" + String(v, radix: 16) }

    /// `%02X`/`%02x` of a byte: tcp flags upper case, MAC addresses lower case.
    static func hex2(_ b: UInt8) -> String {
        let s = String(b, radix: 16, uppercase: true)
        return s.count == 1 ? "0" + s : s
    }

    static func hex2(_ b: UInt8, uppercase: Bool) -> String { uppercase ? hex2(b) : hex2(b).lowercased() }

    /// `xtables_print_mark_mask`: the mask only when it is not all ones.
    static func markMask(_ value: UInt32, _ mask: UInt32) -> String {
        mask == .max ? " \(hex(value))" : " \(hex(value))/\(hex(mask))"
    }

    /// MARK and CONNMARK's set: named for the operation the value and mask amount to.
    static func markOperation(_ value: UInt32, _ mask: UInt32) -> String {
        if value == 0 { return " and \(hex(~mask))" }
        if value == mask { return " or \(hex(value))" }
        if mask == 0 { return " xor \(hex(value))" }
        if mask == .max { return " set \(hex(value))" }
        return " xset \(hex(value))/\(hex(mask))"
    }

    static func events(_ bits: UInt32, _ names: [String]) -> String {
        names.enumerated().filter { bits & (1 << UInt32($0.offset)) != 0 }.map(\.element).joined(separator: ",")
    }

    static func states(_ s: ConntrackStates) -> String {
        let names = ConntrackStates.names.filter { s.contains($0.1) }.map(\.0)
        return names.isEmpty ? "" : " " + names.joined(separator: ",")
    }

    static func addressTypes(_ t: AddressTypes) -> String {
        AddressTypes.names.enumerated().filter { t.rawValue & (1 << $0.offset) != 0 }.map(\.element).joined(separator: ",")
    }

    static func portRewrite(_ label: String, _ r: PortRewriteTarget) -> String {
        var s = r.ports.map { label + portRange($0, "-") } ?? ""
        if r.random { s += " random" }
        if r.randomFully { s += " random-fully" }
        return s
    }

    /// libxt_NAT `sprint_range`: IPv6 addresses in brackets when ports follow.
    static func natRange(_ r: NATRange, family: Family) -> String {
        var s = ""
        let bracket = family == .ipv6 && r.ports != nil
        if let lo = r.minAddress {
            s += bracket ? "[\(lo)" : "\(lo)"
            if let hi = r.maxAddress, hi != lo { s += "-\(hi)" }
            if bracket { s += "]" }
        }
        if let p = r.ports {
            s += ":" + portRange(p, "-")
            if let base = r.basePort { s += "/\(base)" }
        }
        return s
    }

    static func conntrack(_ c: ConntrackMatch, family: Family) -> String {
        var s = ""
        func inv<V>(_ cond: ConntrackMatch.Condition<V>) -> String { cond.inverted ? " !" : "" }
        if let st = c.states { s += inv(st) + " ctstate" + states(st.value) }
        if let p = c.l4Protocol { s += inv(p) + " ctproto \(p.value)" }
        for (name, a) in [("ctorigsrc", c.originalSource), ("ctorigdst", c.originalDestination),
                          ("ctreplsrc", c.replySource), ("ctrepldst", c.replyDestination)] {
            guard let a else { continue }
            s += inv(a) + " \(name) " + address(a.value)
        }
        for (name, p) in [("ctorigsrcport", c.originalSourcePort), ("ctorigdstport", c.originalDestinationPort),
                          ("ctreplsrcport", c.replySourcePort), ("ctrepldstport", c.replyDestinationPort)] {
            guard let p else { continue }
            s += inv(p) + " \(name) " + portRange(p.value, ":")
        }
        if let st = c.status {
            let names = ConntrackStatus.names.filter { st.value.contains($0.1) }.map(\.0)
            s += inv(st) + " ctstatus " + (names.isEmpty ? "NONE" : names.joined(separator: ","))
        }
        if let e = c.expires {
            s += inv(e) + " ctexpire " + (e.value.lowerBound == e.value.upperBound ? "\(e.value.lowerBound)" : "\(e.value.lowerBound):\(e.value.upperBound)")
        }
        if let d = c.direction { s += " ctdir \(d.rawValue)" }
        return s
    }
}
