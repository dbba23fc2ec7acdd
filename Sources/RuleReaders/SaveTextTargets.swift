import NetfilterModel

/// Targets iptaudit decodes, by `-j` name. Chains and unknown targets are not here.
func makeTargetParser(_ name: String) -> (any TargetParser)? {
    switch name {
    case "ACCEPT": FixedTargetParser(target: .accept)
    case "DROP": FixedTargetParser(target: .drop)
    case "QUEUE": FixedTargetParser(target: .queue)
    case "RETURN": FixedTargetParser(target: .return)
    case "NOTRACK": FixedTargetParser(target: .ct(CTTarget(notrack: true, notrackAlias: true)), table: .raw)
    case "REDIRECT": PortRewriteTargetParser(masquerade: false)
    case "MASQUERADE": PortRewriteTargetParser(masquerade: true)
    case "DNAT": NATTargetParser(source: false)
    case "SNAT": NATTargetParser(source: true)
    case "MARK": MarkTargetParser()
    case "CONNMARK": ConnmarkTargetParser()
    case "TPROXY": TProxyTargetParser()
    case "CT": CTTargetParser()
    case "LOG": LogTargetParser()
    case "NFLOG": NFLogTargetParser()
    case "REJECT": RejectTargetParser()
    default: nil
    }
}

/// Names a user chain may not take because `-j NAME` would mean the extension.
let knownTargetNames: Set<String> = [
    "ACCEPT", "DROP", "QUEUE", "RETURN", "NOTRACK", "REDIRECT", "MASQUERADE", "DNAT", "SNAT", "MARK", "CONNMARK",
    "TPROXY", "CT", "LOG", "NFLOG", "REJECT",
]

/// Standard verdicts and `NOTRACK`: no options.
struct FixedTargetParser: TargetParser {
    let target: Target
    var table: TableName?
    let options: [OptionSpec] = []
    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {}
    func finish(context: RuleContext) throws(LineProblem) -> Target {
        if let table { try context.requireTable(table, for: target.name) }
        return target
    }
}

/// `PORT` or `PORT-PORT`, as REDIRECT and MASQUERADE take `--to-ports`.
func dashPortRange(_ text: some StringProtocol, option: String) throws(LineProblem) -> ClosedRange<UInt16> {
    if text.contains(":") { throw .expected("ports PORT[-PORT] (with a dash, not a colon)", after: option, got: String(text)) }
    let parts = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
    guard let lo = SaveTextValues.uint16(parts[0]), let hi = parts.count == 2 ? SaveTextValues.uint16(parts[1]) : lo else {
        throw .expected("ports PORT[-PORT] (0-65535)", after: option, got: String(text))
    }
    guard lo <= hi else { throw .expected("a port range LOW-HIGH with LOW <= HIGH", after: option, got: String(text)) }
    return lo...hi
}

struct PortRewriteTargetParser: TargetParser {
    let masquerade: Bool
    var target = PortRewriteTarget()
    var options: [OptionSpec] {
        [OptionSpec("to-ports"), OptionSpec("random", arguments: 0)]
            + (masquerade ? [OptionSpec("random-fully", arguments: 0)] : [])
    }

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        switch option.id {
        case "to-ports": target.ports = try dashPortRange(args[0], option: written)
        case "random": target.random = true
        default: target.randomFully = true
        }
    }

    func finish(context: RuleContext) throws(LineProblem) -> Target {
        let name = masquerade ? "MASQUERADE" : "REDIRECT"
        try context.requireTable(.nat, for: name)
        if target.ports != nil { try context.requirePortProtocol("\(name) --to-ports") }
        return masquerade ? .masquerade(target) : .redirect(target)
    }
}

struct NATTargetParser: TargetParser {
    let source: Bool
    var range: NATRange?
    var random = false
    var randomFully = false
    var persistent = false
    var option: String { source ? "to-source" : "to-destination" }
    var options: [OptionSpec] {
        [OptionSpec(option), OptionSpec("random", arguments: 0), OptionSpec("persistent", arguments: 0)]
            + (source ? [OptionSpec("random-fully", arguments: 0)] : [])
    }

