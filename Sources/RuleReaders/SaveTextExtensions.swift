import NetfilterModel

/// One option a match or target accepts, as iptables' option table lists it.
struct OptionSpec: Sendable {
    /// The long name without `--`.
    let name: String
    /// The option this name stands for: aliases (`--dport`, `--destination-port`) share it.
    let id: String
    /// Options that exclude each other share a group; a group may be given once per extension.
    let group: String
    /// How many arguments follow the option (0, 1 or 2).
    let arguments: Int
    let invertible: Bool

    init(_ name: String, id: String? = nil, group: String? = nil, arguments: Int = 1, invertible: Bool = false) {
        self.name = name
        self.id = id ?? name
        self.group = group ?? id ?? name
        self.arguments = arguments
        self.invertible = invertible
    }
}

/// What an extension may consult about the rule it belongs to.
struct RuleContext {
    var family: Family
    var table: TableName
    /// The family is IPv4 only because nothing IPv6 was seen yet.
    var guessing: Bool
    /// Appended to address errors to say why the rules are read as IPv6.
    var familyNote: String
    /// `-p` of the rule, known when extensions are finished.
    var protocolMatch: ProtocolMatch?
    var userResolver: @Sendable (String) -> UInt32?
    var groupResolver: @Sendable (String) -> UInt32?

    /// Throws unless the rule is `-p tcp|udp|sctp|dccp` (not inverted), as NAT port options require.
    func requirePortProtocol(_ what: String) throws(LineProblem) {
        guard let p = protocolMatch, !p.inverted, [6, 17, 132, 33].contains(p.number) else {
            throw LineProblem("\(what) needs -p tcp, -p udp, -p sctp or -p dccp in the rule")
        }
    }

    /// Throws unless the rule is `-p NUMBER` (not inverted): the kernel ties some extensions to one protocol.
    func requireProtocol(_ numbers: Set<UInt16>, for what: String, spelled: String) throws(LineProblem) {
        guard let p = protocolMatch, !p.inverted, numbers.contains(p.number) else {
            throw LineProblem("\(what) needs \(spelled) in the rule (the kernel refuses it otherwise)")
        }
    }

    /// Throws unless the rule is in `table`: the kernel only accepts some targets in one table.
    func requireTable(_ table: TableName, for target: String) throws(LineProblem) {
        guard self.table == table else {
            throw LineProblem("\(target) is only valid in table \(table); the kernel refuses it in table \(self.table)")
        }
    }

    func address(_ text: some StringProtocol, option: String) throws(LineProblem) -> IPAddress {
        try SaveTextValues.host(text, family: family, guessing: guessing, option: option, note: familyNote)
    }

    func addressMatch(_ text: some StringProtocol, inverted: Bool, option: String) throws(LineProblem) -> AddressMatch {
        try SaveTextValues.addressMatch(text, family: family, guessing: guessing, inverted: inverted, option: option,
                                        note: familyNote)
    }
}

/// A match or target being parsed: options arrive one by one, in any order, then `finish` checks the whole.
protocol ExtensionParser {
    var options: [OptionSpec] { get }
    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem)
}

protocol MatchParser: ExtensionParser {
    func finish(context: RuleContext) throws(LineProblem) -> Match
}

protocol TargetParser: ExtensionParser {
    func finish(context: RuleContext) throws(LineProblem) -> Target
}

/// Splits `a,b,c` and maps each element; empty elements are errors.
func commaList<T>(_ text: String, what: String, option: String,
                  _ element: (String) throws(LineProblem) -> T) throws(LineProblem) -> [T] {
    var out: [T] = []
    for part in text.split(separator: ",", omittingEmptySubsequences: false) {
        guard !part.isEmpty else { throw .expected(what, after: option, got: text) }
        out.append(try element(String(part)))
    }
    return out
}

/// A name from a fixed list, compared without regard to case (as iptables' `strcasecmp`).
func caseInsensitiveLookup<T>(_ name: String, in table: [(String, T)]) -> T? {
    let upper = name.uppercased()
    return table.first { $0.0.uppercased() == upper }?.1
}

