import NetfilterModel

/// Reads istio-iptables' command line (as istio-init's `args`, or pasted text) into a `CaptureConfiguration`.
///
/// The flag set is the union of istio-iptables 1.10 through master, in pflag's syntax: `-p 15001`, `-p15001`,
/// `-p=15001`, `--envoy-port 15001`, `--envoy-port=15001`, booleans as `--redirect-dns` or `--redirect-dns=false`.
/// Flags that do not change the installed rules (logging, validation, dry run, reconcile, ...) are accepted and
/// ignored; anything else is an error naming the flag, as istio-iptables itself would refuse to start.
public enum IstioArguments {
    /// Parses a command line as a shell would split it (quotes, backslashes, empty values like `-x ""`).
    public static func parse(_ text: String) throws(IstioCaptureError) -> CaptureConfiguration {
        try parse(arguments: ShellWords.split(text))
    }

    /// Parses a pasted command line with istio-iptables' environment over a base configuration
    /// (the CLI's `--istio-args` on top of what a pod manifest says).
    public static func parse(_ text: String, environment: [String: String],
                             base: CaptureConfiguration) throws(IstioCaptureError) -> CaptureConfiguration {
        try parse(arguments: ShellWords.split(text), environment: environment, base: base)
    }

    /// Parses an argument vector, such as a manifest's `args` list. A leading `istio-iptables` (or a path to it,
    /// or `pilot-agent istio-iptables`) is skipped.
    public static func parse(arguments: [String]) throws(IstioCaptureError) -> CaptureConfiguration {
        try parse(arguments: arguments, environment: [:])
    }