    /// `[ADDR[-ADDR]][:PORT[-PORT][/BASE]]`; IPv6 addresses are bracketed when ports follow (`[ADDR]:PORT`).
    static func parseRange(_ text: String, option: String, context: RuleContext) throws(LineProblem) -> NATRange {
        let bad = LineProblem.expected("ADDR[-ADDR][:PORT[-PORT]]", after: option, got: text)
        var addressPart = Substring(text)
        var portPart: Substring?
        if context.family == .ipv6 || (context.guessing && text.hasPrefix("[")) {
            if text.hasPrefix(":"), !text.dropFirst().contains(":") {
                // `:PORT` alone: ports without an address.
                addressPart = ""
                portPart = text.dropFirst()
            } else if text.hasPrefix("[") {
                guard let close = text.firstIndex(of: "]") else { throw bad }
                addressPart = text[text.index(after: text.startIndex)..<close]
                let rest = text[text.index(after: close)...]
                if !rest.isEmpty {
                    guard rest.hasPrefix(":") else { throw bad }
                    portPart = rest.dropFirst()
                }
            }
        } else if let colon = text.firstIndex(of: ":") {
            addressPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
            // An unbracketed IPv6 address while the family is still a guess.
            if context.guessing, portPart?.contains(":") == true,
               let first = text.split(separator: "-").first, IPAddress(first) != nil {
                throw .ipv6Evidence
            }
        }
        var range = NATRange()
        if !addressPart.isEmpty {
            let ends = addressPart.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
            let lo = try context.address(ends[0], option: option)
            let hi = ends.count == 2 ? try context.address(ends[1], option: option) : lo
            range = NATRange(minAddress: lo, maxAddress: hi)
        } else if portPart == nil {
            throw bad
        }
        if let portPart {
            let baseSplit = portPart.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            range.ports = try dashPortRange(baseSplit[0], option: option)
            if baseSplit.count == 2 {
                guard let base = SaveTextValues.uint16(baseSplit[1]) else { throw bad }
                range.basePort = base
            }
        }
        return range
    }

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        switch option.id {
        case "random": random = true
        case "random-fully": randomFully = true
        case "persistent": persistent = true
        default: range = try Self.parseRange(args[0], option: written, context: context)
        }
    }

    func finish(context: RuleContext) throws(LineProblem) -> Target {
        let name = source ? "SNAT" : "DNAT"
        try context.requireTable(.nat, for: name)
        guard let range else { throw LineProblem("\(name) needs --\(option)") }
        if range.ports != nil { try context.requirePortProtocol("\(name) with ports") }
        let t = NATTarget(range: range, random: random, randomFully: randomFully, persistent: persistent)
        return source ? .snat(t) : .dnat(t)
    }
}

/// MARK (revision 2): every variant becomes `--set-xmark value/mask`, i.e. `mark = (mark & ~mask) ^ value`.
struct MarkTargetParser: TargetParser {
    var target: MarkTarget?
    let options = [
        OptionSpec("set-xmark", group: "mode"), OptionSpec("set-mark", group: "mode"), OptionSpec("and-mark", group: "mode"),
        OptionSpec("or-mark", group: "mode"), OptionSpec("xor-mark", group: "mode"),
    ]

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        let arg = args[0]
        switch option.id {
        case "set-xmark":
            let (v, m) = try SaveTextValues.markAndMask(arg, option: written)
            target = MarkTarget(value: v, mask: m)
        case "set-mark":
            let (v, m) = try SaveTextValues.markAndMask(arg, option: written)
            target = MarkTarget(value: v, mask: m | v)
        case "and-mark": target = MarkTarget(value: 0, mask: ~(try SaveTextValues.mark(arg, option: written)))
        case "or-mark":
            let v = try SaveTextValues.mark(arg, option: written)
            target = MarkTarget(value: v, mask: v)
        default: target = MarkTarget(value: try SaveTextValues.mark(arg, option: written), mask: 0)
        }
    }

    func finish(context: RuleContext) throws(LineProblem) -> Target {
        guard let target else { throw LineProblem("MARK needs --set-xmark, --set-mark, --and-mark, --or-mark or --xor-mark") }
        return .mark(target)
    }
}