// MARK: - matches

/// Matches iptaudit decodes, by `-m` name.
func makeMatchParser(_ name: String) -> (any MatchParser)? {
    switch name {
    case "tcp": TCPMatchParser()
    case "udp": UDPMatchParser()
    case "multiport": MultiportMatchParser()
    case "owner": OwnerMatchParser()
    case "mark": MarkMatchParser(connmark: false)
    case "connmark": MarkMatchParser(connmark: true)
    case "conntrack": ConntrackMatchParser()
    case "state": StateMatchParser()
    case "comment": CommentMatchParser()
    case "addrtype": AddrtypeMatchParser()
    case "statistic": StatisticMatchParser()
    case "set": SetMatchParser()
    case "socket": SocketMatchParser()
    case "mac": MACMatchParser()
    default: nil
    }
}

struct TCPMatchParser: MatchParser {
    var match = TCPMatch()
    let options = [
        OptionSpec("source-port", id: "sport", invertible: true), OptionSpec("sport", invertible: true),
        OptionSpec("destination-port", id: "dport", invertible: true), OptionSpec("dport", invertible: true),
        OptionSpec("tcp-flags", group: "flags", arguments: 2, invertible: true),
        OptionSpec("syn", group: "flags", arguments: 0, invertible: true),
        OptionSpec("tcp-option", invertible: true),
    ]

    static func flags(_ text: String, option: String) throws(LineProblem) -> UInt8 {
        var bits: UInt8 = 0
        for name in text.split(separator: ",", omittingEmptySubsequences: false) {
            switch name.uppercased() {
            case "ALL": bits |= 0x3F
            case "NONE": break
            default:
                guard let bit = caseInsensitiveLookup(String(name), in: TCPFlagsMatch.names) else {
                    throw .expected("TCP flags (FIN,SYN,RST,PSH,ACK,URG,ALL,NONE)", after: option, got: text)
                }
                bits |= bit
            }
        }
        return bits
    }

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        switch option.id {
        case "sport": match.sourcePort = PortMatch(try SaveTextValues.portRange(args[0], option: written), inverted: inverted)
        case "dport": match.destinationPort = PortMatch(try SaveTextValues.portRange(args[0], option: written), inverted: inverted)
        case "tcp-flags":
            let mask = try Self.flags(args[0], option: written)
            let compare = try Self.flags(args[1], option: written)
            // An empty mask tests nothing: the kernel keeps no condition and iptables-save prints none.
            match.flags = mask == 0 && !inverted ? nil : TCPFlagsMatch(mask: mask, compare: compare, inverted: inverted)
        case "syn": match.flags = TCPFlagsMatch(mask: 0x17, compare: 0x02, inverted: inverted)
        default:
            guard let kind = SaveTextValues.number(args[0], max: 255), kind >= 1 else {
                throw .expected("a TCP option number (1-255)", after: written, got: args[0])
            }
            match.option = TCPOptionMatch(kind: UInt8(kind), inverted: inverted)
        }
    }

    func finish(context: RuleContext) throws(LineProblem) -> Match {
        try context.requireProtocol([6], for: "the tcp match", spelled: "-p tcp")
        return .tcp(match)
    }
}

struct UDPMatchParser: MatchParser {
    var match = UDPMatch()
    let options = [
        OptionSpec("source-port", id: "sport", invertible: true), OptionSpec("sport", invertible: true),
        OptionSpec("destination-port", id: "dport", invertible: true), OptionSpec("dport", invertible: true),
    ]

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        let range = try SaveTextValues.portRange(args[0], option: written)
        if option.id == "sport" {
            match.sourcePort = PortMatch(range, inverted: inverted)
        } else {
            match.destinationPort = PortMatch(range, inverted: inverted)
        }
    }

    func finish(context: RuleContext) throws(LineProblem) -> Match {
        try context.requireProtocol([17], for: "the udp match", spelled: "-p udp")
        return .udp(match)
    }
}

