import ArgumentParser
import Foundation
@testable import IptauditCommands
import Testing
import TestSupport

/// The direct parse (DirectParse.swift) against ArgumentParser, the one definition of the command lines: every
/// option ArgumentParser declares for a directly parsed command is known to it with the same arity, and over command
/// lines generated from ArgumentParser's own dump of the commands (every option, spelling, choice value, repetition,
/// flag and inversion, defaults, and words it must decline) it yields exactly ArgumentParser's command, or declines.
struct DirectParseTests {
    /// One option as ArgumentParser's `--experimental-dump-help` describes it.
    struct Declared: CustomStringConvertible {
        var spellings: [String]
        var isFlag: Bool
        var strategy: String
        var choices: [String]
        var description: String { spellings.joined(separator: "/") }
    }

    /// ArgumentParser's built-in options, which the direct parse must leave to it.
    static let builtIns: Set<String> = ["-h", "--help", "--help-hidden", "--version", "--experimental-dump-help", "--generate-completion-script"]

    static let commands: [String] = IptauditCommand.directlyParsable.map { $0._commandName }

    /// The subcommand's options from ArgumentParser's dump of the whole tool.
    static func declared(_ command: String) throws -> [Declared] {
        var dump = ""
        do {
            _ = try IptauditCommand.parseAsRoot(["--experimental-dump-help"])
        } catch {
            dump = IptauditCommand.fullMessage(for: error)
        }
        let root = try #require(try JSONSerialization.jsonObject(with: Data(dump.utf8)) as? [String: Any])
        let tool = try #require(root["command"] as? [String: Any])
        let subcommands = try #require(tool["subcommands"] as? [[String: Any]])
        let info = try #require(subcommands.first { $0["commandName"] as? String == command })
        let arguments = info["arguments"] as? [[String: Any]] ?? []
        return arguments.compactMap { argument -> Declared? in
            let names = (argument["names"] as? [[String: Any]] ?? []).map { name -> String in
                let text = name["name"] as? String ?? ""
                return name["kind"] as? String == "short" ? "-" + text : "--" + text
            }
            if names.contains(where: builtIns.contains) { return nil }
            return Declared(spellings: names, isFlag: argument["kind"] as? String == "flag",
                            strategy: argument["parsingStrategy"] as? String ?? "default",
                            choices: argument["allValueStrings"] as? [String] ?? argument["allValues"] as? [String] ?? [])
        }
    }

    static func options(_ command: String) throws -> [(names: [String], arity: String)] {
        let type = try #require(IptauditCommand.directlyParsable.first { $0._commandName == command })
        return type.directOptionSummary
    }

