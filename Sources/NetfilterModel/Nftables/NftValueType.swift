/// How nft prints a constant, which depends on what it is compared with or assigned to: nft's JSON says
/// `1337` where the text says `0x00000539` (a mark) and `lo` where it says `"lo"` (an interface name).
/// A small mirror of the datatypes of nft 1.0.6 (`meta_templates`, `ct_templates`, the payload templates).
enum NftValueType: Hashable, Sendable {
    /// Symbols, addresses and decimal numbers, printed as given (`tcp`, `10.0.0.1`, `15001`).
    case plain
    /// `mark_type`: `0x%08x`.
    case mark
    /// Raw header bits (`@nh,0,8 0x45`): `0x%x`.
    case hex
    /// `string_type`, `ifname_type`, `ifindex_type`: in double quotes.
    case quoted
    /// `boolean_type`: `exists` / `missing`.
    case boolean
    /// A bitmask (`ct state`, `ct status`, `tcp flags`): several flags join with commas, and an explicit `==`
    /// before a single flag is printed.
    case bitmask
    /// `time_type`, JSON seconds: `1h2m3s`.
    case time
    /// A concatenation `a . b`, one type per component.
    case concat([NftValueType])
    case verdict

    /// The type of `expression`'s value, as far as the text form needs it.
    static func of(_ expression: NftExpression) -> NftValueType {
        switch expression {
        case .meta(let key): ofMeta(key)
        case .ct(let key, _): ofConntrack(key)
        case .payload(.field(let proto, let field)): ofPayload(proto, field)
        case .payload(.raw): .hex
        case .binary(_, let left, _): of(left)
        case .concat(let items): .concat(items.map(of))
        case .other(let json): ofOther(json)
        default: .plain
        }
    }

    static func ofMeta(_ key: String) -> NftValueType {
        switch key {
        case "mark": .mark
        case "iif", "oif", "iifname", "oifname", "ibrname", "obrname", "sdif", "sdifname", "iifkind", "oifkind": .quoted
        case "ipsec", "secpath": .boolean
        default: .plain
        }
    }

    static func ofConntrack(_ key: String) -> NftValueType {
        switch key {
        case "mark": .mark
        case "helper": .quoted
        case "state", "status", "event", "label": .bitmask
        case "expiration": .time
        default: .plain
        }
    }

    static func ofPayload(_ proto: String, _ field: String) -> NftValueType {
        proto == "tcp" && field == "flags" ? .bitmask : .plain
    }

    /// The `fib`, `rt` and `socket` expressions kept as JSON.
    static func ofOther(_ json: NftJSON) -> NftValueType {
        if json["socket"]?["key"]?.stringValue == "mark" { return .mark }
        if let result = json["fib"]?["result"]?.stringValue, result == "oif" || result == "oifname" { return .quoted }
        return .plain
    }

    /// The type named by a set declaration (`ipv4_addr`, `mark`, `ifname`, ...).
    static func named(_ names: [String]) -> NftValueType {
        guard names.count == 1 else { return .concat(names.map { named([$0]) }) }
        switch names[0] {
        case "mark": return .mark
        case "ifname", "iface_index", "string": return .quoted
        case "boolean": return .boolean
        case "ct_state", "ct_status", "ct_event", "ct_label", "tcp_flag": return .bitmask
        case "time": return .time
        case "verdict": return .verdict
        default: return .plain
        }
    }

    /// Elements per line in a named set's `elements = { ... }` (nft's `calculate_delim`); nil: one per line.
    static func elementsPerLine(_ names: [String]) -> Int? {
        guard names.count == 1 else { return nil }
        switch names[0] {
        case "nf_proto", "integer", "arp_op", "inet_proto", "inet_service", "tcp_flag", "dccp_pkttype", "mark",
             "iface_index", "classid", "uid", "gid", "ct_dir":
            return 5
        case "ipv4_addr", "ct_state", "ct_status", "pkttype":
            return 2
        default:
            return nil
        }
    }
}
