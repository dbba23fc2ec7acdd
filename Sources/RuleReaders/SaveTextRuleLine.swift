import NetfilterModel

/// iptables' own options (everything that is not a match's or a target's).
enum RuleOption: Hashable {
    case append, insert, delete, replace, newChain, deleteChain, flush, policy
    case source, destination, proto, inInterface, outInterface, fragment, jump, goto, match, counters
    case ipv4Only, ipv6Only, table, wait
    /// Options that make sense on a command line but not in a rules file (`-L`, `-v`, ...).
    case unsupported(String)

    static let long: [(String, RuleOption)] = [
        ("append", .append), ("delete", .delete), ("check", .unsupported("check")), ("insert", .insert),
        ("replace", .replace), ("list", .unsupported("list")), ("list-rules", .unsupported("list-rules")),
        ("flush", .flush), ("zero", .unsupported("zero")), ("new-chain", .newChain), ("delete-chain", .deleteChain),
        ("rename-chain", .unsupported("rename-chain")), ("policy", .policy), ("source", .source),
        ("destination", .destination), ("src", .source), ("dst", .destination), ("protocol", .proto),
        ("in-interface", .inInterface), ("jump", .jump), ("table", .table), ("match", .match),
        ("numeric", .unsupported("numeric")), ("out-interface", .outInterface), ("verbose", .unsupported("verbose")),
        ("wait", .wait), ("wait-interval", .wait), ("exact", .unsupported("exact")), ("fragments", .fragment),
        ("version", .unsupported("version")), ("help", .unsupported("help")),
        ("line-numbers", .unsupported("line-numbers")), ("modprobe", .unsupported("modprobe")),
        ("set-counters", .counters), ("goto", .goto), ("ipv4", .ipv4Only), ("ipv6", .ipv6Only),
    ]

    static let short: [Character: RuleOption] = [
        "A": .append, "D": .delete, "C": .unsupported("C"), "I": .insert, "R": .replace, "L": .unsupported("L"),
        "S": .unsupported("S"), "F": .flush, "Z": .unsupported("Z"), "N": .newChain, "X": .deleteChain,
        "E": .unsupported("E"), "P": .policy, "s": .source, "d": .destination, "p": .proto, "i": .inInterface,
        "j": .jump, "t": .table, "m": .match, "n": .unsupported("n"), "o": .outInterface, "v": .unsupported("v"),
        "w": .wait, "W": .wait, "x": .unsupported("x"), "f": .fragment, "V": .unsupported("V"), "h": .unsupported("h"),
        "M": .unsupported("M"), "c": .counters, "g": .goto, "4": .ipv4Only, "6": .ipv6Only,
    ]

    var isCommand: Bool {
        switch self {
        case .append, .insert, .delete, .replace, .newChain, .deleteChain, .flush, .policy: true
        default: false
        }
    }

    var invertible: Bool {
        switch self {
        case .source, .destination, .proto, .inInterface, .outInterface, .fragment: true
        default: false
        }
    }
}

/// What one line asks for, in iptables' command vocabulary.
enum ChainCommand: Equatable {
    case append(ChainName, [Rule])
    /// Position counts from 1.
    case insert(ChainName, Int, [Rule])
    case delete(ChainName, [Rule])
    case deleteNumber(ChainName, Int)
    case replace(ChainName, Int, Rule)
    case newChain(ChainName)
    case deleteChain(ChainName?)
    case flush(ChainName?)
    case policy(ChainName, Policy)
}

extension ChainCommand {
    /// The command with each rule it adds remembering where it was read.
    func originating(at origin: RuleOrigin) -> ChainCommand {
        func marked(_ rule: Rule) -> Rule {
            var rule = rule
            rule.origin = origin
            return rule
        }
        switch self {
        case .append(let chain, let rules): return .append(chain, rules.map(marked))
        case .insert(let chain, let n, let rules): return .insert(chain, n, rules.map(marked))
        case .replace(let chain, let n, let rule): return .replace(chain, n, marked(rule))
        default: return self
        }
    }
}

