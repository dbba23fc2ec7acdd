import ArgumentParser
import IstioCapture
import NetfilterModel
import Reporters
import RuleReaders

/// `iptaudit expect`: the rule set Istio installs for a configuration, in iptables-save syntax.
struct ExpectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "expect",
        abstract: "Print the rules Istio installs for a pod's configuration (both families, every table), in iptables-save syntax.")

    enum Format: String, ExpressibleByArgument, CaseIterable { case save, nft }

    @OptionGroup var capture: CaptureOptions
    @Option(help: "Which table.") var table: TableChoice = .all
    @Option(help: "Which address family.") var family: FamilyChoice = .all
    @Option(name: outputFormatNames, help: "save: iptables-save syntax; nft: the inet istio-proxy-* tables of native nftables mode (--native-nftables, Istio 1.27+), or with --ambient the inet istio-ambient-* tables (1.28+), as `nft list ruleset` prints them.")
    var format: Format?

    func run() throws {
        var config = try capture.configuration()
        if let failure = config.installFailure, config.ambient == nil {
            printError("iptaudit: istio-iptables \(config.istioVersion) exits on these arguments before installing a rule: \(failure); "
                + "there are no rules to print (`iptaudit verify` reports how istio-iptables reads them)")
            throw ExitCodes.unreadable
        }
        if format == .nft || (format == nil && config.nativeNftables) {
            config.nativeNftables = true
            // The mode exists from 1.27 (ambient's from 1.28); without a version the current shape is printed.
            let first = config.ambient != nil ? AmbientShape.firstNftablesVersion : ExpectedNftables.firstVersion
            if capture.istioVersion == nil, config.istioVersion < first { config.istioVersion = ExpectedNftables.assumedVersion }
            do {
                let tables = try ExpectedNftables.tables(for: config, groupResolver: SaveTextParser.systemGroupID)
                emit(NftSyntax.render(tables))
            } catch {
                throw ValidationError("\(error.description)")
            }
            return
        }
        config.nativeNftables = false
        var ruleset = Ruleset()
        ruleset.tables = ExpectedRules.tables(for: config, groupResolver: SaveTextParser.systemGroupID)
            .filter { table.tables.contains($0.name) && family.families.contains($0.family) }
        for f in Family.allCases where ruleset.tables.contains(where: { $0.family == f }) { ruleset.backends[f] = .text }
        var out = ExpectedRules.describe(config).map { "# " + $0 + "\n" }.joined()
        for f in Family.allCases {
            let tables = ruleset.tables.filter { $0.family == f }
            guard !tables.isEmpty else { continue }
            out += "# \(f.saveCommand)\n" + tables.map { SaveSyntax.render($0) }.joined()
        }
        emit(out)
    }
}
