import ArgumentParser
import CaptureVerifier
import Glibc

/// The names every command's report format answers to: `-o`/`--output` as kubectl and istioctl spell it, and
/// `--format`, iptaudit's first spelling, kept so existing scripts still work.
let outputFormatNames: NameSpecification = [.customShort("o"), .customLong("output"), .customLong("format")]

/// `--color`: whether text reports use colour. `auto` colours a terminal unless `NO_COLOR` is set to a non-empty
/// value (no-color.org: an empty one counts as unset); an explicit `always` or `never` beats the environment.
enum ColorChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, always, never

    func enabled(isTerminal: Bool, noColorSet: Bool) -> Bool {
        switch self {
        case .always: true
        case .never: false
        case .auto: isTerminal && !noColorSet
        }
    }
}

struct ColorOption: ParsableArguments {
    @Option(help: "Colour in text reports: auto (a terminal, unless NO_COLOR is set), always, never.")
    var color: ColorChoice = .auto

    /// For the direct parse (DirectParse.swift).
    static let directOptions: [DirectOption<ColorOption>] = [.option("--color", as: ColorChoice.self) { $0.color = $1 }]
    static var directDefault: ColorOption {
        var option = ColorOption()
        option.color = .auto
        return option
    }

    /// The decision for standard output, in this process's environment.
    var onStandardOutput: Bool {
        color.enabled(isTerminal: isatty(STDOUT_FILENO) == 1, noColorSet: getenv("NO_COLOR").map { $0.pointee != 0 } ?? false)
    }
}

/// `--fail-on`: the least severe finding that makes the exit status 1, as istioctl analyze's `--failure-threshold`.
/// `never` still exits 2 when the rules cannot be read: that is not a verdict.
enum FailureThreshold: String, ExpressibleByArgument, CaseIterable {
    case error, warning, info, never

    /// Any case, as istioctl reads `--failure-threshold Warning`.
    init?(argument: String) { self.init(rawValue: argument.lowercased()) }

    func fails(_ findings: [Finding]) -> Bool {
        let least: Severity
        switch self {
        case .never: return false
        case .error: least = .error
        case .warning: least = .warning
        case .info: least = .info
        }
        return findings.contains { $0.severity >= least }
    }
}

struct FailOnOption: ParsableArguments {
    @Option(name: .customLong("fail-on"), help: "Exit 1 when a finding of this severity or worse is reported: error (default), warning, info, never.")
    var threshold: FailureThreshold = .error

    /// For the direct parse (DirectParse.swift).
    static let directOptions: [DirectOption<FailOnOption>] = [.option("--fail-on", as: FailureThreshold.self) { $0.threshold = $1 }]
    static var directDefault: FailOnOption {
        var option = FailOnOption()
        option.threshold = .error
        return option
    }
}