    @Test(arguments: commands)
    func everyDeclaredOptionIsKnownWithItsArity(command: String) throws {
        let declared = try Self.declared(command)
        #expect(!declared.isEmpty)
        let known = try Self.options(command)
        var knownNames: [String: String] = [:]
        for option in known { for name in option.names { knownNames[name] = option.arity } }
        var declaredNames: Set<String> = []
        for option in declared {
            #expect(option.strategy != "positional" && !option.spellings.isEmpty, "\(command): \(option) is not an option")
            let arity = option.isFlag ? "flag" : option.strategy == "unconditional" ? "unconditionalValue" : "value"
            if !option.isFlag { #expect(["default", "unconditional"].contains(option.strategy), "\(command) \(option): \(option.strategy)") }
            for spelling in option.spellings {
                declaredNames.insert(spelling)
                #expect(knownNames[spelling] == arity, "\(command) \(spelling): ArgumentParser declares it as \(arity), the direct parse has \(knownNames[spelling] ?? "nothing")")
            }
        }
        #expect(Set(knownNames.keys) == declaredNames, "\(command): names the direct parse knows but ArgumentParser does not declare")
    }

    /// Values to try where ArgumentParser lists no choices: good ones for each kind of option, and ones that
    /// convert or validate badly, start with a dash, or are empty.
    static let freeValues = ["x", "", "-", "pod.save", "10.0.0.1", "fd00::a", "10.0.0.1,10.0.0.2", "1.22.8", "1.x", "42", "0", "-3",
                             "+7", "99999999999", "true", "false", "TRUE", "K=v", "nokey", "-p 15001 -u 1337", "--help", "-h",
                             "---x", "--=x", "-=x", "--", "--input"]

    /// Command lines for `command` from its declared options; `singles` are the one-option lines.
    static func commandLines(_ declared: [Declared]) -> (singles: [[[String]]], others: [[String]]) {
        var singles: [[[String]]] = []
        for option in declared {
            var lines: [[String]] = []
            if option.isFlag {
                for name in option.spellings { lines += [[name], [name, name], [name + "=true"]] }
            } else {
                var values = option.choices.isEmpty ? freeValues : option.choices + option.choices.map { $0.uppercased() } + ["bogus", "", "-"]
                values += values.prefix(2).map { $0.capitalized }
                for name in option.spellings {
                    for value in values {
                        lines.append([name, value])
                        lines.append([name + "=" + value])
                        if !name.hasPrefix("--") { lines.append([name + value]) }
                    }
                    lines.append([name])
                    lines.append([name, values[0], name, values[1]])
                    lines.append([name, values[1], name, values[0]])
                }
            }
            singles.append(lines)
        }
        let bad: [[String]] = [["--"], ["--", "x"], ["-h"], ["--help"], ["--help-hidden"], ["--version"], ["--generate-completion-script", "bash"],
                               ["--experimental-dump-help"], ["extra"], ["--bogus"], ["-ojson"], ["-o=json"], ["-x"], ["-"], [""]]
        return (singles, [[]] + bad)
    }

    static func described(_ command: ParsableCommand) -> String {
        var text = ""
        dump(command, to: &text)
        return text
    }

    /// The direct parse of `line` is ArgumentParser's, or nil; true when it was taken.
    static func check(_ command: String, _ line: [String]) throws -> Bool {
        let arguments = [command] + line
        guard let direct = IptauditCommand.parsedDirectly(arguments) else { return false }
        let full: ParsableCommand
        do {
            full = try IptauditCommand.parseAsRoot(arguments)
        } catch {
            Issue.record("the direct parse took \(arguments), which ArgumentParser rejects: \(IptauditCommand.fullMessage(for: error))")
            return true
        }
        #expect(type(of: direct) == type(of: full), "\(arguments)")
        #expect(described(direct) == described(full), "\(arguments)")
        return true
    }

    @Test(arguments: commands)
    func generatedCommandLinesParseAsArgumentParserParsesThem(command: String) throws {
        let declared = try Self.declared(command)
        let (singles, others) = Self.commandLines(declared)
        #expect(try Self.check(command, []), "\(command) with no arguments was declined")
        var taken: [[String]] = []
        for (option, lines) in zip(declared, singles) {
            var takenHere = 0
            for line in lines where try Self.check(command, line) {
                takenHere += 1
                if takenHere == 1 { taken.append(line) }
            }
            #expect(takenHere > 0, "\(command): no command line with \(option) was taken")
        }
        for line in others { _ = try Self.check(command, line) }
        // Each option with its next three in declaration order, both ways round (a flag and its inversion are
        // neighbours), everything at once, and words to decline after a line that was taken.
        for (index, first) in taken.enumerated() {
            for second in taken[(index + 1)...].prefix(3) {
                _ = try Self.check(command, first + second)
                _ = try Self.check(command, second + first)
            }
            for line in others.dropFirst() { #expect(!(try Self.check(command, first + line)), "\(command) \(first + line) was taken") }
        }
        _ = try Self.check(command, taken.flatMap { $0 })
    }

    /// What the direct parse declines, the binary answers as ArgumentParser always has: help on stdout, usage
    /// errors on stderr, and their exit status.
    @Test(arguments: [
        ["show", "--help"], ["show", "-h"], ["verify", "--help"], ["show", "--version"], ["verify", "--format", "json", "--version"],
        ["show", "--format", "bogus"], ["show", "-ojson"], ["show", "--table"], ["show", "--pid", "0"], ["show", "--roles", "-o", "save"],
        ["verify", "--fail-on", "sometimes"], ["verify", "--ambient-dns-capture", "yes"], ["verify", "--bogus"], ["verify", "--dns-servers", "nope"],
        ["show", "extra"], ["show", "--generate-completion-script", "bash"], ["verify", "--no-ipv6=true"],
    ])
    func declinedCommandLinesAnswerAsBefore(arguments: [String]) throws {
        #expect(IptauditCommand.parsedDirectly(arguments) == nil)
        var expected = (status: Int32(0), stdout: "", stderr: "")
        do {
            // A help request parses as ArgumentParser's help command, which throws its text when run.
            var command = try IptauditCommand.parseAsRoot(arguments)
            guard !(command is any DirectlyParsable) else {
                Issue.record("ArgumentParser accepts \(arguments)")
                return
            }
            try command.run()
        } catch {
            expected.status = IptauditCommand.exitCode(for: error).rawValue
            var text = IptauditCommand.fullMessage(for: error, columns: 80)
            if !text.hasSuffix("\n") { text += "\n" }
            if expected.status == 0 { expected.stdout = text } else { expected.stderr = text }
        }
        let result = try runCommand(["COLUMNS=80", Self.binary] + arguments)
        #expect(result.status == expected.status)
        #expect(result.stdout == expected.stdout)
        #expect(result.stderr == expected.stderr)
    }

    /// The debug `iptaudit` beside the test bundle.
    static let binary: String = {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        while directory.path.contains(".xctest") { directory = directory.deletingLastPathComponent() }
        let candidate = directory.appendingPathComponent("iptaudit").path
        return FileManager.default.isExecutableFile(atPath: candidate) ? candidate : Fixtures.repositoryPath(".build/debug/iptaudit")
    }()
}
