import NetfilterModel

/// The `show --format list` view: what people read from `iptables -t nat -L -n -v --line-numbers`,
/// but with interfaces always shown, addresses numeric, one rule per line, and each chain's references listed.
public enum RulesetListing {
    /// Optional per-rule annotations (e.g. a rule's role in Istio's scheme), keyed by table, family and position.
    public typealias Annotator = @Sendable (Table, RulePosition, Rule) -> String?

    public static func render(_ ruleset: Ruleset, annotate: Annotator? = nil) -> String {
        var out: [String] = []
        for table in ruleset.tables {
            let backend = table.nativeFamily != nil ? " — native nftables"
                : ruleset.backends[table.family].map { " — \(describe($0))" } ?? ""
            out.append("Table \(table.name) (\(table.family == .ipv4 ? "IPv4" : "IPv6")\(backend))")
            out.append("")
            out.append(render(table, annotate: annotate))
        }
        return out.joined(separator: "\n")
    }

    public static func describe(_ backend: Backend) -> String {
        switch backend {
        case .legacy: "legacy x_tables via libiptc"
        case .nft: "nf_tables via iptables-nft"
        case .text: "saved rules"
        }
    }

    public static func render(_ table: Table, annotate: Annotator? = nil) -> String {
        let graph = ChainGraph(table)
        var lines: [String] = []
        for chain in table.chains {
            var header = "Chain \(chain.name)"
            if let policy = chain.policy {
                header += " (policy \(policy.rawValue) \(chain.policyCounters.packets) packets, \(chain.policyCounters.bytes) bytes)"
            } else {
                let refs = graph.referrers[chain.name] ?? []
                let noun = refs.count == 1 ? "reference" : "references"
                header += refs.isEmpty ? " (0 references — unreachable)"
                    : " (\(refs.count) \(noun): \(refs.map(\.description).joined(separator: ", ")))"
            }
            lines.append(header)
            let rows: [[String]] = chain.rules.enumerated().map { i, rule in
                let pos = RulePosition(chain: chain.name, number: i + 1)
                var row = [
                    "\(i + 1)", "\(rule.counters.packets)", "\(rule.counters.bytes)",
                    targetColumn(rule.target),
                    rule.protocol.map { ($0.inverted ? "!" : "") + SaveSyntax.protocolName($0.number) } ?? "all",
                    rule.inInterface.map { ($0.inverted ? "!" : "") + $0.text } ?? "*",
                    rule.outInterface.map { ($0.inverted ? "!" : "") + $0.text } ?? "*",
                    addressColumn(rule.source, family: table.family),
                    addressColumn(rule.destination, family: table.family),
                    details(rule, family: table.family),
                ]
                if let note = annotate?(table, pos, rule) { row[9] += (row[9].isEmpty ? "" : "  ") + "# " + note }
                return row
            }
            let head = ["num", "pkts", "bytes", "target", "prot", "in", "out", "source", "destination", ""]
            if rows.isEmpty {
                lines.append("  (no rules)")
            } else {
                lines += columns([head] + rows, rightAligned: [0, 1, 2])
            }
            lines.append("")
        }
        return lines.joined(separator: "\n")
    }

    static func targetColumn(_ t: Target) -> String {
        switch t {
        case .continue: return "-"
        case .goto(let c): return "goto " + c.rawValue
        default: return t.name
        }
    }

    static func addressColumn(_ a: AddressMatch?, family: Family) -> String {
        guard let a, !a.isWildcard else { return family == .ipv4 ? "0.0.0.0/0" : "::/0" }
        return (a.inverted ? "!" : "") + a.cidrText
    }

    /// Matches, fragment flag and target options in save syntax, which is unambiguous and copy-pastable.
    static func details(_ rule: Rule, family: Family) -> String {
        var parts: [String] = []
        if let inv = rule.fragment { parts.append((inv ? "! " : "") + "-f") }
        for m in rule.matches { parts.append("-m \(m.name)" + SaveSyntax.matchOptions(m, family: family)) }
        // Only a target's options belong here; its name is in the target column.
        let target = SaveSyntax.targetText(rule.target, family: family)
        let prefix = rule.target.chainReference != nil || target.isEmpty ? target : " -j " + rule.target.name
        if target.hasPrefix(prefix), target.count > prefix.count {
            parts.append(String(target.dropFirst(prefix.count + 1)))
        }
        return parts.joined(separator: " ")
    }

    static func columns(_ rows: [[String]], rightAligned: Set<Int>) -> [String] {
        guard let width = rows.first?.count else { return [] }
        var widths = [Int](repeating: 0, count: width)
        for row in rows { for (i, cell) in row.enumerated() where i < width - 1 { widths[i] = max(widths[i], cell.count) } }
        return rows.map { row in
            var line = ""
            for (i, cell) in row.enumerated() {
                if i == width - 1 {
                    line += cell
                } else {
                    let pad = String(repeating: " ", count: widths[i] - cell.count)
                    line += (rightAligned.contains(i) ? pad + cell : cell + pad) + " "
                }
            }
            while line.hasSuffix(" ") { line.removeLast() }
            return line
        }
    }
}
