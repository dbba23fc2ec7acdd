import ArgumentParser
@testable import IptauditCommands
import RuleReaders
import Testing

/// The choice enums' value lists (ArgumentChoices.swift) are what ArgumentParser's defaults give: each raw
/// value, in declaration order, and no separate descriptions.
struct ArgumentChoicesTests {
    static func values<T: ExpressibleByArgument & CaseIterable & RawRepresentable>(_: T.Type) -> ([String], [String: String], [String])
    where T.RawValue == String {
        (T.allValueStrings, T.allValueDescriptions, T.allCases.map(\.rawValue))
    }

    @Test func valueListsAreTheRawValuesInOrder() {
        for (strings, descriptions, raw) in [
            Self.values(ShowCommand.Format.self), Self.values(VerifyCommand.Format.self), Self.values(ExpectCommand.Format.self),
            Self.values(TraceCommand.Format.self), Self.values(TraceCommand.Direction.self), Self.values(TableChoice.self),
            Self.values(FamilyChoice.self), Self.values(BackendChoice.self), Self.values(ObserveCommand.Format.self),
            Self.values(ChecksCommand.Format.self), Self.values(ColorChoice.self), Self.values(FailureThreshold.self),
        ] {
            #expect(strings == raw)
            #expect(descriptions.isEmpty)
        }
        #expect(ShowCommand.Format.allValueStrings == ["save", "nft", "list", "json", "yaml", "dot", "mermaid", "svg"])
    }
}

/// `--color` and `--fail-on` as decisions: the flag beats NO_COLOR, auto needs a terminal; each threshold fails on
/// its severity and worse.
struct ReportOptionTests {
    @Test func colorChoiceTruthTable() {
        for terminal in [false, true] {
            for noColor in [false, true] {
                #expect(ColorChoice.always.enabled(isTerminal: terminal, noColorSet: noColor))
                #expect(!ColorChoice.never.enabled(isTerminal: terminal, noColorSet: noColor))
                #expect(ColorChoice.auto.enabled(isTerminal: terminal, noColorSet: noColor) == (terminal && !noColor))
            }
        }
    }
}