    /// Parses an argument vector with istio-iptables' environment. As in istio-iptables, the environment sets
    /// defaults and flags given on the command line win over it.
    public static func parse(arguments: [String], environment: [String: String],
                             base: CaptureConfiguration = CaptureConfiguration()) throws(IstioCaptureError) -> CaptureConfiguration {
        var config = base
        try config.applyEnvironment(environment)
        var words = arguments[...]
        while let first = words.first, isProgramName(first) { words = words.dropFirst() }

        var uids: [UInt32]?
        var gids: [UInt32]?
        var quirks: [ArgumentQuirk] = []
        var given: [String: String] = [:]
        /// A value istio-iptables accepts on its command line and then fails on: it exits before installing a rule.
        func fails(_ error: IstioCaptureError) {
            if config.installFailure == nil { config.installFailure = error.description }
        }
        var index = words.startIndex
        var previousBoolean: String?
        while index < words.endIndex {
            let word = words[index]
            index += 1
            if word == "--" {
                // pflag stops reading flags; cobra hands the rest to a command that ignores its arguments.
                if index < words.endIndex {
                    quirks.append(ArgumentQuirk(words: Array(words[index...]), effect: "follows `--`, so istio-iptables reads no flag in it and ignores it", changesSettings: words[index...].contains { $0.hasPrefix("-") }))
                }
                break
            }
            guard word.hasPrefix("-"), word != "-" else {
                // istio-iptables' command takes positional arguments and ignores them.
                if let flag = previousBoolean, let b = parseBool(word) {
                    quirks.append(ArgumentQuirk(words: [flag, word],
                        effect: "pflag sets \(flag) on its own (true) and ignores \(MessageText.quoted(word))" + (b ? "" : ", so \(flag) is ON, not off"),
                        changesSettings: !b))
                } else {
                    quirks.append(ArgumentQuirk(words: [word], effect: "not a flag or a flag's value: istio-iptables ignores it", changesSettings: false))
                }
                previousBoolean = nil
                continue
            }
            previousBoolean = nil

            // Split `--name=value`, `-x=value` and `-xvalue` into the flag and its attached value.
            let name: String
            var attached: String?
            if word.hasPrefix("--") {
                let body = word.dropFirst(2)
                if let eq = body.firstIndex(of: "=") {
                    name = String(body[..<eq])
                    attached = String(body[body.index(after: eq)...])
                } else {
                    name = String(body)
                }
            } else {
                let body = word.dropFirst()
                name = String(body.prefix(1))
                let rest = body.dropFirst()
                if !rest.isEmpty { attached = rest.hasPrefix("=") ? String(rest.dropFirst()) : String(rest) }
            }
            let isLong = word.hasPrefix("--")
            guard let flag = Flag.lookup(name, long: isLong) else { throw .unknownFlag((isLong ? "--" : "-") + name) }
            let shown = flag.display
            if !config.versionAssumed, !flag.exists(in: config.istioVersion), config.installFailure == nil {
                // cobra stops at a flag the release does not define: istio-iptables prints its usage and exits.
                config.installFailure = "istio-iptables \(config.istioVersion) has no \(shown) flag (\(flag.releases) have it) and refuses to start"
            }

            if flag.isBoolean {
                let value: Bool
                if let attached {
                    guard let b = parseBool(attached) else {
                        throw .invalidValue(flag: shown, value: attached, reason: "expected true or false")
                    }
                    value = b
                } else {
                    value = true
                    previousBoolean = word
                }
                switch flag.knob {
                case .redirectDNS: config.redirectDNS = value
                case .captureAllDNS: config.captureAllDNS = value
                case .dropInvalid: config.dropInvalid = value
                case .dualStack: config.dualStack = value
                case .traceLogging: config.traceLogging = value
                case .nativeNftables: config.nativeNftables = value
                default: break
                }
                continue
            }

            let value: String
            if let attached {
                value = attached
            } else {
                guard index < words.endIndex else { throw .missingValue(flag: shown) }
                value = words[index]
                index += 1
                // pflag gives a flag that takes a value the next word, whatever it is: `-x -b '*'` sets -x to "-b".
                if value.hasPrefix("-"), value.count > 1, let swallowed = Flag.named(value) {
                    quirks.append(ArgumentQuirk(words: [word, value],
                        effect: "pflag takes \(MessageText.quoted(value)) as the value of \(word), not as a flag: \(swallowed.display) is not set by it"
                            + (swallowed.absentMeaning.map { " (\($0))" } ?? ""),
                        changesSettings: true))
                }
            }
            if flag.knob != .ignored {
                if let before = given[flag.long], before != value {
                    quirks.append(ArgumentQuirk(words: [word, value],
                        effect: "\(shown) is given more than once; istio-iptables keeps the last value (\(MessageText.quoted(value))), not \(MessageText.quoted(before))",
                        changesSettings: true))
                }
                given[flag.long] = value
            }
            do throws(IstioCaptureError) {
                switch flag.knob {
                case .proxyPort: config.proxyPort = try port(value, flag: shown)
                case .inboundCapturePort: config.inboundCapturePort = try port(value, flag: shown)
                case .inboundTunnelPort: config.inboundTunnelPort = try port(value, flag: shown)
                case .proxyUID: uids = try ids(value, flag: shown)
                case .proxyGID: gids = try ids(value, flag: shown)
                case .interceptionMode:
                    // istio-iptables tests for "TPROXY"; any other value installs REDIRECT.
                    config.interceptionMode = value == "TPROXY" ? .tproxy : .redirect
                    if value != "", value != "REDIRECT", value != "TPROXY" {
                        quirks.append(ArgumentQuirk(words: [word, value],
                            effect: "istio-iptables installs REDIRECT for any -m but TPROXY", changesSettings: value.uppercased() == "TPROXY"))
                    }
                case .tproxyMark: config.tproxyMark = try number(value, flag: shown)
                case .tproxyRouteTable: config.tproxyRouteTable = try number(value, flag: shown)
                case .inboundPortsInclude:
                    config.inboundPortsInclude = value == "*" ? .all : .some(try ports(value, flag: shown))
                case .inboundPortsExclude: config.inboundPortsExclude = try ports(value, flag: shown)
                case .outboundPortsInclude: config.outboundPortsInclude = try ports(value, flag: shown)
                case .outboundPortsExclude: config.outboundPortsExclude = try ports(value, flag: shown)
                case .outboundIPRangesInclude:
                    config.outboundIPRangesInclude = value == "*" ? .all : .some(try cidrs(value, flag: shown))
                case .outboundIPRangesExclude:
                    if value == "*" { throw .invalidValue(flag: shown, value: value, reason: "excluded ranges cannot be \"*\"") }
                    config.outboundIPRangesExclude = try cidrs(value, flag: shown)
                case .rerouteVirtualInterfaces: config.rerouteVirtualInterfaces = try interfaces(value, flag: shown)
                case .excludeInterfaces: config.excludeInterfaces = try interfaces(value, flag: shown)
                default: break
                }
            } catch {
                // Identities are resolved through the init image's /etc/passwd, which iptaudit cannot see; a list
                // past iptaudit's own length limit is iptaudit's refusal, not istio-iptables'.
                if flag.knob == .proxyUID || flag.knob == .proxyGID { throw error }
                if case .tooManyItems = error { throw error }
                fails(error)
            }
        }
        config.argumentQuirks = quirks
        // istio-iptables: an empty or absent -u means the istio-proxy user (1337); -g defaults to -u.
        if let uids { config.proxyUIDs = uids.isEmpty ? [IstioNames.proxyID] : uids }
        if let gids, !gids.isEmpty {
            config.proxyGIDs = gids
        } else {
            config.proxyGIDs = config.proxyUIDs
        }
        return config
    }

