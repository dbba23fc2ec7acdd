import ArgumentParser

/// `iptaudit`: prove a pod's Istio traffic capture is intact by reading its netfilter tables.
public struct IptauditCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "iptaudit",
        abstract: "Audit a pod's Istio traffic-capture rules (iptables / nf_tables) and explain every gap.",
        discussion: """
            Exit codes: 0 ok (capture proven), 1 findings of error severity, 2 could not read or parse, 64 usage.
            """,
        version: "0.1.0",
        subcommands: [ShowCommand.self, ExpectCommand.self, VerifyCommand.self, CaptureCommand.self, TraceCommand.self]
    )
    public init() {}
}

/// Exit codes are part of the interface (README "Exit codes").
enum ExitCodes {
    static let ok = ExitCode(0)
    static let findings = ExitCode(1)
    static let unreadable = ExitCode(2)
    static let usage = ExitCode(64)
}