/// A parsed line: the command, and for `iptables …` command lines the table and family it names.
struct ParsedRuleLine {
    var command: ChainCommand
    var table: TableName?
    /// `-4` / `-6`: the line only applies to that family.
    var onlyFamily: Family?
}

/// Parses the arguments of one rule line like iptables' `do_command4/6`: iptables' own options, then
/// options of the loaded matches and target, with getopt's rules (unique prefixes, `--opt=value`,
/// newest extension first) and iptables' implicit protocol match (`-p tcp --dport 53` loads `-m tcp`).
struct RuleLineParser {
    var context: RuleContext
    /// Whether a chain of this name exists in the table now, so `-j NAME` is a jump.
    let isChain: (String) -> Bool
    /// `iptables -t nat -A …` lines may name their table; restore lines may not.
    let commandLine: Bool

    private enum Slot {
        case match(any MatchParser, name: String, seen: [String: String])
        case target(any TargetParser, name: String, seen: [String: String])
        case unknownMatch(name: String, args: [String])
        case unknownTarget(name: String, args: [String])

        var options: [OptionSpec] {
            switch self {
            case .match(let p, _, _): p.options
            case .target(let p, _, _): p.options
            default: []
            }
        }
        var isUnknown: Bool {
            switch self {
            case .unknownMatch, .unknownTarget: true
            default: false
            }
        }
        var name: String {
            switch self {
            case .match(_, let n, _), .target(_, let n, _), .unknownMatch(let n, _), .unknownTarget(let n, _): n
            }
        }
    }

    private enum Resolved {
        case rule(RuleOption)
        case ext(Int, OptionSpec)
        case unknown(Int)
    }

    private var slots: [Slot] = []
    private var targetSet: Target?
    private var targetWritten: String?
    private var protoUsed = false

    private var command: (RuleOption, String)?
    private var chain: ChainName?
    private var number: Int?
    private var policy: Policy?
    private var table: TableName?
    private var onlyFamily: Family?

    private var sources: [AddressMatch?]?
    private var destinations: [AddressMatch?]?
    private var protocolMatch: ProtocolMatch?
    private var inInterface: InterfaceMatch?
    private var outInterface: InterfaceMatch?
    private var fragment: Bool?
    private var counters: Counters?
    private var ruleOptionsSeen: [String] = []

    init(context: RuleContext, isChain: @escaping (String) -> Bool, commandLine: Bool, counters: Counters? = nil) {
        self.context = context
        self.isChain = isChain
        self.commandLine = commandLine
        self.counters = counters
    }

    // MARK: parsing

    mutating func parse(_ tokens: [SaveTextToken]) throws(LineProblem) -> ParsedRuleLine {
        var i = 0
        var invert = false
        while i < tokens.count {
            let token = tokens[i]
            i += 1
            if token.value == "!" {
                if invert { throw LineProblem("two \"!\" in a row: only one may precede an option") }
                invert = true
                continue
            }
            guard token.value.hasPrefix("-"), token.value.count > 1 else {
                throw LineProblem("unexpected argument \(quoted(token.value)): expected an option such as -j or --dport")
            }
            var name = token.value
            var inline: String?
            if name.hasPrefix("--"), let eq = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            let resolved = try resolve(name)
            var nextIndex = i
            func argument(_ what: String) throws(LineProblem) -> String {
                if let value = inline {
                    inline = nil
                    return value
                }
                guard nextIndex < tokens.count else { throw LineProblem("option \(name) needs \(what), but the line ends") }
                defer { nextIndex += 1 }
                return tokens[nextIndex].value
            }
            /// An optional argument: the next token when it does not look like an option.
            func optionalArgument() -> String? {
                if let value = inline {
                    inline = nil
                    return value
                }
                guard nextIndex < tokens.count, !tokens[nextIndex].value.hasPrefix("-"), tokens[nextIndex].value != "!" else {
                    return nil
                }
                defer { nextIndex += 1 }
                return tokens[nextIndex].value
            }

            switch resolved {
            case .rule(let option):
                if invert, !option.invertible { throw LineProblem("\"!\" cannot precede \(name)") }
                try ruleOption(option, written: name, inverted: invert, argument: argument, optionalArgument: optionalArgument)
            case .ext(let index, let spec):
                if invert, !spec.invertible {
                    throw LineProblem("\"!\" cannot precede \(name) (option of \(slots[index].name))")
                }
                var args: [String] = []
                for n in 0..<spec.arguments {
                    args.append(try argument(n == 0 ? "a value" : "a second value"))
                }
                try extensionOption(index, spec, args, inverted: invert, written: name)
            case .unknown(let index):
                // Options of extensions iptaudit does not decode are kept as written: the option, then
                // every following argument that is not an option.
                var args = invert ? ["!"] : []
                args.append(token.raw)
                while nextIndex < tokens.count, !tokens[nextIndex].value.hasPrefix("-") || tokens[nextIndex].value == "-",
                      tokens[nextIndex].value != "!" {
                    args.append(tokens[nextIndex].raw)
                    nextIndex += 1
                }
                switch slots[index] {
                case .unknownMatch(let n, let old): slots[index] = .unknownMatch(name: n, args: old + args)
                case .unknownTarget(let n, let old): slots[index] = .unknownTarget(name: n, args: old + args)
                default: break
                }
            }
            if let inline { throw LineProblem("option \(name) takes no value, got \(name)=\(inline)") }
            i = nextIndex
            invert = false
        }
        if invert { throw LineProblem("the line ends with \"!\": expected an option after it") }
        return try finish()
    }