    // MARK: the flag table

    enum Knob {
        case proxyPort, inboundCapturePort, inboundTunnelPort, proxyUID, proxyGID, interceptionMode
        case tproxyMark, tproxyRouteTable, inboundPortsInclude, inboundPortsExclude, outboundPortsInclude
        case outboundPortsExclude, outboundIPRangesInclude, outboundIPRangesExclude, rerouteVirtualInterfaces
        case excludeInterfaces, redirectDNS, captureAllDNS, dropInvalid, dualStack, traceLogging, nativeNftables
        /// Accepted because istio-iptables accepts it, but it does not change the rules.
        case ignored
    }

    struct Flag {
        var long: String
        var short: Character?
        var isBoolean: Bool
        var knob: Knob
        /// The 1.x minors whose istio-iptables has the flag (from the constants each release's flag set is bound to);
        /// another release refuses to start on it.
        var minors: ClosedRange<Int> = 0...Int.max

        func exists(in version: IstioVersion) -> Bool { version.major != 1 || minors.contains(version.minor) }

        /// "1.24 and later", "1.11 to 1.17".
        var releases: String {
            minors.upperBound == Int.max ? "1.\(minors.lowerBound) and later" : minors.lowerBound == 0
                ? "1.\(minors.upperBound) and earlier" : "1.\(minors.lowerBound) to 1.\(minors.upperBound)"
        }
        var display: String { short.map { "-\($0)/--\(long)" } ?? "--\(long)" }

        /// The flag a whole word names (`-b`, `--istio-inbound-ports`, `-b=x`), if any.
        static func named(_ word: String) -> Flag? {
            if word.hasPrefix("--") {
                return lookup(String(word.dropFirst(2).prefix { $0 != "=" }), long: true)
            }
            return lookup(String(word.dropFirst().prefix(1)), long: false)
        }

        /// What istio-iptables does when the flag is not given, for flags whose absence changes capture.
        var absentMeaning: String? {
            switch knob {
            case .inboundPortsInclude: "so no inbound port is captured"
            case .inboundPortsExclude: "so no inbound port is excluded, Envoy's own 15020, 15021 and 15090 included"
            case .outboundIPRangesInclude: "so no outbound destination is captured"
            case .outboundIPRangesExclude: "so no destination is excluded"
            case .outboundPortsExclude: "so no outbound port is excluded"
            case .outboundPortsInclude: "so no outbound port is always captured"
            case .excludeInterfaces: "so no interface is excluded"
            case .interceptionMode: "so inbound capture is REDIRECT"
            case .proxyUID: "so the proxy is the istio-proxy user, 1337"
            default: nil
            }
        }

        static func lookup(_ name: String, long: Bool) -> Flag? {
            if long { return all.first { $0.long == name } }
            return all.first { $0.short.map(String.init) == name }
        }

