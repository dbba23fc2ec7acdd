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
        var ruleset = Ruleset()
        for family in request.families {
            let text = try save(family: family)
            let tables = try SaveTextParser(fileName: Self.tool(family), family: family).parse(text)
            ruleset.tables += tables.filter { request.tables.contains($0.name) }
            ruleset.backends[family] = .nft
        }
        return ruleset
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