    /// getopt_long's lookup over iptables' merged option table.
    private mutating func resolve(_ name: String) throws(LineProblem) -> Resolved {
        if !name.hasPrefix("--") {
            let letters = name.dropFirst()
            guard letters.count == 1, let letter = letters.first, let option = RuleOption.short[letter] else {
                if let last = slots.indices.last, slots[last].isUnknown { return .unknown(last) }
                throw LineProblem("unknown option \(quoted(name))")
            }
            return .rule(option)
        }
        let key = String(name.dropFirst(2))
        guard !key.isEmpty else { throw LineProblem("unknown option \"--\": expected an option name after it") }
        if let exact = RuleOption.long.first(where: { $0.0 == key }) { return .rule(exact.1) }
        if let hit = exactExtensionOption(key) { return hit }
        if let last = slots.indices.last, slots[last].isUnknown { return .unknown(last) }
        if let hit = try prefixOption(key, name: name) { return hit }
        // Unknown to every loaded extension: load the protocol's match, as iptables does, and look again.
        if !protoUsed, let p = protocolMatch, let slot = implicitProtocolMatch(p.number) {
            if p.inverted {
                throw LineProblem("\(name) needs the \(slot.name) match, which cannot follow \"! -p\"")
            }
            protoUsed = true
            slots.append(slot)
            let index = slots.count - 1
            if slot.isUnknown { return .unknown(index) }
            if let spec = slot.options.first(where: { $0.name == key }) { return .ext(index, spec) }
            let prefixed = slot.options.filter { $0.name.hasPrefix(key) }
            if Set(prefixed.map(\.id)).count == 1, let spec = prefixed.first { return .ext(index, spec) }
            slots.removeLast()
            protoUsed = false
        }
        if let index = slots.lastIndex(where: \.isUnknown) { return .unknown(index) }
        let loaded = slots.map(\.name)
        throw LineProblem("unknown option \(quoted(name))"
            + (loaded.isEmpty ? "" : " (not an option of \(loaded.joined(separator: ", ")))"))
    }

    private func exactExtensionOption(_ key: String) -> Resolved? {
        for index in slots.indices.reversed() {
            if let spec = slots[index].options.first(where: { $0.name == key }) { return .ext(index, spec) }
        }
        return nil
    }

    private func prefixOption(_ key: String, name: String) throws(LineProblem) -> Resolved? {
        var seen: Set<String> = []
        var hits: [(String, Resolved)] = []
        for (long, option) in RuleOption.long where long.hasPrefix(key) {
            if seen.insert("rule:\(option)").inserted { hits.append(("--" + long, .rule(option))) }
        }
        for index in slots.indices.reversed() {
            for spec in slots[index].options where spec.name.hasPrefix(key) {
                if seen.insert("\(index):\(spec.id)").inserted { hits.append(("--" + spec.name, .ext(index, spec))) }
            }
        }
        guard hits.count <= 1 else {
            throw LineProblem("ambiguous option \(quoted(name)): it could be \(hits.map(\.0).joined(separator: ", "))")
        }
        return hits.first?.1
    }