struct MultiportMatchParser: MatchParser {
    var match: MultiportMatch?
    let options = [
        OptionSpec("source-ports", id: "sports", group: "ports", invertible: true),
        OptionSpec("sports", group: "ports", invertible: true),
        OptionSpec("destination-ports", id: "dports", group: "ports", invertible: true),
        OptionSpec("dports", group: "ports", invertible: true),
        OptionSpec("ports", group: "ports", invertible: true),
    ]

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        let direction: MultiportMatch.Direction = switch option.id {
        case "sports": .source
        case "dports": .destination
        default: .either
        }
        let ports = try commaList(args[0], what: "a list of ports PORT[:PORT],...", option: written) {
            (p: String) throws(LineProblem) -> ClosedRange<UInt16> in
            guard let colon = p.firstIndex(of: ":") else {
                let n = try SaveTextValues.port(p, option: written)
                return n...n
            }
            let lo = try SaveTextValues.port(p[..<colon], option: written)
            let hi = try SaveTextValues.port(p[p.index(after: colon)...], option: written)
            guard lo <= hi else { throw .expected("a port range LOW:HIGH with LOW <= HIGH", after: written, got: p) }
            return lo...hi
        }
        // The kernel holds 15 ports; a range takes two of them.
        let slots = ports.reduce(0) { $0 + ($1.lowerBound == $1.upperBound ? 1 : 2) }
        guard slots <= 15 else {
            throw LineProblem("too many ports after \(written): at most 15, a range counting as two, got \(quoted(args[0]))")
        }
        match = MultiportMatch(direction: direction, ports: ports, inverted: inverted)
    }

    func finish(context: RuleContext) throws(LineProblem) -> Match {
        guard let match else { throw LineProblem("the multiport match needs --sports, --dports or --ports") }
        guard let p = context.protocolMatch, !p.inverted, [6, 17, 136, 132, 33].contains(p.number) else {
            throw LineProblem("the multiport match needs -p tcp, -p udp, -p udplite, -p sctp or -p dccp in the rule")
        }
        return .multiport(match)
    }
}

struct OwnerMatchParser: MatchParser {
    var match = OwnerMatch()
    let options = [
        OptionSpec("uid-owner", invertible: true), OptionSpec("gid-owner", invertible: true),
        OptionSpec("socket-exists", arguments: 0, invertible: true), OptionSpec("suppl-groups", arguments: 0),
    ]

    /// `ID`, `ID-ID` (or `ID:ID`), or a user/group name resolved through `resolve`.
    static func idRange(_ text: String, option: String, kind: String,
                        resolve: (String) -> UInt32?) throws(LineProblem) -> ClosedRange<UInt32> {
        let maxID = UInt64(UInt32.max - 1)
        if let first = text.first, first.isASCII, first.isNumber {
            let parts = text.split(omittingEmptySubsequences: false) { $0 == "-" || $0 == ":" }
            guard parts.count <= 2, let lo = SaveTextValues.number(parts[0], max: maxID),
                  let hi = parts.count == 2 ? SaveTextValues.number(parts[1], max: maxID) : lo else {
                throw .expected("a \(kind) id, ID-ID range (0-4294967294) or \(kind) name", after: option, got: text)
            }
            guard lo <= hi else { throw .expected("an id range LOW-HIGH with LOW <= HIGH", after: option, got: text) }
            return UInt32(lo)...UInt32(hi)
        }
        guard !text.isEmpty, let id = resolve(text) else {
            throw LineProblem("unknown \(kind) \(quoted(text)) after \(option): no such \(kind) name on this host")
        }
        return id...id
    }

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        switch option.id {
        case "uid-owner":
            match.uid = IDRangeMatch(try Self.idRange(args[0], option: written, kind: "user", resolve: context.userResolver),
                                     inverted: inverted)
        case "gid-owner":
            match.gid = IDRangeMatch(try Self.idRange(args[0], option: written, kind: "group", resolve: context.groupResolver),
                                     inverted: inverted)
        case "socket-exists": match.socketExists = inverted
        default: match.supplementaryGroups = true
        }
    }

    func finish(context: RuleContext) throws(LineProblem) -> Match {
        if match.supplementaryGroups, match.gid == nil { throw LineProblem("--suppl-groups needs --gid-owner") }
        return .owner(match)
    }
}

