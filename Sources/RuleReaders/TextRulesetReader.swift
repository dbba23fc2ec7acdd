import FoundationEssentials
import Glibc
import NetfilterModel

/// Reads saved rules: iptables-save / ip6tables-save dumps, iptables-restore scripts and Istio goldens,
/// from files or standard input (`-`), the CLI's repeatable `--input`.
///
/// Several inputs are merged; the same table of the same family in two inputs is an error, since one of
/// them would silently win.
public struct TextRulesetReader: RulesetReader {
    /// Paths; `-` is standard input.
    public let inputs: [String]
    /// The family of inputs that do not show theirs (see `SaveTextParser`); nil detects it.
    public let family: Family?
    let groupResolver: SaveTextParser.NameResolver?
    let userResolver: SaveTextParser.NameResolver?
    let standardInput: (@Sendable () -> Data)?

    /// - Parameter standardInput: what `-` reads; defaults to the process's standard input.
    public init(inputs: [String], family: Family? = nil, groupResolver: SaveTextParser.NameResolver? = nil,
                userResolver: SaveTextParser.NameResolver? = nil,
                standardInput: (@Sendable () -> Data)? = nil) {
        self.inputs = inputs
        self.family = family
        self.groupResolver = groupResolver
        self.userResolver = userResolver
        self.standardInput = standardInput
    }

    public var sourceDescription: String {
        let names = inputs.map { $0 == "-" ? "standard input" : $0 }
        switch names.count {
        case 0: return "no input"
        case 1: return names[0] == "standard input" ? "standard input" : "file \(names[0])"
        default: return "files \(names.joined(separator: ", "))"
        }
    }

    public func read(_ request: ReadRequest) throws(RuleReaderError) -> Ruleset {
        if inputs.filter({ $0 == "-" }).count > 1 {
            throw .unreadableInput(file: "-", reason: "standard input is given more than once")
        }
        var located: [(table: Table, file: String, line: Int)] = []
        for input in inputs {
            let name = input == "-" ? "<stdin>" : input
            let bytes = try contents(of: input)
            var parser = SaveTextParser(fileName: name, family: family, groupResolver: groupResolver,
                                        userResolver: userResolver)
            parser.recordsOrigins = input != "-"
            for t in try parser.parseLocated(bytes: bytes) {
                if let earlier = located.first(where: { $0.table.name == t.table.name && $0.table.family == t.table.family }) {
                    let fam = t.table.family == .ipv4 ? "IPv4" : "IPv6"
                    throw .malformed(file: name, line: t.line,
                                     message: "table \(t.table.name) (\(fam)) is also in \(earlier.file) at line \(earlier.line); give each table once")
                }
                located.append((t.table, name, t.line))
            }
        }
        var ruleset = Ruleset()
        for (table, _, _) in located where request.tables.contains(table.name) && request.families.contains(table.family) {
            ruleset.tables.append(table)
            ruleset.backends[table.family] = .text
            if table.ruleCount > 0 || table.chains.contains(where: { !$0.isBuiltin }) {
                ruleset.populatedBackends[table.family] = [.text]
            }
        }
        return ruleset
    }

    private func contents(of input: String) throws(RuleReaderError) -> [UInt8] {
        if input == "-", let standardInput { return [UInt8](standardInput()) }
        do {
            // read(2) to the end, so pipes such as `--input <(iptables-save)` work too.
            return input == "-" ? try FileContents.readStandardInput() : try FileContents.read(path: input)
        } catch {
            switch error.code {
            case ENOENT: throw .unreadableInput(file: input, reason: "no such file")
            case EISDIR: throw .unreadableInput(file: input, reason: "is a directory, not a file of rules")
            default: throw .unreadableInput(file: input, reason: error.description)
            }
        }
    }
}