/// CONNMARK (revisions 1 and 2). Masks default to all ones, and later options change what earlier ones set,
/// as in libxt_CONNMARK (`--set-xmark 1 --ctmask 0xf` is `--set-xmark 0x1/0xf`).
struct ConnmarkTargetParser: TargetParser {
    enum Mode { case set, save, restore }
    var mode: Mode?
    var ctmark: UInt32 = 0
    var ctmask: UInt32 = 0xFFFF_FFFF
    var nfmask: UInt32 = 0xFFFF_FFFF
    var shiftLeft = false
    var shiftBits: UInt8 = 0
    let options = [
        OptionSpec("set-xmark", group: "mode"), OptionSpec("set-mark", group: "mode"), OptionSpec("and-mark", group: "mode"),
        OptionSpec("or-mark", group: "mode"), OptionSpec("xor-mark", group: "mode"),
        OptionSpec("save-mark", group: "mode", arguments: 0), OptionSpec("restore-mark", group: "mode", arguments: 0),
        OptionSpec("mask"), OptionSpec("nfmask"), OptionSpec("ctmask"),
        OptionSpec("left-shift-mark", group: "shift"), OptionSpec("right-shift-mark", group: "shift"),
    ]

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        switch option.id {
        case "set-xmark":
            (ctmark, ctmask) = try SaveTextValues.markAndMask(args[0], option: written)
            mode = .set
        case "set-mark":
            let (v, m) = try SaveTextValues.markAndMask(args[0], option: written)
            (ctmark, ctmask) = (v, v | m)
            mode = .set
        case "and-mark":
            (ctmark, ctmask) = (0, ~(try SaveTextValues.mark(args[0], option: written)))
            mode = .set
        case "or-mark":
            let v = try SaveTextValues.mark(args[0], option: written)
            (ctmark, ctmask) = (v, v)
            mode = .set
        case "xor-mark":
            (ctmark, ctmask) = (try SaveTextValues.mark(args[0], option: written), 0)
            mode = .set
        case "save-mark": mode = .save
        case "restore-mark": mode = .restore
        case "mask":
            let m = try SaveTextValues.mark(args[0], option: written)
            (nfmask, ctmask) = (m, m)
        case "nfmask": nfmask = try SaveTextValues.mark(args[0], option: written)
        case "ctmask": ctmask = try SaveTextValues.mark(args[0], option: written)
        default:
            guard let bits = SaveTextValues.number(args[0], max: 31) else {
                throw .expected("a shift of 0 to 31 bits", after: written, got: args[0])
            }
            shiftBits = UInt8(bits)
            shiftLeft = option.id == "left-shift-mark"
        }
    }

    func finish(context: RuleContext) throws(LineProblem) -> Target {
        let m: ConnmarkTarget.Mode
        switch mode {
        case .set: m = .set(value: ctmark, mask: ctmask)
        case .save: m = .save(nfmask: nfmask, ctmask: ctmask)
        case .restore: m = .restore(nfmask: nfmask, ctmask: ctmask)
        case nil:
            throw LineProblem("CONNMARK needs --set-xmark, --set-mark, --and-mark, --or-mark, --xor-mark, --save-mark or --restore-mark")
        }
        return .connmark(ConnmarkTarget(mode: m, shiftLeft: shiftLeft, shiftBits: shiftBits))
    }
}