struct MarkMatchParser: MatchParser {
    let connmark: Bool
    var match: MarkMatch?
    let options = [OptionSpec("mark", invertible: true)]

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        let (value, mask) = try SaveTextValues.markAndMask(args[0], option: written)
        match = MarkMatch(value: value, mask: mask, inverted: inverted)
    }

    func finish(context: RuleContext) throws(LineProblem) -> Match {
        guard let match else { throw LineProblem("the \(connmark ? "connmark" : "mark") match needs --mark") }
        return connmark ? .connmark(match) : .mark(match)
    }
}

/// A conntrack tuple address keeps its host bits: the kernel stores `--ctorigsrc 10.1.2.3/8` as written.
func conntrackTupleAddress(_ arg: String, option: String, context: RuleContext) throws(LineProblem) -> AddressMatch {
    let masked = try context.addressMatch(arg, inverted: false, option: option)
    guard let host = IPAddress(arg.split(separator: "/", maxSplits: 1)[0]), host.family == masked.address.family else { return masked }
    // iptables keeps only prefix masks here: `10.9.8.7/255.255.0.255` is loaded (and printed) as a host address.
    let mask = masked.mask.prefixLength != nil ? masked.mask : .mask(prefixLength: host.family.addressBits, family: host.family)
    return AddressMatch(unmaskedAddress: host, mask: mask)
}

/// Conntrack state names of `--ctstate` / `--state`.
func conntrackStates(_ text: String, option: String, allowed: [(String, ConntrackStates)]) throws(LineProblem) -> ConntrackStates {
    let names = allowed.map(\.0).joined(separator: ",")
    let states = try commaList(text, what: "states (\(names))", option: option) { (s: String) throws(LineProblem) in
        guard let st = caseInsensitiveLookup(s, in: allowed) else {
            throw .expected("states (\(names))", after: option, got: text)
        }
        return st
    }
    return states.reduce(ConntrackStates()) { $0.union($1) }
}

/// An IP protocol by name or number (0-255), as `-p` and `--ctproto` take it.
func protocolNumber(_ text: String, option: String, context: RuleContext) throws(LineProblem) -> UInt16 {
    let lower = text.lowercased()
    if let n = SaveTextValues.number(lower, max: 255) { return UInt16(n) }
    if context.family == .ipv4, ["ipv6-icmp", "icmpv6"].contains(lower) {
        if context.guessing { throw .ipv6Evidence }
    }
    guard lower != "icmp6", !lower.isEmpty, let n = SaveSyntax.protocolNumber(lower), n <= 255 else {
        throw .expected("a protocol name or number (0-255)", after: option, got: text)
    }
    return n
}

struct ConntrackMatchParser: MatchParser {
    var match = ConntrackMatch()
    var given = false
    let options = [
        OptionSpec("ctstate", invertible: true), OptionSpec("ctproto", invertible: true),
        OptionSpec("ctorigsrc", invertible: true), OptionSpec("ctorigdst", invertible: true),
        OptionSpec("ctreplsrc", invertible: true), OptionSpec("ctrepldst", invertible: true),
        OptionSpec("ctorigsrcport", invertible: true), OptionSpec("ctorigdstport", invertible: true),
        OptionSpec("ctreplsrcport", invertible: true), OptionSpec("ctrepldstport", invertible: true),
        OptionSpec("ctstatus", invertible: true), OptionSpec("ctexpire", invertible: true), OptionSpec("ctdir"),
    ]

