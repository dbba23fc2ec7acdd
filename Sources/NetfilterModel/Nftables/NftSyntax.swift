/// Renders native nf_tables rules as `nft list ruleset` (nft 1.0.6) prints them: tabs, braces, standard
/// priorities by name, counters, and each statement in nft syntax.
///
/// `nft list ruleset` is the decoder everyone trusts for nf_tables, as iptables-save is for x_tables; the tests
/// load Istio's native-nftables goldens and require this rendering to equal nft's output byte for byte.
/// What nft's JSON does not carry cannot come back: table and chain comments, a table owner's program name,
/// `typeof` set declarations (printed by type instead), a base chain's device, the milliseconds of element
/// expiry. Statements and expressions the model keeps only as JSON (`.other`; `fib`, `rt` and `socket` aside)
/// are printed as that JSON, which nft would not accept, so they stay visible instead of being dropped.
public enum NftSyntax {
    /// The whole ruleset; empty when there are no tables, like `nft list ruleset`.
    public static func render(_ tables: [NftTable], handles: Bool = false) -> String {
        tables.map { render($0, handles: handles) }.joined()
    }

    /// One table, ending in a newline. `handles` adds nft -a's `# handle N` comments.
    public static func render(_ table: NftTable, handles: Bool = false) -> String {
        var out = "table \(table.family.rawValue) \(table.name) {"
        if handles { out += " # handle \(table.handle)" }
        out += "\n"
        var delimiter = ""
        if !table.flags.isEmpty {
            out += "\tflags \(table.flags.joined(separator: ","))\n"
            delimiter = "\n"
        }
        for object in table.objects {
            out += delimiter + render(object, handles: handles)
            delimiter = "\n"
        }
        for set in table.sets {
            out += delimiter + render(set, handles: handles)
            delimiter = "\n"
        }
        for chain in table.chains {
            out += delimiter + render(chain, family: table.family, handles: handles)
            delimiter = "\n"
        }
        return out + "}\n"
    }

    static func render(_ chain: NftChain, family: NftFamily, handles: Bool) -> String {
        var out = "\tchain \(chain.name) {"
        if handles { out += " # handle \(chain.handle)" }
        out += "\n"
        if let base = chain.base {
            out += "\t\ttype \(base.type.rawValue) hook \(base.hook.rawValue)"
            if let device = base.device { out += " device \"\(device)\"" }
            out += " priority \(priority(base.priority, family: family, hook: base.hook));"
            out += " policy \(base.policy.rawValue);\n"
        }
        for rule in chain.rules {
            out += "\t\t" + render(rule, handles: handles) + "\n"
        }
        return out + "\t}\n"
    }

    /// One rule's statements on one line, as nft prints them inside a chain (no indentation, no newline).
    public static func render(_ rule: NftRule, handles: Bool = false) -> String {
        var out = rule.statements.map(NftRuleSyntax.statement).joined(separator: " ")
        if let comment = rule.comment { out += " comment \"\(comment)\"" }
        if handles { out += " # handle \(rule.handle)" }
        return out
    }

    /// A base chain's priority, by its standard name where nft 1.0.6 uses one (`prio2str`): a standard
    /// priority within 10 of the value, if that name is valid for the family and hook (`dstnat` only at
    /// prerouting, `srcnat` only at postrouting, ...); the number otherwise.
    public static func priority(_ value: Int, family: NftFamily, hook: NftBaseChain.Hook) -> String {
        let standard: [(value: Int, name: String)] = family == .bridge
            ? [(-300, "dstnat"), (-200, "filter"), (100, "out"), (300, "srcnat")]
            : [(-300, "raw"), (-150, "mangle"), (-100, "dstnat"), (0, "filter"), (50, "security"), (100, "srcnat")]
        for (base, name) in standard where abs(value - base) <= 10 {
            guard standardPriorityApplies(name, family: family, hook: hook) else { break }
            let offset = value - base
            return offset > 0 ? "\(name) + \(offset)" : offset < 0 ? "\(name) - \(-offset)" : name
        }
        return String(value)
    }

    /// nft's `std_prio_family_hook_compat`.
    static func standardPriorityApplies(_ name: String, family: NftFamily, hook: NftBaseChain.Hook) -> Bool {
        if family == .bridge {
            switch name {
            case "dstnat": return hook == .prerouting
            case "filter": return true
            case "out": return hook == .output
            case "srcnat": return hook == .postrouting
            default: return false
            }
        }
        let ipFamilies: Set<NftFamily> = [.inet, .ip, .ip6]
        switch name {
        case "filter": return ipFamilies.contains(family) || family == .arp || family == .netdev
        case "raw", "mangle", "security": return ipFamilies.contains(family)
        case "dstnat": return ipFamilies.contains(family) && hook == .prerouting
        case "srcnat": return ipFamilies.contains(family) && hook == .postrouting
        default: return false
        }
    }

    static func render(_ set: NftSet, handles: Bool) -> String {
        var out = "\t\(set.kind.rawValue) \(set.name) {"
        if handles { out += " # handle \(set.handle)" }
        out += "\n\t\ttype \(set.keyType.joined(separator: " . "))"
        if let data = set.dataType { out += " : \(data)" }
        out += "\n"
        if !set.flags.contains("constant") {
            if let policy = set.policy { out += "\t\tpolicy \(policy)\n" }
            if let size = set.size, size > 0 { out += "\t\tsize \(size)\n" }
        }
        // "timeout" is implied by a default timeout, and nft leaves it out then.
        let flags = ["constant", "interval", "timeout"].filter {
            set.flags.contains($0) && !($0 == "timeout" && set.timeout != nil)
        }
        if !flags.isEmpty { out += "\t\tflags \(flags.joined(separator: ","))\n" }
        if let timeout = set.timeout { out += "\t\ttimeout \(NftRuleSyntax.time(Int64(timeout)))\n" }
        if let gc = set.gcInterval { out += "\t\tgc-interval \(NftRuleSyntax.time(Int64(gc)))\n" }
        if let comment = set.comment { out += "\t\tcomment \"\(comment)\"\n" }
        if !set.elements.isEmpty {
            let keyType = NftValueType.named(set.keyType)
            let dataType = set.dataType.map { NftValueType.named([$0]) } ?? .plain
            let items = set.elements.map { NftRuleSyntax.expression($0, as: keyType, data: dataType) }
            out += "\t\telements = { "
            let perLine = NftValueType.elementsPerLine(set.keyType)
            for (i, item) in items.enumerated() {
                if i > 0 {
                    out += perLine.map { i % $0 != 0 } ?? false ? ", " : ",\n\t\t\t     "
                }
                out += item
            }
            out += " }\n"
        }
        return out + "\t}\n"
    }

    /// Named counters are printed; other objects (quotas, helpers, flowtables, ...) are not rendered yet.
    static func render(_ object: NftObject, handles: Bool) -> String {
        var head = "\t\(object.kind) \(object.name) {"
        if handles { head += " # handle \(object.handle)" }
        if object.kind == "counter", let packets = object.body["packets"]?.integerValue, let bytes = object.body["bytes"]?.integerValue {
            return head + "\n\t\tpackets \(packets) bytes \(bytes)\n\t}\n"
        }
        return head + "\n\t\t# not rendered by iptaudit\n\t}\n"
    }
}