struct TProxyTargetParser: TargetParser {
    var port: UInt16?
    var address: IPAddress?
    var mark: (UInt32, UInt32) = (0, 0)
    let options = [OptionSpec("on-port"), OptionSpec("on-ip"), OptionSpec("tproxy-mark")]

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        switch option.id {
        case "on-port": port = try SaveTextValues.port(args[0], option: written)
        case "on-ip": address = try context.address(args[0], option: written)
        default: mark = try SaveTextValues.markAndMask(args[0], option: written)
        }
    }

    func finish(context: RuleContext) throws(LineProblem) -> Target {
        try context.requireTable(.mangle, for: "TPROXY")
        try context.requireProtocol([6, 17], for: "TPROXY", spelled: "-p tcp or -p udp")
        guard let port else { throw LineProblem("TPROXY needs --on-port") }
        return .tproxy(TProxyTarget(port: port, address: address ?? .zero(context.family), markValue: mark.0, markMask: mark.1))
    }
}

struct CTTargetParser: TargetParser {
    var target = CTTarget()
    let options = [
        OptionSpec("notrack", arguments: 0), OptionSpec("helper"), OptionSpec("timeout"), OptionSpec("ctevents"),
        OptionSpec("expevents"), OptionSpec("zone-orig", group: "zone"), OptionSpec("zone-reply", group: "zone"),
        OptionSpec("zone", group: "zone"),
    ]

    static func events(_ text: String, names: [String], option: String) throws(LineProblem) -> UInt32 {
        let bits = try commaList(text, what: "event names (\(names.joined(separator: ",")))", option: option) {
            (e: String) throws(LineProblem) -> UInt32 in
            guard let i = names.firstIndex(of: e) else {
                throw .expected("event names (\(names.joined(separator: ",")))", after: option, got: text)
            }
            return 1 << UInt32(i)
        }
        return bits.reduce(0, |)
    }

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        switch option.id {
        case "notrack": target.notrack = true
        case "helper":
            guard !args[0].isEmpty, args[0].utf8.count <= 15 else {
                throw .expected("a helper name of 1 to 15 bytes", after: written, got: args[0])
            }
            target.helper = args[0]
        case "timeout":
            guard !args[0].isEmpty, args[0].utf8.count <= 31 else {
                throw .expected("a timeout policy name of 1 to 31 bytes", after: written, got: args[0])
            }
            target.timeout = args[0]
        case "ctevents": target.connectionEvents = try Self.events(args[0], names: CTTarget.connectionEventNames, option: written)
        case "expevents": target.expectationEvents = try Self.events(args[0], names: CTTarget.expectationEventNames, option: written)
        default:
            guard let zone = SaveTextValues.uint16(args[0]) else {
                // `--zone mark` (zone taken from the packet mark) has no place in the model.
                throw .expected("a zone number (0-65535; zones from the mark are not supported)", after: written, got: args[0])
            }
            target.zone = zone
            target.zoneOriginalOnly = option.id == "zone-orig"
            target.zoneReplyOnly = option.id == "zone-reply"
        }
    }

    func finish(context: RuleContext) throws(LineProblem) -> Target {
        try context.requireTable(.raw, for: "CT")
        return .ct(target)
    }
}

struct LogTargetParser: TargetParser {
    var target = LogTarget()
    let options = [
        OptionSpec("log-level"), OptionSpec("log-prefix"), OptionSpec("log-tcp-sequence", arguments: 0),
        OptionSpec("log-tcp-options", arguments: 0), OptionSpec("log-ip-options", arguments: 0),
        OptionSpec("log-uid", arguments: 0), OptionSpec("log-macdecode", arguments: 0),
    ]
    static let levels: [String: UInt8] = [
        "alert": 1, "crit": 2, "debug": 7, "emerg": 0, "error": 3, "info": 6, "notice": 5, "panic": 0, "warning": 4,
    ]

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        switch option.id {
        case "log-level":
            if let n = SaveTextValues.number(args[0], max: 7) {
                target.level = UInt8(n)
            } else if let n = Self.levels[args[0]] {
                target.level = n
            } else {
                throw .expected("a log level (0-7 or emerg, alert, crit, error, warning, notice, info, debug)",
                                after: written, got: args[0])
            }
        case "log-prefix":
            target.prefix = try prefix(args[0], option: written, limit: 29)
        case "log-tcp-sequence": target.flags |= 0x01
        case "log-tcp-options": target.flags |= 0x02
        case "log-ip-options": target.flags |= 0x04
        case "log-uid": target.flags |= 0x08
        default: target.flags |= 0x20
        }
    }

    func finish(context: RuleContext) throws(LineProblem) -> Target { .log(target) }
}