    static let stateNames: [(String, ConntrackStates)] = [
        ("INVALID", .invalid), ("ESTABLISHED", .established), ("NEW", .new), ("RELATED", .related),
        ("UNTRACKED", .untracked), ("SNAT", .snat), ("DNAT", .dnat),
    ]

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        given = true
        let arg = args[0]
        typealias C = ConntrackMatch.Condition
        switch option.id {
        case "ctstate":
            match.states = C(try conntrackStates(arg, option: written, allowed: Self.stateNames), inverted: inverted)
        case "ctproto":
            match.l4Protocol = C(try protocolNumber(arg, option: written, context: context), inverted: inverted)
        case "ctorigsrc": match.originalSource = C(try conntrackTupleAddress(arg, option: written, context: context), inverted: inverted)
        case "ctorigdst": match.originalDestination = C(try conntrackTupleAddress(arg, option: written, context: context), inverted: inverted)
        case "ctreplsrc": match.replySource = C(try conntrackTupleAddress(arg, option: written, context: context), inverted: inverted)
        case "ctrepldst": match.replyDestination = C(try conntrackTupleAddress(arg, option: written, context: context), inverted: inverted)
        case "ctorigsrcport": match.originalSourcePort = C(try SaveTextValues.portRange(arg, option: written), inverted: inverted)
        case "ctorigdstport": match.originalDestinationPort = C(try SaveTextValues.portRange(arg, option: written), inverted: inverted)
        case "ctreplsrcport": match.replySourcePort = C(try SaveTextValues.portRange(arg, option: written), inverted: inverted)
        case "ctrepldstport": match.replyDestinationPort = C(try SaveTextValues.portRange(arg, option: written), inverted: inverted)
        case "ctstatus":
            let all: [(String, ConntrackStatus)] = [("NONE", ConntrackStatus())] + ConntrackStatus.names
            let bits = try commaList(arg, what: "conntrack status names (EXPECTED,SEEN_REPLY,ASSURED,CONFIRMED)",
                                     option: written) { (s: String) throws(LineProblem) in
                guard let b = caseInsensitiveLookup(s, in: all) else {
                    throw .expected("conntrack status names (EXPECTED,SEEN_REPLY,ASSURED,CONFIRMED)", after: written, got: arg)
                }
                return b
            }
            match.status = C(bits.reduce(ConntrackStatus()) { $0.union($1) }, inverted: inverted)
        case "ctexpire":
            let parts = arg.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard let lo = SaveTextValues.uint32(parts[0]), let hi = parts.count == 2 ? SaveTextValues.uint32(parts[1]) : lo,
                  lo <= hi else {
                throw .expected("seconds or a range LOW:HIGH", after: written, got: arg)
            }
            match.expires = C(lo...hi, inverted: inverted)
        default:
            switch arg.uppercased() {
            case "ORIGINAL": match.direction = .original
            case "REPLY": match.direction = .reply
            default: throw .expected("ORIGINAL or REPLY", after: written, got: arg)
            }
        }
    }

    func finish(context: RuleContext) throws(LineProblem) -> Match {
        guard given else { throw LineProblem("the conntrack match needs at least one option, such as --ctstate") }
        return .conntrack(match)
    }
}

struct StateMatchParser: MatchParser {
    var match: StateMatch?
    let options = [OptionSpec("state", invertible: true)]
    static let names: [(String, ConntrackStates)] = [
        ("INVALID", .invalid), ("ESTABLISHED", .established), ("NEW", .new), ("RELATED", .related), ("UNTRACKED", .untracked),
    ]

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        match = StateMatch(states: try conntrackStates(args[0], option: written, allowed: Self.names), inverted: inverted)
    }

    func finish(context: RuleContext) throws(LineProblem) -> Match {
        guard let match else { throw LineProblem("the state match needs --state") }
        return .state(match)
    }
}

struct CommentMatchParser: MatchParser {
    var text: String?
    let options = [OptionSpec("comment")]

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        guard args[0].utf8.count <= 255 else {
            throw LineProblem("the comment after \(written) is \(args[0].utf8.count) bytes long; the kernel keeps at most 255")
        }
        text = args[0]
    }

    func finish(context: RuleContext) throws(LineProblem) -> Match {
        guard let text else { throw LineProblem("the comment match needs --comment") }
        return .comment(text)
    }
}

