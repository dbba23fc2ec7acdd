/// How much input iptaudit accepts before it refuses with a one-line error, so a broken or hostile file can
/// neither exhaust memory nor run for hours. Each default is far above what a real pod or node holds (a
/// kube-proxy node with 10,000 services has about 110,000 rules in 20 MB of save text); each is overridden by
/// its environment variable (docs/robustness.md). The one definition: readers, the manifest parser and the verifier
/// all take their bounds from `current`, which the command binds once from the environment; a task-local, so the
/// model reads no environment and tests bind their own.
public struct InputLimits: Sendable, Hashable {
    /// Bytes of one input file or pipe (`--input`, `--bundle`, `--resolv-conf`); reading stops past it.
    public var inputBytes: Int
    /// Bytes of one pod manifest (`--pod`, or the one a bundle holds).
    public var manifestBytes: Int
    /// Rules in one save dump (all tables), counted before the dump is parsed.
    public var rules: Int
    /// Levels of nesting in a manifest or bundle.
    public var nesting: Int
    /// Items in one list of ports, CIDRs, interfaces or ids (an annotation or an istio-iptables flag): each item
    /// becomes rules, and a chain of 100,000 port rules takes minutes to verify.
    public var listItems: Int

    /// Seconds a pipe or FIFO may stay silent (no data, no end of file) before the read gives up.
    public var inputWaitSeconds: Int
    /// Seconds a helper program (`iptables-nft-save`, `dot`) may run before it is stopped.
    public var helperSeconds: Int
    /// Steps one verification may take through the chains (a rule applied to one box of packets): a bound on its
    /// work, since some tables multiply their paths with every few rules and would be verified for hours.
    public var walkSteps: Int

    public init(inputBytes: Int = 256 << 20, manifestBytes: Int = 16 << 20, rules: Int = 500_000, nesting: Int = 256,
                listItems: Int = 10_000, inputWaitSeconds: Int = 60, helperSeconds: Int = 60, walkSteps: Int = 50_000_000) {
        self.inputWaitSeconds = inputWaitSeconds
        self.helperSeconds = helperSeconds
        self.walkSteps = walkSteps
        self.inputBytes = inputBytes
        self.manifestBytes = manifestBytes
        self.rules = rules
        self.nesting = nesting
        self.listItems = listItems
    }

    /// The bounds in force: the defaults unless the command (or a test) bound others.
    @TaskLocal public static var current = InputLimits()

    /// Each limit's environment variable, named in the errors that limit causes.
    public enum Variable {
        public static let inputBytes = "IPTAUDIT_MAX_INPUT_BYTES"
        public static let manifestBytes = "IPTAUDIT_MAX_MANIFEST_BYTES"
        public static let rules = "IPTAUDIT_MAX_RULES"
        public static let nesting = "IPTAUDIT_MAX_NESTING"
        public static let listItems = "IPTAUDIT_MAX_LIST_ITEMS"
        public static let inputWait = "IPTAUDIT_MAX_INPUT_WAIT"
        public static let helperSeconds = "IPTAUDIT_HELPER_TIMEOUT"
        public static let walkSteps = "IPTAUDIT_MAX_WALK_STEPS"
    }

    /// Each limit's environment variable, and where it is kept.
    public static var variables: [(name: String, field: WritableKeyPath<InputLimits, Int>)] { [
        (Variable.inputBytes, \.inputBytes),
        (Variable.manifestBytes, \.manifestBytes),
        (Variable.rules, \.rules),
        (Variable.nesting, \.nesting),
        (Variable.listItems, \.listItems),
        (Variable.inputWait, \.inputWaitSeconds),
        (Variable.helperSeconds, \.helperSeconds),
        (Variable.walkSteps, \.walkSteps),
    ] }

    /// A variable set to something that is not a positive whole number: refused rather than ignored.
    public struct InvalidOverride: Error, Hashable, Sendable, CustomStringConvertible {
        public var variable: String
        public var value: String
        public var description: String {
            "\(variable)=\(value.prefix(40)): expected a positive whole number; unset it for the default"
        }
    }

    /// The defaults with every variable `lookup` finds applied.
    public init(lookup: (String) -> String?) throws(InvalidOverride) {
        self.init()
        for (name, field) in Self.variables {
            guard let raw = lookup(name) else { continue }
            guard let value = Int(raw), value > 0 else { throw InvalidOverride(variable: name, value: raw) }
            self[keyPath: field] = value
        }
    }

    /// Why an input was refused, in the words every limit uses: what was seen, the limit, and how to raise it.
    public static func exceeded(_ what: String, limit: Int, variable: String) -> String {
        "\(what), over the limit of \(limit) (set \(variable) higher if the input is genuine)"
    }
}