    /// The match iptables loads for `-p PROTO` when an option is unknown (`load_proto`).
    private func implicitProtocolMatch(_ number: UInt16) -> Slot? {
        switch number {
        case 6: .match(TCPMatchParser(), name: "tcp", seen: [:])
        case 17: .match(UDPMatchParser(), name: "udp", seen: [:])
        case 1 where context.family == .ipv4: .unknownMatch(name: "icmp", args: [])
        case 58 where context.family == .ipv6: .unknownMatch(name: "icmp6", args: [])
        case 135 where context.family == .ipv6: .unknownMatch(name: "mh", args: [])
        case 33: .unknownMatch(name: "dccp", args: [])
        case 132: .unknownMatch(name: "sctp", args: [])
        case 136: .unknownMatch(name: "udplite", args: [])
        case 50: .unknownMatch(name: "esp", args: [])
        case 51: .unknownMatch(name: "ah", args: [])
        default: nil
        }
    }

    private mutating func extensionOption(_ index: Int, _ spec: OptionSpec, _ args: [String], inverted: Bool,
                                          written: String) throws(LineProblem) {
        func checkSeen(_ seen: inout [String: String]) throws(LineProblem) {
            if let earlier = seen[spec.group] {
                if earlier == spec.id { throw LineProblem("option \(written) is given twice") }
                throw LineProblem("option \(written) cannot be combined with --\(earlier)")
            }
            seen[spec.group] = spec.id
        }
        switch slots[index] {
        case .match(var parser, let name, var seen):
            try checkSeen(&seen)
            try parser.take(spec, args, inverted: inverted, written: written, context: context)
            slots[index] = .match(parser, name: name, seen: seen)
        case .target(var parser, let name, var seen):
            try checkSeen(&seen)
            try parser.take(spec, args, inverted: inverted, written: written, context: context)
            slots[index] = .target(parser, name: name, seen: seen)
        default:
            break
        }
    }