struct AddrtypeMatchParser: MatchParser {
    var match = AddrtypeMatch()
    let options = [
        OptionSpec("src-type", invertible: true), OptionSpec("dst-type", invertible: true),
        OptionSpec("limit-iface-in", group: "limit-iface", arguments: 0),
        OptionSpec("limit-iface-out", group: "limit-iface", arguments: 0),
    ]

    static func types(_ text: String, option: String) throws(LineProblem) -> AddressTypes {
        let table = AddressTypes.names.enumerated().map { ($0.element, AddressTypes(rawValue: 1 << UInt16($0.offset))) }
        let list = try commaList(text, what: "address types (LOCAL,UNICAST,...)", option: option) { (s: String) throws(LineProblem) in
            guard let t = caseInsensitiveLookup(s, in: table) else {
                throw .expected("address types (\(AddressTypes.names.joined(separator: ",")))", after: option, got: text)
            }
            return t
        }
        return list.reduce(AddressTypes()) { $0.union($1) }
    }

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        switch option.id {
        case "src-type":
            match.sourceTypes = try Self.types(args[0], option: written)
            match.sourceInverted = inverted
        case "dst-type":
            match.destinationTypes = try Self.types(args[0], option: written)
            match.destinationInverted = inverted
        case "limit-iface-in": match.limitInterfaceIn = true
        default: match.limitInterfaceOut = true
        }
    }

    func finish(context: RuleContext) throws(LineProblem) -> Match {
        guard match.sourceTypes != nil || match.destinationTypes != nil else {
            throw LineProblem("the addrtype match needs --src-type or --dst-type")
        }
        return .addrtype(match)
    }
}

struct StatisticMatchParser: MatchParser {
    var mode: String?
    var probability: UInt32?
    var every: UInt32?
    var packet: UInt32?
    var inverted = false
    let options = [
        OptionSpec("mode"), OptionSpec("probability", invertible: true), OptionSpec("every", invertible: true),
        OptionSpec("packet"),
    ]

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        let arg = args[0]
        if inverted { self.inverted = true }
        switch option.id {
        case "mode":
            guard arg == "random" || arg == "nth" else { throw .expected("random or nth", after: written, got: arg) }
            mode = arg
        case "probability":
            guard let p = Double(arg), p.isFinite, p >= 0, p <= 1 else {
                throw .expected("a probability between 0 and 1", after: written, got: arg)
            }
            // The kernel keeps lround(p * 2^31) and matches when a 31-bit random number is below it.
            probability = UInt32((p * 2_147_483_648.0).rounded())
        case "every":
            guard let n = SaveTextValues.uint32(arg), n >= 1 else {
                throw .expected("a packet count of at least 1", after: written, got: arg)
            }
            every = n
        default:
            guard let n = SaveTextValues.uint32(arg) else { throw .expected("a packet number", after: written, got: arg) }
            packet = n
        }
    }

    func finish(context: RuleContext) throws(LineProblem) -> Match {
        switch mode {
        case "random":
            guard let probability else { throw LineProblem("statistic --mode random needs --probability") }
            guard every == nil, packet == nil else { throw LineProblem("--every and --packet need statistic --mode nth") }
            return .statistic(StatisticMatch(mode: .random(probability: probability), inverted: inverted))
        case "nth":
            guard probability == nil else { throw LineProblem("--probability needs statistic --mode random") }
            guard let every, let packet else { throw LineProblem("statistic --mode nth needs --every N and --packet P") }
            guard packet < every else {
                throw LineProblem("statistic --packet \(packet) must be below --every \(every) (0 <= P <= N-1)")
            }
            return .statistic(StatisticMatch(mode: .nth(every: every, packet: packet), inverted: inverted))
        default:
            throw LineProblem("the statistic match needs --mode random or --mode nth")
        }
    }
}

