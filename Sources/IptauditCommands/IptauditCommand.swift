import ArgumentParser
import Glibc
import NetfilterModel

/// `iptaudit`: prove a pod's Istio traffic capture is intact by reading its netfilter tables.
public struct IptauditCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "iptaudit",
        abstract: "Audit a pod's Istio traffic-capture rules (iptables / nf_tables) and explain every gap.",
        discussion: """
            Exit codes: 0 ok (capture proven), 1 findings of error severity, 2 could not read or parse, 64 usage.
            """,
        version: "0.1.0",
        subcommands: [ShowCommand.self, ExpectCommand.self, VerifyCommand.self, CaptureCommand.self, TraceCommand.self, ObserveCommand.self,
                      NodeCommand.self, ChecksCommand.self]
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

extension IptauditCommand {
    /// `main()`, but first parsing the arguments after a subcommand's name as if that subcommand were the root.
    /// ArgumentParser reflects over every command on the path (and each first cast to a protocol scans all
    /// conformance records): skipping the root's pass saves ~2.6 M of a pod `show`'s ~19 M instructions. What
    /// that parse does not accept (help, version, completion requests, usage errors, failed validation) goes to
    /// the full parse, which answers exactly as before; errors from `run()` are reported as `main()` would.
    public static func mainParsingSubcommandFirst() {
        Output.guardStandardStreams()
        let limits: InputLimits
        do {
            limits = try InputLimits { name in getenv(name).map { String(cString: $0) } }
        } catch {
            printError("iptaudit: \(error.description)")
            Glibc.exit(64)
        }
        InputLimits.$current.withValue(limits) { runParsingSubcommandFirst() }
    }

    /// The run under the input limits the environment sets (docs/robustness.md).
    static func runParsingSubcommandFirst() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            var command = try parsedDirectly(arguments) ?? parsedSubcommandFirst(arguments) ?? parseAsRoot(arguments)
            try command.run()
        } catch {
            exit(reporting: error)
        }
    }

    /// `exit(withError:)`, but printed through `Output`: help and version on stdout, errors on stderr through
    /// `printError` (so an option or value echoed from the command line is escaped and bounded like any input),
    /// and a failed write is exit 2 rather than text lost in a stdio buffer.
    static func exit(reporting error: any Error) -> Never {
        // A command's own exit status (findings, exit 1) has no message: ArgumentParser would still build its help
        // by reflection to say so, a quarter of a pod-sized `verify`'s instructions.
        if let status = error as? ExitCode { Glibc.exit(status.rawValue) }
        let code = exitCode(for: error).rawValue
        let text = fullMessage(for: error)
        if !text.isEmpty {
            if code == 0 { emit(text.hasSuffix("\n") ? text : text + "\n") } else { printError(text) }
        }
        Glibc.exit(code)
    }

    /// The read-only commands whose common command lines are parsed without ArgumentParser (DirectParse.swift).
    static let directlyParsable: [any DirectlyParsable.Type] = [ShowCommand.self, VerifyCommand.self]

    /// The command `arguments` (a subcommand's name first) describe, parsed without ArgumentParser's reflection,
    /// or nil for ArgumentParser to decide.
    static func parsedDirectly(_ arguments: [String]) -> ParsableCommand? {
        guard let name = arguments.first, let command = directlyParsable.first(where: { $0._commandName == name }) else { return nil }
        return command.parsedDirectly(arguments.dropFirst())
    }

    /// The subcommand parsed on its own from `arguments` (its name first), or nil for the full parse to decide.
    static func parsedSubcommandFirst(_ arguments: [String]) -> ParsableCommand? {
        guard let name = arguments.first,
              let subcommand = configuration.subcommands.first(where: { $0._commandName == name }) else { return nil }
        // A help request parses as ArgumentParser's own help command, whose usage would lack the root's name.
        guard let command = try? subcommand.parseAsRoot(Array(arguments.dropFirst())), type(of: command) == subcommand else { return nil }
        return command
    }
}
