import NetfilterModel

/// What to read: which tables of which families.
public struct ReadRequest: Sendable, Hashable {
    public var tables: [TableName]
    public var families: [Family]
    public init(tables: [TableName] = TableName.standard, families: [Family] = Family.allCases) {
        self.tables = tables
        self.families = families
    }
}

/// A source of rules. Everything above the readers sees only this, never where the rules came from.
public protocol RulesetReader: Sendable {
    /// A short description for reports ("legacy x_tables via libiptc", "iptables-nft-save", "file rules.save").
    var sourceDescription: String { get }
    func read(_ request: ReadRequest) throws(RuleReaderError) -> Ruleset
}

/// Why rules could not be read. Each case carries what the user can do about it.
public enum RuleReaderError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Malformed input text: `FILE:LINE: what was expected`.
    case malformed(file: String, line: Int, message: String)
    /// The input could not be opened.
    case unreadableInput(file: String, reason: String)
    /// An output file (`capture -o`) was refused or could not be written; nothing at the path was changed.
    case unwritableOutput(file: String, reason: String)
    /// The kernel refused: CAP_NET_ADMIN (and CAP_NET_RAW for libiptc's socket) are missing.
    case insufficientPrivilege(detail: String)
    /// The capabilities are there, but the list of legacy tables is readable by UID 0 only, and finding the
    /// tables any other way would create the missing ones.
    case tableListRootOnly(detail: String)
    /// The table, family or kernel support is missing.
    case unavailable(family: Family, table: TableName?, reason: String)
    /// The network namespace could not be entered.
    case namespace(path: String, reason: String)
    /// A helper program failed (iptables-nft-save and friends).
    case commandFailed(command: String, status: Int32, stderr: String)
    /// A helper program could not be run to the end: not installed, unsafe to run, or past its deadline.
    case helper(command: String, reason: String)
    /// A netlink dump (routing rules, routes, addresses, nf_tables tables) failed.
    case netlink(request: String, reason: String)

    /// One line (the privilege advice aside, written on several), input escaped and bounded by `MessageText`.
    public var description: String {
        switch self {
        case .insufficientPrivilege, .tableListRootOnly: return MessageText.line(text, keepingNewlines: true)
        default: return MessageText.line(text)
        }
        return MessageText.line(text)
    }

    private var text: String {
        switch self {
        case .malformed(let file, let line, let message):
            return "\(file):\(line): \(message)"
        case .unreadableInput(let file, let reason):
            return "\(file): \(reason)"
        case .unwritableOutput(let file, let reason):
            return "cannot write \(file): \(reason)"
        case .insufficientPrivilege(let detail):
            return """
                cannot read netfilter tables: \(detail)
                reading tables needs CAP_NET_ADMIN (and CAP_NET_RAW for libiptc's socket) in the pod's network namespace.
                The istio-proxy container (UID 1337, no capabilities) cannot read its own tables. Instead:
                  - on the node, as root:  iptaudit show --pid <PID of any process in the pod>   (or: nsenter -t <PID> -n iptaudit show)
                  - from kubectl:           kubectl debug -it <pod> --profile=netadmin --target=istio-proxy --image=<image with iptaudit> -- iptaudit show
                """
        case .tableListRootOnly(let detail):
            return """
                cannot list the legacy tables: \(detail)
                this process holds CAP_NET_ADMIN and CAP_NET_RAW, but the list of tables is readable by UID 0 only, and asking \
                the kernel for a table that is not there would create it (iptables-legacy-save stops here too). \
                `--backend nft` reads nf_tables (iptables-nft) alone, without the legacy tables. To read both, run as UID 0:
                  - on the node, as root:  iptaudit show --pid <PID of any process in the pod>   (or: nsenter -t <PID> -n iptaudit show)
                  - from kubectl:           kubectl debug -it <pod> --profile=netadmin --target=istio-proxy --image=<image with iptaudit> -- iptaudit show
                """
        case .unavailable(let family, let table, let reason):
            if let table { return "cannot read \(family.saveCommand.replacingSuffix("-save")) table \(table): \(reason)" }
            return "cannot read \(family) tables: \(reason)"
        case .namespace(let path, let reason):
            return "cannot enter network namespace \(path): \(reason)"
        case .commandFailed(let command, let status, let stderr):
            let detail = stderr.split(separator: "\n").first.map(String.init) ?? ""
            return "`\(command)` exited with status \(status)\(detail.isEmpty ? "" : ": " + detail)"
        case .helper(let command, let reason):
            return "`\(command)`: \(reason)"
        case .netlink(let request, let reason):
            return "netlink \(request) failed: \(reason)"
        }
    }
}

extension String {
    func replacingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