        static let all: [Flag] = [
            Flag(long: "envoy-port", short: "p", isBoolean: false, knob: .proxyPort),
            Flag(long: "inbound-capture-port", short: "z", isBoolean: false, knob: .inboundCapturePort),
            Flag(long: "inbound-tunnel-port", short: "e", isBoolean: false, knob: .inboundTunnelPort),
            Flag(long: "proxy-uid", short: "u", isBoolean: false, knob: .proxyUID),
            Flag(long: "proxy-gid", short: "g", isBoolean: false, knob: .proxyGID),
            Flag(long: "istio-inbound-interception-mode", short: "m", isBoolean: false, knob: .interceptionMode),
            Flag(long: "istio-inbound-tproxy-mark", short: "t", isBoolean: false, knob: .tproxyMark),
            Flag(long: "istio-inbound-tproxy-route-table", short: "r", isBoolean: false, knob: .tproxyRouteTable),
            Flag(long: "istio-inbound-ports", short: "b", isBoolean: false, knob: .inboundPortsInclude),
            Flag(long: "istio-local-exclude-ports", short: "d", isBoolean: false, knob: .inboundPortsExclude),
            Flag(long: "istio-exclude-interfaces", short: "c", isBoolean: false, knob: .excludeInterfaces, minors: 12...Int.max),
            Flag(long: "istio-service-cidr", short: "i", isBoolean: false, knob: .outboundIPRangesInclude),
            Flag(long: "istio-service-exclude-cidr", short: "x", isBoolean: false, knob: .outboundIPRangesExclude),
            Flag(long: "istio-outbound-ports", short: "q", isBoolean: false, knob: .outboundPortsInclude),
            Flag(long: "istio-local-outbound-ports-exclude", short: "o", isBoolean: false, knob: .outboundPortsExclude),
            Flag(long: "kube-virt-interfaces", short: "k", isBoolean: false, knob: .rerouteVirtualInterfaces),
            Flag(long: "redirect-dns", short: nil, isBoolean: true, knob: .redirectDNS),
            Flag(long: "capture-all-dns", short: nil, isBoolean: true, knob: .captureAllDNS, minors: 11...Int.max),
            Flag(long: "drop-invalid", short: nil, isBoolean: true, knob: .dropInvalid, minors: 13...Int.max),
            Flag(long: "dual-stack", short: nil, isBoolean: true, knob: .dualStack, minors: 20...Int.max),
            Flag(long: "iptables-trace-logging", short: nil, isBoolean: true, knob: .traceLogging, minors: 12...Int.max),
            Flag(long: "native-nftables", short: nil, isBoolean: true, knob: .nativeNftables, minors: 27...Int.max),
            // Flags that do not shape the rules.
            Flag(long: "dry-run", short: "n", isBoolean: true, knob: .ignored),
            Flag(long: "restore-format", short: "f", isBoolean: true, knob: .ignored, minors: 0...23),
            Flag(long: "skip-rule-apply", short: nil, isBoolean: true, knob: .ignored),
            Flag(long: "run-validation", short: nil, isBoolean: true, knob: .ignored),
            Flag(long: "cni-mode", short: nil, isBoolean: true, knob: .ignored, minors: 11...Int.max),
            Flag(long: "host-nsenter-exec", short: nil, isBoolean: true, knob: .ignored, minors: 15...19),
            Flag(long: "reconcile", short: nil, isBoolean: true, knob: .ignored, minors: 24...Int.max),
            Flag(long: "cleanup-only", short: nil, isBoolean: true, knob: .ignored, minors: 24...Int.max),
            Flag(long: "force-apply", short: nil, isBoolean: true, knob: .ignored, minors: 24...Int.max),
            Flag(long: "clean", short: nil, isBoolean: true, knob: .ignored, minors: 0...19),
            Flag(long: "log_as_json", short: nil, isBoolean: true, knob: .ignored),
            Flag(long: "iptables-probe-port", short: nil, isBoolean: false, knob: .ignored),
            Flag(long: "probe-timeout", short: nil, isBoolean: false, knob: .ignored),
            Flag(long: "network-namespace", short: nil, isBoolean: false, knob: .ignored, minors: 11...Int.max),
            Flag(long: "force-iptables-binary", short: nil, isBoolean: false, knob: .ignored, minors: 28...Int.max),
            Flag(long: "iptables-version", short: nil, isBoolean: false, knob: .ignored, minors: 20...21),
            Flag(long: "output-paths", short: nil, isBoolean: false, knob: .ignored, minors: 11...17),
            Flag(long: "log_output_level", short: nil, isBoolean: false, knob: .ignored),
            Flag(long: "log_stacktrace_level", short: nil, isBoolean: false, knob: .ignored),
            Flag(long: "log_caller", short: nil, isBoolean: false, knob: .ignored),
            Flag(long: "log_target", short: nil, isBoolean: false, knob: .ignored),
            Flag(long: "log_rotate", short: nil, isBoolean: false, knob: .ignored),
            Flag(long: "log_rotate_max_age", short: nil, isBoolean: false, knob: .ignored),
            Flag(long: "log_rotate_max_size", short: nil, isBoolean: false, knob: .ignored),
            Flag(long: "log_rotate_max_backups", short: nil, isBoolean: false, knob: .ignored),
        ]
    }