/// A log prefix: not empty, no newline, cut to the kernel's field size as iptables does.
func prefix(_ text: String, option: String, limit: Int) throws(LineProblem) -> String {
    guard !text.isEmpty else { throw .expected("a prefix of at least one character", after: option, got: text) }
    guard !text.contains("\n") else { throw .expected("a prefix without newlines", after: option, got: text) }
    let bytes = Array(text.utf8)
    return bytes.count <= limit ? text : String(decoding: bytes.prefix(limit), as: UTF8.self)
}

struct NFLogTargetParser: TargetParser {
    var target = NFLogTarget()
    let options = [
        OptionSpec("nflog-group"), OptionSpec("nflog-prefix"), OptionSpec("nflog-range", group: "length"),
        OptionSpec("nflog-size", group: "length"), OptionSpec("nflog-threshold"),
    ]

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        let arg = args[0]
        switch option.id {
        case "nflog-group":
            guard let g = SaveTextValues.uint16(arg) else { throw .expected("a group number (0-65535)", after: written, got: arg) }
            target.group = g
        case "nflog-prefix": target.prefix = try prefix(arg, option: written, limit: 63)
        case "nflog-threshold":
            guard let t = SaveTextValues.uint16(arg) else { throw .expected("a packet count (0-65535)", after: written, got: arg) }
            target.threshold = t
        default:
            guard let n = SaveTextValues.uint32(arg) else { throw .expected("a length in bytes", after: written, got: arg) }
            target.length = n
            target.sizeSet = option.id == "nflog-size"
        }
    }

    func finish(context: RuleContext) throws(LineProblem) -> Target { .nflog(target) }
}

struct RejectTargetParser: TargetParser {
    var with: String?
    let options = [OptionSpec("reject-with")]

    /// (name printed by iptables-save, accepted alias), in libipt_REJECT / libip6t_REJECT table order.
    static let ipv4Types = [
        ("icmp-net-unreachable", "net-unreach"), ("icmp-host-unreachable", "host-unreach"),
        ("icmp-proto-unreachable", "proto-unreach"), ("icmp-port-unreachable", "port-unreach"),
        ("icmp-net-prohibited", "net-prohib"), ("icmp-host-prohibited", "host-prohib"), ("tcp-reset", "tcp-rst"),
        ("icmp-admin-prohibited", "admin-prohib"),
    ]
    static let ipv6Types = [
        ("icmp6-no-route", "no-route"), ("icmp6-adm-prohibited", "adm-prohibited"),
        ("icmp6-addr-unreachable", "addr-unreach"), ("icmp6-port-unreachable", "port-unreach"),
        ("tcp-reset", "tcp-reset"), ("icmp6-policy-fail", "policy-fail"), ("icmp6-reject-route", "reject-route"),
    ]

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        // Like iptables: the first type whose name or alias starts with the argument, ignoring case.
        let arg = args[0].lowercased()
        let table = context.family == .ipv4 ? Self.ipv4Types : Self.ipv6Types
        if let hit = table.first(where: { $0.0.hasPrefix(arg) || $0.1.hasPrefix(arg) }) {
            with = hit.0
            return
        }
        if context.family == .ipv4, context.guessing, Self.ipv6Types.contains(where: { $0.0.hasPrefix(arg) }) {
            throw .ipv6Evidence
        }
        throw .expected("a reject type (\(table.map(\.0).joined(separator: ", ")))", after: written, got: args[0])
    }

    func finish(context: RuleContext) throws(LineProblem) -> Target {
        try context.requireTable(.filter, for: "REJECT")
        if with == "tcp-reset" { try context.requireProtocol([6], for: "REJECT --reject-with tcp-reset", spelled: "-p tcp") }
        return .reject(RejectTarget(with: with ?? (context.family == .ipv4 ? "icmp-port-unreachable" : "icmp6-port-unreachable")))
    }
}