struct SetMatchParser: MatchParser {
    var match: SetMatch?
    var returnNoMatch = false
    var updateCounters = true
    var updateSubcounters = true
    var packets: String?
    var bytes: String?
    let options = [
        OptionSpec("match-set", arguments: 2, invertible: true),
        OptionSpec("set", id: "match-set", arguments: 2, invertible: true),
        OptionSpec("return-nomatch", arguments: 0),
        OptionSpec("update-counters", arguments: 0, invertible: true),
        OptionSpec("update-subcounters", arguments: 0, invertible: true),
        OptionSpec("packets-eq", group: "packets", invertible: true), OptionSpec("packets-lt", group: "packets"),
        OptionSpec("packets-gt", group: "packets"),
        OptionSpec("bytes-eq", group: "bytes", invertible: true), OptionSpec("bytes-lt", group: "bytes"),
        OptionSpec("bytes-gt", group: "bytes"),
    ]

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        switch option.id {
        case "match-set":
            let name = args[0]
            guard !name.isEmpty, name.utf8.count <= 31 else {
                throw .expected("an ipset name of 1 to 31 bytes", after: written, got: name)
            }
            let directions = try commaList(args[1], what: "directions src,dst,...", option: "\(written) \(name)") {
                (d: String) throws(LineProblem) -> SetMatch.Direction in
                guard let dir = SetMatch.Direction(rawValue: d) else {
                    throw .expected("directions (src or dst, comma separated)", after: "\(written) \(name)", got: args[1])
                }
                return dir
            }
            guard directions.count <= 6 else {
                throw LineProblem("too many directions after \(written) \(name): at most 6, got \(quoted(args[1]))")
            }
            match = SetMatch(name: name, directions: directions, inverted: inverted)
        case "return-nomatch": returnNoMatch = true
        case "update-counters": updateCounters = !inverted
        case "update-subcounters": updateSubcounters = !inverted
        default:
            guard let n = SaveTextValues.number(args[0], max: UInt64.max) else {
                throw .expected("a number", after: written, got: args[0])
            }
            let text = (inverted ? "! " : "") + "--\(option.id) \(n)"
            if option.group == "packets" { packets = text } else { bytes = text }
        }
    }

    func finish(context: RuleContext) throws(LineProblem) -> Match {
        guard var match else { throw LineProblem("the set match needs --match-set NAME src|dst") }
        match.returnNoMatch = returnNoMatch
        match.updateCounters = updateCounters
        match.updateSubcounters = updateSubcounters
        match.counterConditions = [packets, bytes].compactMap { $0 }
        return .set(match)
    }
}

struct SocketMatchParser: MatchParser {
    var match = SocketMatch()
    let options = [
        OptionSpec("transparent", arguments: 0), OptionSpec("nowildcard", arguments: 0),
        OptionSpec("restore-skmark", arguments: 0),
    ]

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        switch option.id {
        case "transparent": match.transparent = true
        case "nowildcard": match.noWildcard = true
        default: match.restoreSocketMark = true
        }
    }

    func finish(context: RuleContext) throws(LineProblem) -> Match { .socket(match) }
}

struct MACMatchParser: MatchParser {
    var match: MACMatch?
    let options = [OptionSpec("mac-source", invertible: true)]

    mutating func take(_ option: OptionSpec, _ args: [String], inverted: Bool, written: String,
                       context: RuleContext) throws(LineProblem) {
        let parts = args[0].split(separator: ":", omittingEmptySubsequences: false)
        let bytes = parts.compactMap { p -> UInt8? in
            guard (1...2).contains(p.count), p.allSatisfy(\.isHexDigit) else { return nil }
            return UInt8(p, radix: 16)
        }
        guard parts.count == 6, bytes.count == 6 else {
            throw .expected("a MAC address XX:XX:XX:XX:XX:XX", after: written, got: args[0])
        }
        match = MACMatch(address: bytes, inverted: inverted)
    }

    func finish(context: RuleContext) throws(LineProblem) -> Match {
        guard let match else { throw LineProblem("the mac match needs --mac-source") }
        return .mac(match)
    }
}
