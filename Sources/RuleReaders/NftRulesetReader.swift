import NetfilterModel

/// Reads rules that live in nf_tables through the iptables-nft compatibility layer, by running
/// `iptables-nft-save` / `ip6tables-nft-save` inside the target namespace and parsing its text.
///
/// Istio 1.26+ proxy images default to iptables-nft, so on modern pods the legacy tables are empty and this is
/// where the rules are. `iptables-nft-save` stays the trusted decoder of iptables-nft's xt-compat expressions;
/// it only lists (no xtables lock, no table created). It is started by `HelperProcess` on the namespace thread,
/// so it runs in the pod's namespace without `nsenter`.
public struct NftRulesetReader: RulesetReader {
    public var namespacePath: String?
    public init(namespacePath: String? = nil) { self.namespacePath = namespacePath }

    public var sourceDescription: String { "nf_tables (iptables-nft-save)" }

    public func read(_ request: ReadRequest) throws(RuleReaderError) -> Ruleset {
        try readReportingHidden(request).ruleset
    }

    /// The tables, and per family the names of those holding base chains iptables-nft-save cannot express (another
    /// tool's chain of another type or priority in `ip nat`, say): it prints the rest of the table and only a
    /// comment for them, so they must be read natively or the walk would never see them.
    public func readReportingHidden(_ request: ReadRequest) throws(RuleReaderError) -> (ruleset: Ruleset, hidden: [Family: [TableName]]) {
        var ruleset = Ruleset()
        var hidden: [Family: [TableName]] = [:]
        for family in request.families {
            let text = try save(family: family)
            let tables = try SaveTextParser(fileName: Self.tool(family), family: family).parse(text)
            ruleset.tables += tables.filter { request.tables.contains($0.name) }
            ruleset.backends[family] = .nft
            hidden[family] = Self.tablesWithHiddenChains(text)
        }
        return (ruleset, hidden)
    }

    /// iptables-nft 1.8's "# Table `nat' contains incompatible base-chains, use 'nft' tool to list them." lines.
    static func tablesWithHiddenChains(_ saveText: String) -> [TableName] {
        saveText.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("# Table `"), line.contains("' contains incompatible base-chains") else { return nil }
            return TableName(String(line.dropFirst("# Table `".count).prefix { $0 != "'" }))
        }
    }

    static func tool(_ family: Family) -> String { family == .ipv4 ? "iptables-nft-save" : "ip6tables-nft-save" }

    /// The raw save text of one family (`-c`: with counters).
    public func save(family: Family, counters: Bool = false) throws(RuleReaderError) -> String {
        let tool = Self.tool(family)
        let arguments = counters ? ["-c"] : []
        guard try HelperProcess.locate(tool) != nil else {
            throw .unavailable(family: family, table: nil, reason: "\(tool) is not installed; install the iptables package (it ships \(tool))")
        }
        let result = try NetworkNamespace.performing(at: namespacePath) { () throws(RuleReaderError) in
            try HelperProcess.run(tool, arguments)
        }
        guard result.status == 0 else {
            let err = result.stderr.lowercased()
            if err.contains("permission denied") || err.contains("operation not permitted") {
                throw .insufficientPrivilege(detail: "\(tool): \(result.stderr.split(separator: "\n").first ?? "")")
            }
            throw .commandFailed(command: ([tool] + arguments).joined(separator: " "), status: result.status, stderr: result.stderr)
        }
        return result.stdout
    }
}
