import ArgumentParser
import CaptureVerifier
import IstioCapture
import NetfilterModel
import Reporters
import RuleReaders

/// `iptaudit verify`: prove the pod's traffic goes through Envoy, or say exactly which rule is wrong,
/// which packet escapes or loops, and what to change.
struct VerifyCommand: DirectlyParsable {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check the tables against what Istio must have installed for this pod; report every gap with a witness packet and a fix.",
        discussion: "Exit codes: 0 capture proven (or no finding at --fail-on's severity), 1 findings of error severity (or --fail-on's), 2 could not read or parse, 64 usage.")

    enum Format: String, ExpressibleByArgument, CaseIterable { case text, json, yaml, junit, sarif, github, dot, mermaid, svg }

    @OptionGroup var source: SourceOptions
    @OptionGroup var capture: CaptureOptions
    @Option(name: outputFormatNames, help: "text: the human report; json: docs/json-schema.md; yaml: the same document as YAML; junit: one testcase per obligation; sarif: SARIF 2.1.0 for code scanning; github: GitHub Actions annotations (::error file=…,line=…::); dot, mermaid, svg: the capture graph with the findings in red.")
    var format: Format = .text
    @OptionGroup var failOn: FailOnOption
    @OptionGroup var color: ColorOption
    @Option(help: "Force the family of --input text (normally detected from the content).")
    var family: FamilyChoice = .all

    // The declarations above for the direct parse (DirectParse.swift); DirectParseTests hold them to ArgumentParser's.
    static let directOptions: [DirectOption<VerifyCommand>] = SourceOptions.directOptions.map { $0.lifted({ $0.source }, { $0.source = $1 }) }
        + CaptureOptions.directOptions.map { $0.lifted({ $0.capture }, { $0.capture = $1 }) }
        + [.option("-o", "--output", "--format", as: Format.self) { $0.format = $1 }]
        + FailOnOption.directOptions.map { $0.lifted({ $0.failOn }, { $0.failOn = $1 }) }
        + ColorOption.directOptions.map { $0.lifted({ $0.color }, { $0.color = $1 }) }
        + [.option("--family", as: FamilyChoice.self) { $0.family = $1 }]

    static func directDefault() -> VerifyCommand {
        var command = VerifyCommand()
        command.source = .directDefault
        command.capture = .directDefault
        command.format = .text
        command.failOn = .directDefault
        command.color = .directDefault
        command.family = .all
        return command
    }

    mutating func validateAll() throws {
        try source.validate()
        try capture.validate()
        try failOn.validate()
        try color.validate()
        try validate()
    }

    func run() throws {
        let progress = ProgressLine("verify: reading the rules")
        let (ruleset, sourceDescription) = try source.read(ReadRequest(), family: family.forced)
        progress.update("verify: checking \(ruleset.tables.reduce(0) { $0 + $1.ruleCount }) rules against Istio's capture model")
        var evidence = RuntimeEvidence()
        // A bundle brings the runtime inputs and pod manifest of its capture; a live read gathers them now.
        let bundle = try source.loadBundle()
        let runtime = bundle.map(\.runtime) ?? (source.inputs.isEmpty ? RuntimeInputs.gather(pid: source.pid, namespacePath: source.namespacePath) : nil)
        evidence.manifest = bundle?.podManifest.map { (name: "\(source.bundle ?? "bundle") (pod manifest \($0.fileName))", text: $0.text) }
        // --pid of the istio-proxy process: the pod's configuration as the proxy has it (as `observe` reads it).
        if let pid = source.pid, capture.pod == nil { evidence.proxyView = proxyView(ofProcess: pid) }
        if let recorded = bundle?.proxy, capture.pod == nil {
            evidence.proxyView = proxyView(recorded, name: "the istio-proxy process \(recorded.pid) as \(source.bundle ?? "the bundle") recorded it")
        }
        let hint = source.inputs.isEmpty && source.bundle == nil && source.namespacePath == nil
            ? "; if this is not the pod's network namespace, use --pid PID or --netns PATH" : ""
        let report = try PodVerification.judge(ruleset, source: sourceDescription, runtime: runtime, evidence: evidence,
                                               capture: capture, noIstioHint: hint, diagnose: { printError($0) }).report
        progress.finish()
        switch format {
        case .text:
            emit(VerificationText.render(report, ruleset: ruleset, source: sourceDescription, style: .init(color: color.onStandardOutput)))
        case .json:
            emit(VerificationJSON.render(report, ruleset: ruleset, source: sourceDescription))
        case .yaml:
            try emitYAML(json: VerificationJSON.render(report, ruleset: ruleset, source: sourceDescription))
        case .sarif:
            let artifact = source.bundle ?? (source.inputs.count == 1 && source.inputs[0] != "-" ? source.inputs[0] : nil)
            emit(VerificationSARIF.render(report, source: sourceDescription, toolVersion: IptauditCommand.configuration.version, artifact: artifact))
        case .github:
            emit(GitHubAnnotations.render(report, source: sourceDescription))
        case .junit:
            emit(VerificationJUnit.render(report, source: sourceDescription))
        case .dot: emit(try GraphOutput.render(.dot, ruleset: ruleset, report: report, source: sourceDescription))
        case .mermaid: emit(try GraphOutput.render(.mermaid, ruleset: ruleset, report: report, source: sourceDescription))
        case .svg: emit(try GraphOutput.render(.svg, ruleset: ruleset, report: report, source: sourceDescription))
        }
        keepUntilExit((ruleset, report))
        if failOn.threshold.fails(report.findings) { throw ExitCodes.findings }
    }
}
