import ArgumentParser
import IstioCapture
import NetfilterModel
import RuleReaders

extension BackendChoice: ExpressibleByArgument {}

/// Where the rules come from: the live namespace (default), another namespace, or saved dumps.
struct SourceOptions: ParsableArguments {
    @Option(name: .customLong("input"), help: ArgumentHelp(
        "Read iptables-save output or an iptables-restore script instead of the live tables (repeatable; - for stdin).",
        valueName: "file"), completion: .file())
    var inputs: [String] = []

    @Option(help: ArgumentHelp("Read the network namespace at this path (/proc/PID/ns/net, /run/netns/NAME).", valueName: "path"), completion: .file())
    var netns: String?

    @Option(help: ArgumentHelp("Read the network namespace of this process (any process of the pod, seen from the node).", valueName: "pid"))
    var pid: Int32?

    @Option(help: "Rule store on a live read: auto looks at both legacy x_tables and nf_tables. With --bundle: auto reads the store chosen at capture, legacy or nft that store's dump.")
    var backend: BackendChoice = .auto

    @Option(help: ArgumentHelp("Read a bundle written by `iptaudit capture` instead of the live tables (works offline).", valueName: "file"), completion: .file(extensions: ["json"]))
    var bundle: String?

    func validate() throws {
        if bundle != nil && (!inputs.isEmpty || netns != nil || pid != nil) {
            throw ValidationError("--bundle reads a saved capture; it cannot be combined with --input, --netns or --pid")
        }
        if !inputs.isEmpty && (netns != nil || pid != nil) {
            throw ValidationError("--input reads saved rules; it cannot be combined with --netns or --pid")
        }
        if netns != nil && pid != nil { throw ValidationError("give --netns or --pid, not both") }
        if let pid, pid <= 0 { throw ValidationError("--pid must be a process id, got \(pid)") }
    }

    var namespacePath: String? { netns ?? pid.map { "/proc/\($0)/ns/net" } }

    /// The declarations above for the direct parse (DirectParse.swift); DirectParseTests hold them to ArgumentParser's.
    static let directOptions: [DirectOption<SourceOptions>] = [
        .option("--input", as: String.self) { $0.inputs.append($1) },
        .option("--netns", as: String.self) { $0.netns = $1 },
        .option("--pid", as: Int32.self) { $0.pid = $1 },
        .option("--backend", as: BackendChoice.self) { $0.backend = $1 },
        .option("--bundle", as: String.self) { $0.bundle = $1 },
    ]

    static var directDefault: SourceOptions {
        var options = SourceOptions()
        options.inputs = []
        options.netns = nil
        options.pid = nil
        options.backend = .auto
        options.bundle = nil
        return options
    }

    /// The reader for these options; `family` forces the family of text input. Policy routing (`ip rule`,
    /// two child processes) is read only when the command checks it.
    func reader(family: Family?, policyRouting: Bool = true) -> any RulesetReader {
        if let bundle { return BundleRulesetReader(path: bundle, backend: backend) }
        if !inputs.isEmpty { return TextRulesetReader(inputs: inputs, family: family) }
        return LiveRulesetReader(backend: backend, namespacePath: namespacePath, readPolicyRouting: policyRouting,
                                 preferredChains: IstioNames.isIstioChain)
    }

    /// Reads, turning failures into the documented exit code with a one-line-first message.
    func read(_ request: ReadRequest, family: Family?, policyRouting: Bool = true) throws -> (Ruleset, String) {
        let reader = reader(family: family, policyRouting: policyRouting)
        do {
            let ruleset = try reader.read(request)
            return (ruleset, reader.sourceDescription)
        } catch {
            printError("iptaudit: \(error.description)")
            throw ExitCodes.unreadable
        }
    }
}

extension SourceOptions {
    /// The bundle named by `--bundle`, for the facts beside the tables (runtime inputs, pod manifest); exit 2 if bad.
    func loadBundle() throws -> CaptureBundle? {
        guard let bundle else { return nil }
        do {
            return try CaptureBundle.load(path: bundle)
        } catch {
            printError("iptaudit: \(error.description)")
            throw ExitCodes.unreadable
        }
    }
}

/// Address families on the command line.
enum FamilyChoice: String, ExpressibleByArgument, CaseIterable {
    case ipv4, ipv6, all
    var families: [Family] {
        switch self {
        case .ipv4: [.ipv4]
        case .ipv6: [.ipv6]
        case .all: [.ipv4, .ipv6]
        }
    }
    var forced: Family? {
        switch self {
        case .ipv4: .ipv4
        case .ipv6: .ipv6
        case .all: nil
        }
    }
}

/// Tables on the command line; `all` is every table iptables-save would print, `security` included.
enum TableChoice: String, ExpressibleByArgument, CaseIterable {
    case nat, mangle, raw, filter, all
    var tables: [TableName] { self == .all ? TableName.standard + [.security] : [TableName(rawValue)] }
}

/// Warns (on stderr, or to `diagnose`) when a family's rules are split between legacy and nf_tables.
func warnAboutSplitBackends(_ ruleset: Ruleset, diagnose: (String) -> Void = { printError($0) }) {
    for (family, backends) in ruleset.populatedBackends.sorted(by: { $0.key < $1.key }) where backends.count > 1 {
        let chosen = ruleset.backends[family].map { $0 == .legacy ? "legacy x_tables" : "nf_tables" } ?? "?"
        diagnose("iptaudit: warning: \(family) rules exist in both legacy x_tables and nf_tables; reading \(chosen) (the one holding Istio's chains). The kernel applies both: see the backend-split finding of `iptaudit verify`.")
    }
}
