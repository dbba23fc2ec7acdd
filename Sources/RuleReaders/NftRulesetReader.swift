import Foundation
import NetfilterModel

/// Reads rules that live in nf_tables through the iptables-nft compatibility layer, by running
/// `iptables-nft-save` / `ip6tables-nft-save` (inside the target namespace) and the text reader.
///
/// Istio 1.26+ proxy images default to iptables-nft, so on modern pods the legacy tables are empty and this is
/// where the rules are. The save tools only list; they neither take the xtables lock nor create tables.
public struct NftRulesetReader: RulesetReader {
    public var namespacePath: String?
    public init(namespacePath: String? = nil) { self.namespacePath = namespacePath }

    public var sourceDescription: String { "nf_tables (iptables-nft-save)" }

    public func read(_ request: ReadRequest) throws(RuleReaderError) -> Ruleset {
        var ruleset = Ruleset()
        for family in request.families {
            let text = try save(family: family)
            let tables = try SaveTextParser(fileName: family == .ipv4 ? "iptables-nft-save" : "ip6tables-nft-save", family: family).parse(text)
            ruleset.tables += tables.filter { request.tables.contains($0.name) }
            ruleset.backends[family] = .nft
        }
        return ruleset
    }

    /// The raw save text of one family.
    public func save(family: Family) throws(RuleReaderError) -> String {
        let tool = family == .ipv4 ? "iptables-nft-save" : "ip6tables-nft-save"
        var argv = [tool]
        if let namespacePath { argv = NetworkNamespace(path: namespacePath).nsenterPrefix + argv }
        let result: ProcessOutput
        do {
            result = try runProcess(argv)
        } catch {
            throw .unavailable(family: family, table: nil, reason: "cannot run \(tool): \(error.localizedDescription); install the iptables package (it ships \(tool))")
        }
        guard result.status == 0 else {
            let err = result.stderr.lowercased()
            if err.contains("permission denied") || err.contains("operation not permitted") {
                throw .insufficientPrivilege(detail: "\(tool): \(result.stderr.split(separator: "\n").first ?? "")")
            }
            if result.status == 127 || err.contains("no such file") {
                throw .unavailable(family: family, table: nil, reason: "\(tool) is not installed; install the iptables package")
            }
            throw .commandFailed(command: argv.joined(separator: " "), status: result.status, stderr: result.stderr)
        }
        return result.stdout
    }
}