    // MARK: value parsing

    static func isProgramName(_ word: String) -> Bool {
        let base = word.split(separator: "/").last.map(String.init) ?? word
        return base == "istio-iptables" || base == "pilot-agent"
    }

    /// Go's `strconv.ParseBool`, which pflag and Istio's env helpers use.
    static func parseBool(_ text: String) -> Bool? {
        switch text {
        case "1", "t", "T", "TRUE", "true", "True": return true
        case "0", "f", "F", "FALSE", "false", "False": return false
        default: return nil
        }
    }

    /// Comma list with empty items dropped (istio-iptables' `config.Split`), refused past `InputLimits.listItems`
    /// before any item is interpreted; `what` names the flag or annotation.
    static func items(_ text: String, _ what: String) throws(IstioCaptureError) -> [String] {
        let items = text.split(separator: ",", omittingEmptySubsequences: true).map(String.init)
        try checkLength(items.count, what)
        return items
    }

    static func checkLength(_ count: Int, _ what: String) throws(IstioCaptureError) {
        let limit = InputLimits.current.listItems
        if count > limit { throw .tooManyItems(what: what, count: count, limit: limit) }
    }

    static func port(_ text: String, flag: String) throws(IstioCaptureError) -> UInt16 {
        guard let p = UInt16(text), p != 0 else { throw .invalidValue(flag: flag, value: text, reason: "expected a port number 1-65535") }
        return p
    }

    static func ports(_ text: String, flag: String) throws(IstioCaptureError) -> [UInt16] {
        var out: [UInt16] = []
        for item in try items(text, flag) {
            guard let p = UInt16(item), p != 0 else {
                throw .invalidValue(flag: flag, value: text, reason: "\(MessageText.quoted(item)) is not a port number")
            }
            out.append(p)
        }
        return out
    }

    static func ids(_ text: String, flag: String) throws(IstioCaptureError) -> [UInt32] {
        var out: [UInt32] = []
        for item in try items(text, flag) {
            guard let id = UInt32(item) else {
                throw .invalidValue(flag: flag, value: text, reason: "\(MessageText.quoted(item)) is not a numeric id")
            }
            out.append(id)
        }
        return out
    }

    /// A decimal or `0x` hexadecimal number, as iptables accepts for marks and routing tables.
    static func number(_ text: String, flag: String) throws(IstioCaptureError) -> UInt32 {
        let n = text.hasPrefix("0x") || text.hasPrefix("0X") ? UInt32(text.dropFirst(2), radix: 16) : UInt32(text)
        guard let n else { throw .invalidValue(flag: flag, value: text, reason: "expected a number") }
        return n
    }

    static func cidrs(_ text: String, flag: String) throws(IstioCaptureError) -> [String] {
        var out: [String] = []
        for item in try items(text, flag) {
            guard CIDR(item) != nil else {
                throw .invalidValue(flag: flag, value: text, reason: "\(MessageText.quoted(item)) is not an address/prefix-length CIDR")
            }
            out.append(item)
        }
        return out
    }

    static func interfaces(_ text: String, flag: String) throws(IstioCaptureError) -> [String] {
        let names = try items(text, flag)
        for name in names where name.count > 15 || name.contains(where: { $0 == " " || $0 == "/" }) {
            throw .invalidValue(flag: flag, value: text, reason: "\(MessageText.quoted(name)) is not an interface name")
        }
        return names
    }
}

