import NetfilterModel

/// The `show --format list` view: each table exactly as `iptables -L -v -n --line-numbers -t TABLE` (or
/// `ip6tables`) of iptables 1.8.9 prints it, so the listing can be diffed against the kernel's own tool.
///
/// One table prints as that command's output alone. Several tables print one after another, each introduced by a
/// `# iptables -L -v -n --line-numbers -t TABLE` line naming the command it equals and separated by a blank line.
/// Annotations, when asked for, end a rule's line with `  # NOTE`; with them the text is no longer iptables'.
public enum RulesetListing {
    /// Optional per-rule annotations (e.g. a rule's role in Istio's scheme), keyed by table, family and position.
    public typealias Annotator = @Sendable (Table, RulePosition, Rule) -> String?

    public static func render(_ ruleset: Ruleset, annotate: Annotator? = nil) -> String {
        if ruleset.tables.count == 1 { return render(ruleset.tables[0], annotate: annotate) }
        return ruleset.tables.map { "# \(command(for: $0))\n" + render($0, annotate: annotate) }.joined(separator: "\n")
    }

    /// The command whose output a table's block equals. A native nftables table has none: it is shown in
    /// iptables' columns as iptaudit normalized it.
    public static func command(for table: Table) -> String {
        if table.nativeFamily != nil {
            return "native nftables table \(table.name.rawValue) (\(table.family == .ipv4 ? "IPv4" : "IPv6")), as iptaudit normalizes it; no iptables -L lists it"
        }
        return "\(table.family == .ipv4 ? "iptables" : "ip6tables") -L -v -n --line-numbers -t \(table.name.rawValue)"
    }

    public static func describe(_ backend: Backend) -> String {
        switch backend {
        case .legacy: "legacy x_tables via libiptc"
        case .nft: "nf_tables via iptables-nft"
        case .text: "saved rules"
        }
    }

    /// One table as `iptables -L -v -n --line-numbers -t TABLE` prints it (iptables 1.8.9 `list_entries`).
    public static func render(_ table: Table, annotate: Annotator? = nil) -> String {
        var references: [ChainName: Int] = [:]
        for chain in table.chains { for rule in chain.rules { if let c = rule.target.chainReference { references[c, default: 0] += 1 } } }
        var out = ""
        for (index, chain) in table.chains.enumerated() {
            if index > 0 { out += "\n" }
            out += "Chain \(chain.name.rawValue)"
            if let policy = chain.policy {
                out += " (policy \(policy.rawValue) \(count(chain.policyCounters.packets, padded: false))packets, "
                    + "\(count(chain.policyCounters.bytes, padded: false))bytes)\n"
            } else {
                out += " (\(references[chain.name] ?? 0) references)\n"
            }
            out += header
            for (i, rule) in chain.rules.enumerated() {
                out += line(rule, number: i + 1, family: table.family)
                if let note = annotate?(table, RulePosition(chain: chain.name, number: i + 1), rule) { out += "  # " + note }
                out += "\n"
            }
        }
        return out
    }

    /// The column header `print_header` writes under each chain (line numbers, counters, interfaces).
    static let header = "num   pkts bytes target     prot opt in     out     source               destination         \n"

    /// One rule's line (`print_firewall`): fixed-width columns, then `[goto]`, the matches and the target's text.
    static func line(_ rule: Rule, number: Int, family: Family) -> String {
        var s = padded("\(number)", 4) + " "
        s += count(rule.counters.packets, padded: true) + count(rule.counters.bytes, padded: true)
        s += padded(targetName(rule.target), 9) + " "
        s += (rule.protocol?.inverted == true ? "!" : " ") + padded("\(rule.protocol?.number ?? 0)", 4) + " "
        // ip6tables has no fragment flag and always prints `--`.
        switch (family, rule.fragment) {
        case (.ipv4, .some(let inverted)): s += (inverted ? "!f" : "-f") + " "
        default: s += "-- "
        }
        s += " " + padded(interface(rule.inInterface), 6) + " " + padded(interface(rule.outInterface), 6) + " "
        s += address(rule.source, family: family) + address(rule.destination, family: family)
        if case .goto = rule.target { s += "[goto] " }
        for m in rule.matches { s += ListingText.match(m, family: family) }
        s += ListingText.target(rule.target, family: family)
        return s
    }

    /// The target column: the extension's kernel name (CT also for `-j NOTRACK`), a chain, a verdict, or nothing.
    static func targetName(_ t: Target) -> String {
        switch t {
        case .ct: "CT"
        default: t.name
        }
    }

    static func interface(_ i: InterfaceMatch?) -> String {
        guard let i else { return "*" }
        return (i.inverted ? "!" : "") + i.text
    }

    static func address(_ a: AddressMatch?, family: Family) -> String {
        guard let a else { return " " + padded(family == .ipv4 ? "0.0.0.0/0" : "::/0", 19) + " " }
        return (a.inverted ? "!" : " ") + padded(ListingText.address(a), 19) + " "
    }

    /// `xtables_print_num` without `-x`: exact up to 99999, then rounded to K, M, G or T; `padded` for the
    /// columns, bare (with its trailing space) in a chain's policy line.
    static func count(_ n: UInt64, padded pad: Bool) -> String {
        var value = n
        var suffix = ""
        if value > 99999 {
            for unit in ["K", "M", "G", "T"] {
                value = (value + 500) / 1000
                suffix = unit
                if value <= 9999 || unit == "T" { break }
            }
        }
        let text = "\(value)" + suffix
        return (pad ? String(repeating: " ", count: max(0, 5 - text.count)) + text : text) + " "
    }

    static func padded(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }
}
