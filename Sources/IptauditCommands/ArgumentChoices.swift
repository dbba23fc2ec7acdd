import ArgumentParser

/// The value lists of this module's choice enums (`--format`, `--table`, `--family`, `--backend`, ...), as
/// ArgumentParser's defaults compute them but without a key path: each option with such a type asks for them
/// while every command is parsed, and instantiating `\.rawValue.defaultValueDescription` at run time was
/// ~1.2 M instructions of a pod `show`. Same strings, same order.
extension ExpressibleByArgument where Self: CaseIterable, Self: RawRepresentable, RawValue == String {
    public static var allValueStrings: [String] {
        allCases.map { $0.rawValue }
    }

    public static var allValueDescriptions: [String: String] {
        allCases.reduce(into: [:]) { descriptions, value in
            if value.rawValue != value.defaultValueDescription { descriptions[value.rawValue] = value.defaultValueDescription }
        }
    }
}
