import ArgumentParser
import CaptureVerifier
import Reporters

/// `iptaudit checks`: what verify can prove and report, so a CI author can pick `--fail-on` and read a finding's docs.
struct ChecksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checks",
        abstract: "List every obligation verify proves and every finding kind it reports, with the docs section of each.",
        discussion: "Exit codes: 0 listed, 64 usage.")

    enum Format: String, ExpressibleByArgument, CaseIterable { case text, json, yaml }

    @Option(name: outputFormatNames, help: "text: two lists for people; json, yaml: {schemaVersion, obligations, kinds}.")
    var format: Format = .text

    func run() throws {
        let obligations = CaptureVerifier.obligationDescriptions + ObservationObligations.descriptions
        switch format {
        case .text: emit(CheckCatalogue.text(obligations: obligations, kinds: FindingKind.all))
        case .json: emit(CheckCatalogue.json(obligations: obligations, kinds: FindingKind.all))
        case .yaml: try emitYAML(json: CheckCatalogue.json(obligations: obligations, kinds: FindingKind.all))
        }
    }
}
