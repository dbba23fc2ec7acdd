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
            Self.values(FamilyChoice.self), Self.values(BackendChoice.self),
        ] {
            #expect(strings == raw)
            #expect(descriptions.isEmpty)
        }
        #expect(ShowCommand.Format.allValueStrings == ["save", "nft", "list", "json", "dot", "mermaid", "svg"])
    }
}