    private mutating func ruleOption(_ option: RuleOption, written: String, inverted: Bool,
                                     argument: (String) throws(LineProblem) -> String,
                                     optionalArgument: () -> String?) throws(LineProblem) {
        if option.isCommand {
            if let (_, earlier) = command {
                throw LineProblem("two commands in one line: \(earlier) and \(written)")
            }
            command = (option, written)
        } else if ![.match, .wait, .jump, .goto].contains(option) {
            let key = "\(option)"
            if ruleOptionsSeen.contains(key) { throw LineProblem("option \(written) is given twice") }
            ruleOptionsSeen.append(key)
        }
        switch option {
        case .append, .newChain:
            chain = try chainName(try argument("a chain name"), after: written)
        case .insert, .delete:
            chain = try chainName(try argument("a chain name"), after: written)
            if let n = optionalArgument() { number = try ruleNumber(n, after: "\(written) \(chain?.rawValue ?? "")") }
        case .replace:
            chain = try chainName(try argument("a chain name"), after: written)
            number = try ruleNumber(try argument("a rule number"), after: "\(written) \(chain?.rawValue ?? "")")
        case .flush, .deleteChain:
            if let c = optionalArgument() { chain = try chainName(c, after: written) }
        case .policy:
            chain = try chainName(try argument("a chain name"), after: written)
            let p = try argument("a policy")
            guard let pol = Policy(rawValue: p) else { throw .expected("a policy (ACCEPT or DROP)", after: "\(written) \(chain?.rawValue ?? "")", got: p) }
            policy = pol
        case .source, .destination:
            let text = try argument("an address")
            guard !text.isEmpty else { throw .expected("an address", after: written, got: text) }
            let list = try commaList(text, what: "addresses ADDR[/MASK][,...]", option: written) {
                (a: String) throws(LineProblem) -> AddressMatch? in
                let m = try context.addressMatch(a, inverted: inverted, option: written)
                return m.isWildcard ? nil : m
            }
            if option == .source { sources = list } else { destinations = list }
        case .proto:
            let text = try argument("a protocol")
            let number = try protocolNumber(text, option: written, context: context)
            if number == 0 {
                if inverted { throw LineProblem("\"! \(written) \(text)\" would never match: every packet has a protocol") }
                protocolMatch = nil
            } else {
                protocolMatch = ProtocolMatch(number, inverted: inverted)
            }
        case .inInterface, .outInterface:
            let text = try argument("an interface name")
            guard !text.isEmpty else { throw .expected("an interface name", after: written, got: text) }
            guard text.utf8.count <= 15 else {
                throw .expected("an interface name of at most 15 bytes", after: written, got: text)
            }
            // `+` alone matches every interface: iptables stores no condition.
            let iface: InterfaceMatch? = text == "+" ? nil : InterfaceMatch(text, inverted: inverted)
            if option == .inInterface { inInterface = iface } else { outInterface = iface }
        case .fragment:
            if context.family == .ipv6 { throw LineProblem("\(written) does not exist for IPv6 (use -m frag)") }
            fragment = inverted
        case .jump:
            let name = try argument("a target")
            try setTarget(name, written: written)
        case .goto:
            let name = try argument("a chain name")
            guard !name.isEmpty, !knownTargetNames.contains(name) else {
                throw .expected("a user-defined chain", after: written, got: name)
            }
            if let earlier = targetWritten { throw LineProblem("a rule has one target: \(written) \(name) follows \(earlier)") }
            targetWritten = "\(written) \(name)"
            targetSet = .goto(ChainName(name))
        case .match:
            if inverted { throw LineProblem("\"!\" cannot precede \(written)") }
            let name = try argument("a match name")
            guard !name.isEmpty else { throw .expected("a match name", after: written, got: name) }
            if let parser = makeMatchParser(name) {
                slots.append(.match(parser, name: name, seen: [:]))
            } else {
                var canonical = name
                if ["icmp6", "icmpv6", "ipv6-icmp"].contains(name) {
                    if context.family == .ipv4, context.guessing { throw .ipv6Evidence }
                    canonical = "icmp6"
                }
                slots.append(.unknownMatch(name: canonical, args: []))
            }
        case .counters:
            let first = try argument("packet and byte counters")
            var parts = first.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            if parts.count == 1 { parts.append(try argument("a byte counter")) }
            guard parts.count == 2, let p = UInt64(parts[0]), let b = UInt64(parts[1]) else {
                throw .expected("counters PACKETS BYTES", after: written, got: parts.joined(separator: " "))
            }
            if counters != nil { throw LineProblem("counters are given twice: as [p:b] and with \(written)") }
            counters = Counters(packets: p, bytes: b)
        case .ipv4Only: onlyFamily = .ipv4
        case .ipv6Only: onlyFamily = .ipv6
        case .table:
            guard commandLine else {
                throw LineProblem("\(written) cannot be used in restore input: the table comes from the *TABLE line")
            }
            let t = try argument("a table name")
            table = try tableName(t, after: written)
        case .wait:
            if let w = optionalArgument(), Double(w) == nil { throw .expected("seconds", after: written, got: w) }
        case .unsupported:
            throw LineProblem("\(written) is not a rule command: rules input holds -A, -I, -N, -P and similar lines")
        }
    }

    private mutating func setTarget(_ name: String, written: String) throws(LineProblem) {
        guard !name.isEmpty else { throw .expected("a target", after: written, got: name) }
        if let earlier = targetWritten { throw LineProblem("a rule has one target: \(written) \(name) follows \(earlier)") }
        targetWritten = "\(written) \(name)"
        if let parser = makeTargetParser(name) {
            slots.append(.target(parser, name: name, seen: [:]))
        } else if isChain(name) {
            targetSet = .jump(ChainName(name))
        } else {
            // A target iptaudit does not decode, or a chain declared further down: decided at COMMIT.
            slots.append(.unknownTarget(name: name, args: []))
        }
    }

