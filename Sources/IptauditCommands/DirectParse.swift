import ArgumentParser

/// A parse of the read-only commands' common command lines without ArgumentParser's reflection (which was ~15 M of
/// a pod `show`'s ~19 M instructions). It knows each option's spellings and arity and converts values through the
/// option type's own `init(argument:)`; anything else — help, version, completion requests, `--`, positionals, an
/// unknown option, a bad value, a failing `validate()` — is declined, and ArgumentParser, still the one definition
/// for help, usage, errors and completion, answers as before. DirectParseTests check each table against
/// ArgumentParser's own dump of the commands, and the parsed commands against its parse.
protocol DirectlyParsable: ParsableCommand {
    /// Every spelling of every option the command declares (its option groups' too).
    static var directOptions: [DirectOption<Self>] { get }
    /// The command with every property assigned its declared default: a wrapper left unassigned crashes when read.
    static func directDefault() -> Self
    /// `validate()` of each option group and of the command, as ArgumentParser runs them after a parse.
    mutating func validateAll() throws
}

extension DirectlyParsable {
    /// The command `arguments` (the words after its name) describe, or nil for ArgumentParser to decide.
    static func parsedDirectly(_ arguments: ArraySlice<String>) -> Self? {
        var command = directDefault()
        guard DirectParse.scan(arguments, into: &command, options: directOptions) else { return nil }
        do { try command.validateAll() } catch { return nil }
        return command
    }
}

/// What an option takes after its name.
enum DirectArity: Sendable {
    case flag
    /// `--name value` (the next word, unless it looks like an option) or `--name=value`.
    case value
    /// `parsing: .unconditional`: the next word whatever it is.
    case unconditionalValue
}

/// One option as the direct parse knows it: the spellings ArgumentParser accepts for it, whether it takes a value,
/// and how the value is stored.
struct DirectOption<Target>: Sendable {
    let names: [String]
    let arity: DirectArity
    /// Stores a value ("" for a flag); false when the value does not convert, as ArgumentParser would reject it.
    let store: @Sendable (inout Target, String) -> Bool

    /// An option whose value converts as ArgumentParser converts it: `T(argument:)`.
    static func option<T: ExpressibleByArgument>(_ names: String..., as _: T.Type, unconditional: Bool = false,
                                                 _ set: @escaping @Sendable (inout Target, T) -> Void) -> DirectOption {
        DirectOption(names: names, arity: unconditional ? .unconditionalValue : .value) { target, text in
            guard let value = T(argument: text) else { return false }
            set(&target, value)
            return true
        }
    }

    static func flag(_ names: String..., set: @escaping @Sendable (inout Target) -> Void) -> DirectOption {
        DirectOption(names: names, arity: .flag) { target, _ in
            set(&target)
            return true
        }
    }

    /// The option of an `@OptionGroup`, stored through the command's property holding the group.
    func lifted<Outer>(_ get: @escaping @Sendable (Outer) -> Target, _ put: @escaping @Sendable (inout Outer, Target) -> Void) -> DirectOption<Outer> {
        let store = self.store
        return DirectOption<Outer>(names: names, arity: arity) { outer, text in
            var inner = get(outer)
            guard store(&inner, text) else { return false }
            put(&outer, inner)
            return true
        }
    }
}

enum DirectParse {
    /// Applies `arguments` to `target`; false at the first word it does not fully understand.
    static func scan<Target>(_ arguments: ArraySlice<String>, into target: inout Target, options: [DirectOption<Target>]) -> Bool {
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let word = arguments[index]
            index += 1
            // Positionals, `-` and `--` are not options; short options come alone (`-o json`), never grouped or joined.
            guard word.hasPrefix("-"), word != "-", word != "--" else { return false }
            var name = Substring(word)
            var attached: String?
            if word.hasPrefix("--"), let equals = word.firstIndex(of: "=") {
                name = word[..<equals]
                attached = String(word[word.index(after: equals)...])
                // `--name=` is a missing value to ArgumentParser.
                guard attached != "" else { return false }
            }
            guard let option = options.first(where: { $0.names.contains { $0 == name } }) else { return false }
            let value: String
            switch option.arity {
            case .flag:
                guard attached == nil else { return false }
                value = ""
            case .value, .unconditionalValue:
                if let attached {
                    value = attached
                } else {
                    guard index < arguments.endIndex else { return false }
                    let next = arguments[index]
                    // ArgumentParser takes a dash-led word only for an unconditional option, and never `--`.
                    guard next != "--", !next.hasPrefix("-") || next == "-" || (option.arity == .unconditionalValue && splits(next))
                    else { return false }
                    value = next
                    index += 1
                }
            }
            guard option.store(&target, value) else { return false }
        }
        return true
    }

    /// Whether ArgumentParser's first pass accepts a dash-led word (it rejects three or more dashes and a name
    /// that starts with `=`), even when an unconditional option then takes it as its value.
    static func splits(_ word: String) -> Bool {
        let dashes = word.prefix { $0 == "-" }
        guard dashes.count <= 2 else { return false }
        return word.dropFirst(dashes.count).first != "="
    }
}

extension DirectlyParsable {
    /// Each option's spellings and arity, for the tests that hold the tables to ArgumentParser's declarations.
    static var directOptionSummary: [(names: [String], arity: String)] { directOptions.map { ($0.names, "\($0.arity)") } }
}