/// A CIDR as istio-iptables reads it (Go's `netip.ParsePrefix`): `ADDR/LEN`, the address as written.
struct CIDR: Hashable {
    var address: IPAddress
    var prefixLength: Int

    init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPAddress(parts[0]), !parts[1].isEmpty,
              parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let len = Int(parts[1]),
              len <= address.family.addressBits else { return nil }
        self.address = address
        self.prefixLength = len
    }

    var family: Family { address.family }

    /// Whether the written address is a loopback address (Go's `Addr.IsLoopback`).
    var isLoopback: Bool { address.isLoopback }

    /// The `-d` match iptables stores (address masked to the prefix).
    var match: AddressMatch { AddressMatch(address: address, prefixLength: prefixLength) }
}

extension CaptureConfiguration {
    /// Applies istio-iptables' environment knobs: `ISTIO_META_DNS_CAPTURE`, `INVALID_DROP`, `ISTIO_DUAL_STACK`,
    /// `ISTIO_OUTBOUND_OWNER_GROUPS`, `ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE`, `ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR`,
    /// `NATIVE_NFTABLES` (the variable `--native-nftables` is bound to, 1.27+) and 1.10's
    /// `ISTIO_META_DNS_CONNTRACK_ZONE`.
    ///
    /// Unparsable booleans are ignored, as istio-iptables ignores them. Variables that are absent leave the
    /// configuration unchanged; to let flags win over the environment, use `IstioArguments.parse(arguments:environment:)`.
    public mutating func applyEnvironment(_ environment: [String: String]) throws(IstioCaptureError) {
        typealias E = IstioIptablesEnvironment
        func bool(_ name: String) -> Bool? { environment[name].flatMap(IstioArguments.parseBool) }
        if let b = bool(E.dnsCapture) { redirectDNS = b }
        if let b = bool(E.dropInvalid) { dropInvalid = b }
        if let b = bool(E.dualStack) { dualStack = b }
        if let b = bool(E.dnsConntrackZone) { legacyDNSConntrackZones = b }
        if let b = bool(E.nativeNftables) { nativeNftables = b }
        if let include = environment[E.ownerGroups] {
            if include == "*" {
                ownerGroupsInclude = .all
            } else {
                let groups = try IstioArguments.items(include, E.ownerGroups)
                guard groups.count <= 64 else {
                    throw .invalidEnvironment(name: E.ownerGroups, value: include,
                                              reason: "at most 64 groups can be captured, got \(groups.count)")
                }
                ownerGroupsInclude = .some(groups)
            }
        }
        if let exclude = environment[E.ownerGroupsExclude] {
            ownerGroupsExclude = try IstioArguments.items(exclude, E.ownerGroupsExclude)
        }
        if let cidr = environment[E.loopbackCIDR] {
            guard let c = CIDR(cidr), c.family == .ipv4, c.isLoopback, (8...32).contains(c.prefixLength) else {
                throw .invalidEnvironment(name: E.loopbackCIDR, value: cidr,
                                          reason: "expected an IPv4 loopback CIDR with a prefix length of 8 to 32")
            }
            hostIPv4LoopbackCIDR = cidr
        }
    }
}

/// The environment variables istio-iptables reads (`CaptureConfiguration.applyEnvironment`), named once: the proxy
/// container's view of its pod keeps exactly these of its environment, and a bundle carries no other.
public enum IstioIptablesEnvironment {
    public static let dnsCapture = "ISTIO_META_DNS_CAPTURE"
    public static let dropInvalid = "INVALID_DROP"
    public static let dualStack = "ISTIO_DUAL_STACK"
    public static let dnsConntrackZone = "ISTIO_META_DNS_CONNTRACK_ZONE"
    public static let nativeNftables = "NATIVE_NFTABLES"
    public static let ownerGroups = "ISTIO_OUTBOUND_OWNER_GROUPS"
    public static let ownerGroupsExclude = "ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE"
    public static let loopbackCIDR = "ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR"

    public static let all: [String] = [dnsCapture, dropInvalid, dualStack, dnsConntrackZone, nativeNftables, ownerGroups, ownerGroupsExclude, loopbackCIDR]
}
