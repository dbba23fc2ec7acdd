import CaptureVerifier
import NetfilterModel

/// The human report of `iptaudit verify`: the chains involved in findings listed the way people read
/// `iptables -t nat -L`, with the deciding rules marked in place, then each finding explained with its
/// witness packet, path and fix. A clean pod gets a short summary of what was proven. Before them, per family,
/// the outbound and inbound walk through the rules (`walks`).
public enum VerificationText {
    public struct Style: Sendable {
        public var color: Bool
        public init(color: Bool) { self.color = color }
        func paint(_ s: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(s)\u{1B}[0m" : s }
        func bold(_ s: String) -> String { paint(s, "1") }
        func severity(_ sev: Severity) -> String {
            switch sev {
            case .error: paint("error", "1;31")
            case .warning: paint("warning", "1;33")
            case .info: paint("info", "36")
            }
        }
        func ok(_ s: String) -> String { paint(s, "1;32") }
    }

    public static func render(_ report: VerificationReport, ruleset: Ruleset, source: String, style: Style = Style(color: false)) -> String {
        var out: [String] = []
        out.append(style.bold("iptaudit verify") + " — \(source)")
        for line in report.configuration { out.append("  " + line) }
        for family in report.families {
            let native = ruleset.tables.filter { $0.family == family && $0.nativeFamily != nil }.map(\.name.rawValue)
            let iptables = ruleset.tables.contains { $0.family == family && $0.nativeFamily == nil && $0.ruleCount > 0 }
            if let b = ruleset.backends[family], iptables || native.isEmpty {
                out.append("  \(family): rules read from \(RulesetListing.describe(b))")
            }
            if !native.isEmpty { out.append("  \(family): native nftables tables \(native.joined(separator: ", "))") }
        }
        out.append("")

        let numbered = Array(report.findings.enumerated())
        out += walks(report.walks, findings: numbered, style: style)
        if !numbered.isEmpty {
            out += listing(numbered, ruleset: ruleset, style: style)
            out.append(style.bold("Findings"))
            out.append("")
            for (i, f) in numbered { out += explain(f, number: i + 1, style: style) }
        }

        let passed = report.obligations.filter { $0.status == .passed }.count
        let failed = report.obligations.filter { $0.status == .failed }.count
        let skipped = report.obligations.filter { $0.status == .notApplicable }.count
        let errors = report.findings.filter { $0.severity == .error }.count
        let warnings = report.findings.filter { $0.severity == .warning }.count
        if report.ok {
            let assumed = report.obligations.filter { !$0.assuming.isEmpty }.count
            let families = report.families.map(\.rawValue).joined(separator: " and ")
            let headline = report.assumptions.isEmpty ? "Capture proven"
                : "Capture proven for \(families), assuming " + report.assumptions.joined(separator: " and ")
            out.append(style.ok(headline) + (report.assumptions.isEmpty ? " for \(families)" : "") + ": "
                + "\(passed) obligations hold" + (assumed > 0 ? " (\(assumed) only under that assumption)" : "")
                + ", \(skipped) not applicable"
                + (warnings > 0 ? ", \(warnings) warning\(warnings == 1 ? "" : "s")" : "") + ".")
            for o in report.obligations where o.status == .passed {
                for p in o.proven { out.append((o.assuming.isEmpty ? "  ✓ " : "  ? ") + p + (o.assuming.isEmpty ? "" : " (assuming " + o.assuming.joined(separator: " and ") + ")")) }
            }
        } else {
            out.append(style.paint("Capture NOT proven", "1;31") + ": \(errors) error\(errors == 1 ? "" : "s"), "
                + "\(warnings) warning\(warnings == 1 ? "" : "s"); obligations: \(passed) hold, \(failed) fail, \(skipped) not applicable.")
        }
        return out.joined(separator: "\n") + "\n"
    }

    /// Each chain that a finding's rule or path touches, all its rules, the deciding rules marked.
    static func listing(_ findings: [(offset: Int, element: Finding)], ruleset: Ruleset, style: Style) -> [String] {
        struct ChainKey: Hashable { var family: Family; var table: TableName; var chain: ChainName }
        var order: [ChainKey] = []
        var noted: Set<ChainKey> = []
        var marks: [ChainKey: [Int: [String]]] = [:]
        func note(_ key: ChainKey) { if noted.insert(key).inserted { order.append(key) } }
        for (i, f) in findings {
            for step in f.path { note(ChainKey(family: f.family, table: step.table, chain: step.chain)) }
            if let t = f.table, let c = f.chain {
                let key = ChainKey(family: f.family, table: t, chain: c)
                note(key)
                if let n = f.ruleNumber { marks[key, default: [:]][n, default: []].append("[\(i + 1)] \(f.kind)") }
            }
        }
        var out: [String] = []
        var lastTable: (Family, TableName)?
        // One graph per table, not per chain listed: a path through thousands of chains stays linear.
        struct TableKey: Hashable { var family: Family; var table: TableName }
        var graphs: [TableKey: ChainGraph] = [:]
        for key in order {
            guard let table = ruleset.table(key.table, family: key.family), let chain = table.chain(key.chain) else { continue }
            if lastTable.map({ $0 != (key.family, key.table) }) ?? true {
                out.append(style.bold("\(key.family == .ipv4 ? "IPv4" : "IPv6") table \(key.table)"))
                lastTable = (key.family, key.table)
            }
            let tableKey = TableKey(family: key.family, table: key.table)
            let graph = graphs[tableKey] ?? ChainGraph(table)
            graphs[tableKey] = graph
            var header = "Chain \(chain.name)"
            if let p = chain.policy { header += " (policy \(p.rawValue))" } else {
                let refs = graph.referrers(chain.name)
                header += " (\(refs.count) reference\(refs.count == 1 ? "" : "s")\(refs.isEmpty ? "" : ": " + refs.map(\.description).joined(separator: ", ")))"
            }
            out.append(header)
            if chain.rules.isEmpty { out.append("      (no rules)") }
            for (i, rule) in chain.rules.enumerated() {
                let text = rule.native?.text ?? SaveSyntax.render(rule, in: chain.name, family: table.family)
                let mark = marks[key]?[i + 1].map { "   " + style.paint("◀ " + $0.joined(separator: ", "), "1;31") } ?? ""
                out.append(String(repeating: " ", count: max(0, 4 - "\(i + 1)".count)) + "\(i + 1)  " + text + mark)
            }
            out.append("")
        }
        return out
    }

    /// The walks, each rule as `iptables -L -v -n --line-numbers` lists it (`RulesetListing.line`, the listing's
    /// own definition) after its table and chain; a native nftables rule as nft prints it, since no `-L` lists it.
    /// A finding whose witness this walk is marks the hop (or the policy) where it breaks.
    static func walks(_ walks: [CaptureWalk], findings: [(offset: Int, element: Finding)], style: Style) -> [String] {
        guard !walks.isEmpty else { return [] }
        func place(_ table: TableName, _ chain: ChainName) -> String { "\(table) \(chain)" }
        let width = walks.flatMap { $0.hops.map { place($0.table, $0.chain).count } + [$0.end.map { place($0.table, $0.chain).count } ?? 0] }.max() ?? 0
        func pad(_ s: String) -> String { s + String(repeating: " ", count: max(0, width - s.count)) }
        let listed = walks.contains { !$0.native }
        var out = [style.bold("Walks") + " — one packet per direction through the rules, each rule as "
            + (listed ? "`iptables -L -v -n --line-numbers` lists it" : "nft lists it")]
        if listed { out.append("  " + pad("") + "  " + RulesetListing.header.trimmingTrailingSpaces) }
        for walk in walks {
            func witnessed(_ f: Finding) -> Bool {
                f.family == walk.family && f.witness.map { $0.packet == walk.packet || $0.packet == walk.twin } == true
            }
            func marks(_ table: TableName, _ chain: ChainName, _ number: Int?) -> [String] {
                findings.filter { _, f in witnessed(f) && f.table == table && f.chain == chain && f.ruleNumber == number }
                    .map { "[\($0.offset + 1)] \($0.element.kind)" }
            }
            let family = walk.family == .ipv4 ? "IPv4" : "IPv6"
            let witnessOf = findings.filter { $0.element.family == walk.family && $0.element.witness?.packet == walk.packet }.map { "[\($0.offset + 1)]" }
            out.append("")
            out.append(style.bold("\(family) \(walk.direction)") + ": \(walk.packet)"
                + (witnessOf.isEmpty ? "" : " (the witness of \(witnessOf.joined(separator: ", ")))")
                + (walk.native && listed ? " — native nftables: each rule as nft lists it, which no iptables -L shows" : ""))
            for hop in walk.hops {
                let text = walk.native
                    ? String(repeating: " ", count: max(0, 4 - "\(hop.ruleNumber)".count)) + "\(hop.ruleNumber)  " + (hop.rule.native?.text ?? SaveSyntax.render(hop.rule, in: hop.chain, family: walk.family))
                    : RulesetListing.line(hop.rule, number: hop.ruleNumber, family: walk.family).trimmingTrailingSpaces
                let note = hop.exempt.map { e in
                    !hop.taken ? "not taken; \(e.who): \(e.action)"
                        : e.parts ? "\(e.who) does not match: \(e.action)" : "\(e.who) is taken here too: not exempt"
                }
                let m = hop.taken ? marks(hop.table, hop.chain, hop.ruleNumber) : []
                let mark = (note.map { "   ◀ " + $0 } ?? "")
                    + (m.isEmpty ? "" : "   " + style.paint("◀ " + m.joined(separator: ", "), "1;31"))
                out.append("  " + pad(place(hop.table, hop.chain)) + "  " + text + mark)
            }
            var ending = walk.disposition.action
            if let end = walk.end, case .policy(let p) = end.action { ending = "\(end.table) \(end.chain) policy \(p.rawValue)" }
            let m = walk.end.map { marks($0.table, $0.chain, nil) } ?? []
            out.append("  → " + ending + ": " + walk.disposition.summary
                       + (m.isEmpty ? "" : "   " + style.paint("◀ " + m.joined(separator: ", "), "1;31")))
        }
        out.append("")
        return out
    }

    static func explain(_ f: Finding, number: Int, style: Style) -> [String] {
        var out: [String] = []
        let where_ = f.location.isEmpty ? "" : " at \(f.location)"
        out.append("[\(number)] \(style.severity(f.severity)) \(style.bold(f.kind.rawValue)) (\(f.family))\(where_)")
        out.append("    " + f.message)
        if let r = f.ruleText {
            out.append("    rule:    " + r + (f.ruleHandle.map { " # handle \($0)" } ?? "") + (f.ruleOrigin.map { "   (\($0))" } ?? ""))
        }
        if let w = f.witness {
            out.append("    witness: " + w.text)
            out.append("    outcome: " + w.verdict.description)
        }
        if !f.path.isEmpty { out.append("    path:    " + f.path.map(\.description).joined(separator: " → ")) }
        if let fix = f.fix { out.append("    fix:     " + fix) }
        out.append("")
        return out
    }
}

private extension String {
    /// The listing pads its last column; a report line ends at its last character.
    var trimmingTrailingSpaces: String {
        String(self[..<(lastIndex { $0 != " " && $0 != "\n" }.map { index(after: $0) } ?? startIndex)])
    }
}