    private func chainName(_ text: String, after option: String) throws(LineProblem) -> ChainName {
        guard !text.isEmpty, !text.hasPrefix("-"), text != "!" else { throw .expected("a chain name", after: option, got: text) }
        guard text.utf8.count <= 28 else { throw .expected("a chain name of at most 28 bytes", after: option, got: text) }
        return ChainName(text)
    }

    private func ruleNumber(_ text: String, after option: String) throws(LineProblem) -> Int {
        guard let n = Int(text), n >= 1 else { throw .expected("a rule number (1 or more)", after: option, got: text) }
        return n
    }

    // MARK: finishing

    /// Rule options that make a rule specification (counters and family flags do not).
    private var hasRuleSpec: Bool {
        ruleOptionsSeen.contains { !["counters", "ipv4Only", "ipv6Only", "table"].contains($0) }
            || !slots.isEmpty || targetSet != nil
    }

    private mutating func finish() throws(LineProblem) -> ParsedRuleLine {
        guard let (command, written) = command else {
            throw LineProblem("no command in the line: expected -A CHAIN, -I CHAIN, -N CHAIN or similar")
        }
        if command == .flush || command == .deleteChain { return try finishChainless(command, written: written) }
        guard let chain else { throw LineProblem("\(written) needs a chain name") }
        let hasRuleSpec = self.hasRuleSpec
        func noSpec() throws(LineProblem) {
            if hasRuleSpec { throw LineProblem("\(written) takes no rule options") }
        }
        let cmd: ChainCommand
        switch command {
        case .append: cmd = .append(chain, try rules())
        case .insert: cmd = .insert(chain, number ?? 1, try rules())
        case .delete:
            if let number {
                try noSpec()
                cmd = .deleteNumber(chain, number)
            } else {
                cmd = .delete(chain, try rules())
            }
        case .replace:
            let r = try rules()
            guard r.count == 1, let rule = r.first else {
                throw LineProblem("\(written) replaces one rule; several addresses would make \(r.count)")
            }
            cmd = .replace(chain, number ?? 1, rule)
        case .newChain:
            try noSpec()
            cmd = .newChain(chain)
        case .policy:
            try noSpec()
            cmd = .policy(chain, policy ?? .accept)
        default:
            throw LineProblem("no command in the line: expected -A CHAIN, -I CHAIN, -N CHAIN or similar")
        }
        return ParsedRuleLine(command: cmd, table: table, onlyFamily: onlyFamily)
    }

    private func finishChainless(_ command: RuleOption, written: String) throws(LineProblem) -> ParsedRuleLine {
        if hasRuleSpec { throw LineProblem("\(written) takes no rule options") }
        let cmd: ChainCommand = command == .flush ? .flush(chain) : .deleteChain(chain)
        return ParsedRuleLine(command: cmd, table: table, onlyFamily: onlyFamily)
    }

    /// The rules this line describes: one per source and destination address (`-s a,b` makes two).
    private mutating func rules() throws(LineProblem) -> [Rule] {
        context.protocolMatch = protocolMatch
        var matches: [Match] = []
        var target = targetSet ?? .continue
        for slot in slots {
            switch slot {
            case .match(let parser, _, _): matches.append(try parser.finish(context: context))
            case .unknownMatch(let name, let args): matches.append(.unrecognized(UnrecognizedExtension(name: name, arguments: args)))
            case .target(let parser, _, _): target = try parser.finish(context: context)
            case .unknownTarget(let name, let args): target = .unrecognized(UnrecognizedExtension(name: name, arguments: args))
            }
        }
        var out: [Rule] = []
        for source in sources ?? [nil] {
            for destination in destinations ?? [nil] {
                out.append(Rule(source: source, destination: destination, inInterface: inInterface,
                                outInterface: outInterface, protocol: protocolMatch, fragment: fragment,
                                matches: matches, target: target, counters: counters ?? .zero))
            }
        }
        return out
    }
}

/// A table name iptables knows.
func tableName(_ text: String, after option: String) throws(LineProblem) -> TableName {
    guard ["filter", "nat", "mangle", "raw", "security"].contains(text) else {
        throw .expected("a table (filter, nat, mangle, raw or security)", after: option, got: text)
    }
    return TableName(text)
}
