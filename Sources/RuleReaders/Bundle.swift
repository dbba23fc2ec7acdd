import FoundationEssentials
import Glibc
import NetfilterModel

/// Everything `iptaudit verify` needs to check a pod later, somewhere else: the tables of every rule store
/// as iptables-save text, which store was chosen, policy routing, the runtime inputs istio-iptables read,
/// and where and when it was captured (`iptaudit capture -o FILE`; schema in docs/bundle-format.md).
///
/// The bundle is built from an allow-list of fields: no environment, no file other than the rules, the
/// routing state, resolv.conf's nameserver lines, and a pod manifest the user names.
public struct CaptureBundle: Sendable, Hashable {
    /// The schema this build writes and reads; any other version is refused (docs/bundle-format.md, "Versioning").
    public static let schemaVersion = 1
    /// What the `kind` field says, so a bundle is recognisable without its file name.
    public static let kind = "iptaudit-capture-bundle"

    /// Where the rules were read.
    public enum SourceKind: String, Sendable, Hashable, Codable {
        /// A live network namespace (this one, `--netns` or `--pid`).
        case live
        /// Saved dumps (`--input`).
        case text
    }

    public struct Source: Sendable, Hashable {
        public var kind: SourceKind
        /// The reader's description at capture time ("network namespace /proc/42/ns/net, backend auto").
        public var description: String
        /// `--backend` at capture time (live reads).
        public var backendOption: BackendChoice?
        public var namespacePath: String?
        public var pid: Int32?
        /// `--input` paths (text reads).
        public var inputs: [String]
        public init(kind: SourceKind, description: String, backendOption: BackendChoice? = nil, namespacePath: String? = nil,
                    pid: Int32? = nil, inputs: [String] = []) {
            self.kind = kind
            self.description = description
            self.backendOption = backendOption
            self.namespacePath = namespacePath
            self.pid = pid
            self.inputs = inputs
        }
    }

    /// The first line of each tool's `--version`, nil when it is not installed.
    public struct IptablesVersions: Sendable, Hashable {
        public var iptables: String?
        public var iptablesLegacy: String?
        public var iptablesNft: String?
        public init(iptables: String? = nil, iptablesLegacy: String? = nil, iptablesNft: String? = nil) {
            self.iptables = iptables
            self.iptablesLegacy = iptablesLegacy
            self.iptablesNft = iptablesNft
        }
    }

    /// Per family: the backend read for verification and the backends found holding rules.
    public struct FamilyRecord: Sendable, Hashable {
        public var family: Family
        public var chosenBackend: Backend
        /// nil when the reader did not say (a text source whose family holds no rules).
        public var populatedBackends: [Backend]?
        public init(family: Family, chosenBackend: Backend, populatedBackends: [Backend]?) {
            self.family = family
            self.chosenBackend = chosenBackend
            self.populatedBackends = populatedBackends
        }
    }

    /// The iptables-save text (with counters) of one backend and family.
    public struct RuleDump: Sendable, Hashable {
        public var backend: Backend
        public var family: Family
        /// Names of the tables in `saveText`, for a reader of the file.
        public var tables: [TableName]
        public var saveText: String
        public init(backend: Backend, family: Family, tables: [TableName], saveText: String) {
            self.backend = backend
            self.family = family
            self.tables = tables
            self.saveText = saveText
        }
    }

    public struct PodManifestText: Sendable, Hashable {
        /// The path given to `--pod` (`-` for standard input).
        public var fileName: String
        public var text: String
        public init(fileName: String, text: String) {
            self.fileName = fileName
            self.text = text
        }
    }

    public var toolName: String = "iptaudit"
    public var toolVersion: String
    /// RFC 3339 UTC, second precision.
    public var capturedAt: String
    public var hostname: String?
    public var source: Source
    /// The inode of the network namespace read (live reads); equal inodes mean the same namespace.
    public var networkNamespaceInode: UInt64?
    public var iptablesVersions: IptablesVersions
    public var families: [FamilyRecord]
    public var rules: [RuleDump]
    public var policyRouting: PolicyRouting?
    /// resolv.conf nameservers and IPv6 evidence of a live read; nil for text sources.
    public var runtime: RuntimeInputs?
    public var podManifest: PodManifestText?
    /// The istio-proxy process's view of the pod (`capture --pid` of it, without `--pod`).
    public var proxy: ProxyRecord?
    /// Native nftables tables (Istio's `--native-nftables` mode among them), as libnftables' JSON.
    public var nativeNftables: [NftTable] = []

    /// What the istio-proxy process showed of its pod at capture time: the environment variables Istio's
    /// configuration is read from, the downward-API files the injector mounts (`/etc/istio/pod`), and its identity.
    /// `verify --bundle` derives the configuration from it as `verify --pid` does live.
    public struct ProxyRecord: Sendable, Hashable {
        public var pid: Int32
        public var environment: [String: String]
        /// The files' text as the kubelet wrote them; nil where the file could not be read.
        public var annotations: String?
        public var labels: String?
        public var uid: UInt32?
        public var gid: UInt32?
        public init(pid: Int32, environment: [String: String], annotations: String?, labels: String?, uid: UInt32?, gid: UInt32?) {
            self.pid = pid
            self.environment = environment
            self.annotations = annotations
            self.labels = labels
            self.uid = uid
            self.gid = gid
        }
    }

    public init(toolVersion: String, capturedAt: String, hostname: String?, source: Source, networkNamespaceInode: UInt64?,
                iptablesVersions: IptablesVersions, families: [FamilyRecord], rules: [RuleDump],
                policyRouting: PolicyRouting?, runtime: RuntimeInputs?, podManifest: PodManifestText?) {
        self.toolVersion = toolVersion
        self.capturedAt = capturedAt
        self.hostname = hostname
        self.source = source
        self.networkNamespaceInode = networkNamespaceInode
        self.iptablesVersions = iptablesVersions
        self.families = families
        self.rules = rules
        self.policyRouting = policyRouting
        self.runtime = runtime
        self.podManifest = podManifest
    }
}

// MARK: - Capturing

extension CaptureBundle {
    /// What to capture from.
    public enum CaptureSource: Sendable, Hashable {
        case live(backend: BackendChoice, namespacePath: String?, pid: Int32?)
        case text(inputs: [String], family: Family?)
    }

    /// Every table a capture keeps; `security` only where it exists.
    public static let capturedTables: [TableName] = TableName.standard + [.security]

    /// Reads the source and gathers the allow-listed facts around it.
    ///
    /// A live capture reads the tables as `verify` would (for the backend choice and policy routing), then the
    /// full contents of each backend so a split between legacy and nf_tables survives. `preferredChains` picks
    /// the backend to record as chosen when both hold rules, as `LiveRulesetReader`'s does.
    public static func capture(from source: CaptureSource, toolVersion: String, podManifest: PodManifestText? = nil, proxy: ProxyRecord? = nil,
                               now: Date = Date(), preferredChains: @escaping @Sendable (ChainName) -> Bool = { _ in false })
        throws(RuleReaderError) -> CaptureBundle {
        let request = ReadRequest(tables: capturedTables, families: Family.allCases)
        var families: [FamilyRecord] = []
        var dumps: [RuleDump] = []
        var policyRouting: PolicyRouting?
        var runtime: RuntimeInputs?
        var inode: UInt64?
        var native: [NftTable] = []
        let described: Source
        switch source {
        case .live(let backend, let namespacePath, let pid):
            let reader = LiveRulesetReader(backend: backend, namespacePath: namespacePath, preferredChains: preferredChains)
            let chosen = try reader.read(request)
            native = chosen.nativeTables
            for family in Family.allCases {
                guard let b = chosen.backends[family] else { continue }
                families.append(FamilyRecord(family: family, chosenBackend: b, populatedBackends: chosen.populatedBackends[family]))
            }
            policyRouting = chosen.policyRouting
            if backend != .nft {
                let legacy = try LiveRulesetReader(backend: .legacy, namespacePath: namespacePath, readPolicyRouting: false).read(request)
                for family in Family.allCases {
                    dumps.append(dump(legacy.tables.filter { $0.family == family }, backend: .legacy, family: family))
                }
            }
            if backend != .legacy {
                let inventory = try NftablesInventory.read(namespacePath: namespacePath)
                for family in Family.allCases {
                    guard inventory.holdsIptablesNftTables(family: family) else {
                        // What iptables-nft-save would print for a family without iptables-nft tables.
                        dumps.append(RuleDump(backend: .nft, family: family, tables: [], saveText: ""))
                        continue
                    }
                    do {
                        let text = try nftSave(family: family, namespacePath: namespacePath)
                        let names = try parse(text, family: family, file: "iptables-nft-save").map(\.name)
                        dumps.append(RuleDump(backend: .nft, family: family, tables: names, saveText: text))
                    } catch let error {
                        // As the live reader: without iptables-nft, auto mode keeps the legacy tables alone.
                        guard backend == .auto, case .unavailable = error else { throw error }
                    }
                }
            }
            runtime = RuntimeInputs.gather(pid: pid, namespacePath: namespacePath)
            inode = namespacePath.map(NetworkNamespace.inode(of:)) ?? NetworkNamespace.currentInode()
            described = Source(kind: .live, description: reader.sourceDescription, backendOption: backend,
                               namespacePath: namespacePath, pid: pid)
        case .text(let inputs, let family):
            let reader = TextRulesetReader(inputs: inputs, family: family)
            let ruleset = try reader.read(request)
            for family in Family.allCases {
                guard let b = ruleset.backends[family] else { continue }
                families.append(FamilyRecord(family: family, chosenBackend: b, populatedBackends: ruleset.populatedBackends[family]))
                dumps.append(dump(ruleset.tables.filter { $0.family == family }, backend: b, family: family))
            }
            described = Source(kind: .text, description: reader.sourceDescription, inputs: inputs)
        }
        var bundle = CaptureBundle(toolVersion: toolVersion, capturedAt: timestamp(now), hostname: hostName(), source: described,
                                   networkNamespaceInode: inode, iptablesVersions: iptablesVersions(dumps), families: families,
                                   rules: dumps, policyRouting: policyRouting, runtime: runtime, podManifest: podManifest)
        bundle.nativeNftables = native
        bundle.proxy = proxy
        return bundle
    }

    /// Tables read through libiptc or from text, in iptables-save 1.8.9 syntax with counters.
    static func dump(_ all: [Table], backend: Backend, family: Family) -> RuleDump {
        // Native nftables tables are kept in their own JSON form (`nativeNftables`), not as save text.
        let tables = all.filter { $0.nativeFamily == nil }
        return RuleDump(backend: backend, family: family, tables: tables.map(\.name),
                        saveText: tables.map { SaveSyntax.render($0, counters: true) }.joined())
    }

    /// `iptables-nft-save -c` inside the namespace: the nf_tables side with its counters.
    static func nftSave(family: Family, namespacePath: String?) throws(RuleReaderError) -> String {
        try NftRulesetReader(namespacePath: namespacePath).save(family: family, counters: true)
    }

    /// The iptables version behind the dumps, as `iptables-nft-save` names itself in its header
    /// (`# Generated by iptables-nft-save v1.8.9 (nf_tables) on …`). No tool is run just to ask for a version.
    static func iptablesVersions(_ dumps: [RuleDump]) -> IptablesVersions {
        let nft = dumps.lazy.filter { $0.backend == .nft }.compactMap { dump -> String? in
            guard let line = dump.saveText.split(separator: "\n").first(where: { $0.hasPrefix("# Generated by ") }),
                  let v = line.split(separator: " ").first(where: { $0.hasPrefix("v") && $0.dropFirst().first?.isNumber == true })
            else { return nil }
            return "iptables \(v) (nf_tables)"
        }.first
        return IptablesVersions(iptablesNft: nft)
    }

    static func hostName() -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `2026-11-29T13:00:00Z`: RFC 3339 in UTC, whole seconds.
    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(timeZone: .gmt))
    }
}

// MARK: - Reading back

extension CaptureBundle {
    /// The tables as the reader of the captured source returned them: the chosen backend per family (or the one
    /// `backend` forces), the recorded populated backends, and the policy routing.
    public func ruleset(_ request: ReadRequest, backend: BackendChoice = .auto, file: String) throws(RuleReaderError) -> Ruleset {
        var result = Ruleset()
        for record in families where request.families.contains(record.family) {
            let wanted: Backend
            switch backend {
            case .auto: wanted = record.chosenBackend
            case .legacy: wanted = .legacy
            case .nft: wanted = .nft
            }
            guard let dump = rules.first(where: { $0.backend == wanted && $0.family == record.family }) else {
                throw .unavailable(family: record.family, table: nil,
                                   reason: "\(file) holds no \(wanted.rawValue) tables for \(record.family) (captured from \(source.description))")
            }
            let tables = try Self.parse(dump.saveText, family: dump.family, file: "\(file) [\(dump.backend.rawValue) \(dump.family.rawValue)]")
            result.tables += tables.filter { request.tables.contains($0.name) }
            result.backends[record.family] = wanted
            // A forced store is all a live read with that --backend looks at, so only it can show as populated.
            if let populated = record.populatedBackends {
                result.populatedBackends[record.family] = backend == .auto ? populated : populated.filter { $0 == wanted }
                for held in result.populatedBackends[record.family] ?? [] {
                    guard let d = rules.first(where: { $0.backend == held && $0.family == record.family }) else { continue }
                    let parsed = held == wanted ? tables
                        : try Self.parse(d.saveText, family: d.family, file: "\(file) [\(d.backend.rawValue) \(d.family.rawValue)]")
                    result.populatedTables[record.family, default: [:]][held] = parsed.filter { $0.ruleCount > 0 }
                }
            }
        }
        result.policyRouting = policyRouting
        result.nativeTables = nativeNftables
        result.tables += nativeNftables.flatMap { $0.normalized() }.filter { request.families.contains($0.family) }
        return result
    }

    /// Every dump parsed, so a bundle with a broken table is refused when loaded, not half-way through a report;
    /// and the records checked against the dumps, so an edited or damaged bundle is refused naming the field
    /// instead of dropping rules (a `chosenBackend` without its dump) or reporting a split that is not there.
    func checkDumps(file: String) throws(RuleReaderError) {
        struct Key: Hashable { var backend: Backend; var family: Family }
        var seen: [Key: Int] = [:]
        var holdsRules: [Key: (rules: Bool, chains: Bool)] = [:]
        for (i, dump) in rules.enumerated() {
            let key = Key(backend: dump.backend, family: dump.family)
            if let first = seen[key] {
                throw .unreadableInput(file: file, reason: "rules[\(i)]: a second \(dump.backend.rawValue) \(dump.family) dump "
                    + "(the first is rules[\(first)]); a bundle holds one per backend and family")
            }
            seen[key] = i
            let name = "\(file) [\(dump.backend.rawValue) \(dump.family.rawValue)]"
            let tables = try Self.parse(dump.saveText, family: dump.family, file: name)
            if let stray = tables.first(where: { $0.family != dump.family }) {
                throw .malformed(file: name, line: 0, message: "table \(stray.name) is \(stray.family), in the \(dump.family) dump")
            }
            holdsRules[key] = (tables.contains { $0.ruleCount > 0 }, tables.contains { $0.chains.contains { !$0.isBuiltin } })
        }
        // nftables names a table once per family; a second copy would leave the walk reading one and the checks
        // the other, so a hand-made bundle that repeats one is refused as the save parser refuses `*nat` twice.
        var nativeSeen: [String: Int] = [:]
        for (i, table) in nativeNftables.enumerated() {
            let key = "\(table.family.rawValue) \(table.name)"
            if let first = nativeSeen[key] {
                throw .unreadableInput(file: file, reason: "nativeNftables[\(i)]: table \(key) is recorded twice "
                    + "(the first is nativeNftables[\(first)]); nftables names a table once per family")
            }
            nativeSeen[key] = i
        }
        var recorded: Set<Family> = []
        for (i, record) in families.enumerated() {
            guard recorded.insert(record.family).inserted else {
                throw .unreadableInput(file: file, reason: "families[\(i)]: \(record.family) is recorded twice")
            }
            guard seen[Key(backend: record.chosenBackend, family: record.family)] != nil else {
                throw .unreadableInput(file: file, reason: "families[\(i)].chosenBackend: \(record.family) names backend "
                    + "\(record.chosenBackend.rawValue), but rules holds no such dump")
            }
            guard let populated = record.populatedBackends else { continue }
            for backend in populated {
                let held = holdsRules[Key(backend: backend, family: record.family)]
                guard let held, held.rules || held.chains else {
                    throw .unreadableInput(file: file, reason: "families[\(i)].populatedBackends: lists \(backend.rawValue) for "
                        + "\(record.family), but rules holds no \(backend.rawValue) \(record.family) dump with rules")
                }
            }
            for (key, held) in holdsRules where key.family == record.family && held.rules && !populated.contains(key.backend) {
                throw .unreadableInput(file: file, reason: "families[\(i)].populatedBackends: the \(key.backend.rawValue) "
                    + "\(record.family) dump (rules[\(seen[key] ?? 0)]) holds rules, but the list leaves \(key.backend.rawValue) out")
            }
        }
    }

    static func parse(_ text: String, family: Family, file: String) throws(RuleReaderError) -> [Table] {
        if text.allSatisfy(\.isWhitespace) { return [] }
        return try SaveTextParser(fileName: file, family: family).parse(text)
    }
}

// MARK: - File format

extension CaptureBundle {
    /// The JSON of the bundle: sorted keys, pretty-printed, so two captures diff line by line.
    public func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        // Every field is a string, number, bool, array or object of those: encoding cannot fail.
        return (try? encoder.encode(BundleSchema(self))) ?? Data()
    }

    /// Writes the bundle mode 0600 (it may hold a pod manifest), replacing only an absent path or a regular file.
    public func write(to path: String) throws(RuleReaderError) {
        do {
            try OutputFile.replace(path, with: [UInt8](encoded()))
        } catch {
            throw .unwritableOutput(file: path, reason: error.description)
        }
    }

    /// Decodes and checks a bundle; every failure names the file and what is wrong in one line.
    public static func decode(_ data: Data, file: String) throws(RuleReaderError) -> CaptureBundle {
        let limit = InputLimits.current.nesting
        if let line = nestingExceeded(data, limit: limit) {
            // The JSON decoder refuses deep nesting too, but only as "not valid JSON".
            throw .unreadableInput(file: file, reason: "line \(line): " + InputLimits.exceeded(
                "nested more than \(limit) levels deep", limit: limit, variable: InputLimits.Variable.nesting))
        }
        let decoder = JSONDecoder()
        guard let header = try? decoder.decode(BundleHeader.self, from: data) else {
            let reason = (try? decoder.decode(AnyJSONContainer.self, from: data)) == nil
                ? "not JSON (truncated or not an iptaudit bundle)"
                : "not an iptaudit bundle: no numeric schemaVersion"
            throw .unreadableInput(file: file, reason: reason)
        }
        if let kind = header.kind, kind != Self.kind {
            throw .unreadableInput(file: file, reason: "not an iptaudit bundle: kind is '\(kind)', expected '\(Self.kind)'")
        }
        guard header.schemaVersion == schemaVersion else {
            throw .unreadableInput(file: file, reason: "unsupported schemaVersion \(header.schemaVersion), expected \(schemaVersion)")
        }
        let schema: BundleSchema
        do {
            schema = try decoder.decode(BundleSchema.self, from: data)
        } catch let error as DecodingError {
            throw .unreadableInput(file: file, reason: "invalid bundle: \(describe(error))")
        } catch {
            throw .unreadableInput(file: file, reason: "invalid bundle: \(error)")
        }
        let bundle = schema.bundle
        try bundle.checkDumps(file: file)
        return bundle
    }

    /// The line where JSON arrays and objects first nest deeper than `limit`, in one pass over the bytes.
    static func nestingExceeded(_ data: Data, limit: Int) -> Int? {
        var depth = 0, line = 1, inString = false, escaped = false
        for byte in data {
            if byte == UInt8(ascii: "\n") { line += 1 }
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > limit { return line }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return nil
    }

    public static func load(path: String) throws(RuleReaderError) -> CaptureBundle {
        let data: Data
        do {
            data = Data(try FileContents.read(path: path))
        } catch {
            switch error.code {
            case ENOENT: throw .unreadableInput(file: path, reason: "no such file")
            case EISDIR: throw .unreadableInput(file: path, reason: "is a directory, not a bundle")
            default: throw .unreadableInput(file: path, reason: error.description)
            }
        }
        return try decode(data, file: path)
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().drop { $0 == "." }.description
        }
        switch error {
        case .keyNotFound(let key, let context):
            let at = path(context.codingPath)
            return "missing field \(at.isEmpty ? "" : at + ".")\(key.stringValue)"
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            return "\(path(context.codingPath)): expected \(type)"
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            // The document is JSON (its header decoded): the decoder says "not valid JSON", naming no field, for a
            // number its field cannot hold or a string it cannot read.
            return "a value cannot be decoded (a number that does not fit its field, such as a negative, fractional or "
                + "too large whole number, or a string with an invalid escape)"
        case .dataCorrupted(let context):
            return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}

/// Reads the tables of a capture bundle, as the live reader read them when it was captured.
public struct BundleRulesetReader: RulesetReader {
    public let path: String
    /// `auto` takes the backend chosen at capture time; `legacy` / `nft` read that store's dump instead.
    public let backend: BackendChoice

    public init(path: String, backend: BackendChoice = .auto) {
        self.path = path
        self.backend = backend
    }

    /// Names the file and what it was captured from, so a report read later still says where its rules lived.
    public var sourceDescription: String {
        guard let bytes = try? FileContents.read(path: path), case let data = Data(bytes),
              let schema = try? JSONDecoder().decode(BundleSchema.self, from: data),
              schema.schemaVersion == CaptureBundle.schemaVersion else { return "bundle \(path)" }
        let host = schema.hostname.map { " on \($0)" } ?? ""
        return "bundle \(path) (\(schema.source.description)\(host), captured \(schema.capturedAt))"
    }

    public func read(_ request: ReadRequest) throws(RuleReaderError) -> Ruleset {
        try CaptureBundle.load(path: path).ruleset(request, backend: backend, file: path)
    }
}

// MARK: - Schema (version 1)

/// Decodes from any JSON object or array and keeps nothing: whether the bytes are JSON at all.
private struct AnyJSONContainer: Decodable {
    init(from decoder: any Decoder) throws {
        if (try? decoder.container(keyedBy: AnyKey.self)) != nil { return }
        _ = try decoder.unkeyedContainer()
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

/// The fields read before anything else, so a future version is refused with its number.
private struct BundleHeader: Decodable {
    var schemaVersion: Int
    var kind: String?
}

/// The on-disk form; explicit keys so a rename in the model never changes the file.
private struct BundleSchema: Codable {
    var schemaVersion: Int
    var kind: String
    var tool: ToolSchema
    var capturedAt: String
    var hostname: String?
    var source: SourceSchema
    var networkNamespaceInode: UInt64?
    var iptablesVersions: VersionsSchema
    var families: [FamilySchema]
    var rules: [DumpSchema]
    var policyRouting: RoutingSchema?
    var runtime: RuntimeSchema?
    var podManifest: ManifestSchema?
    /// Written only when the namespace holds native nftables tables; absent in older bundles.
    var nativeNftables: [NftTable]?
    /// Written only for `capture --pid` of an istio-proxy process without `--pod`; absent in older bundles.
    var proxy: ProxySchema?

    enum CodingKeys: String, CodingKey {
        case schemaVersion, kind, tool, capturedAt, hostname, source, networkNamespaceInode, iptablesVersions
        case families, rules, policyRouting, runtime, podManifest, nativeNftables, proxy
    }

    struct ToolSchema: Codable {
        var name: String
        var version: String
        enum CodingKeys: String, CodingKey { case name, version }
    }
    struct SourceSchema: Codable {
        var kind: CaptureBundle.SourceKind
        var description: String
        var backendOption: String?
        var namespacePath: String?
        var pid: Int32?
        var inputs: [String]
        enum CodingKeys: String, CodingKey { case kind, description, backendOption, namespacePath, pid, inputs }
    }
    struct VersionsSchema: Codable {
        var iptables: String?
        var iptablesLegacy: String?
        var iptablesNft: String?
        enum CodingKeys: String, CodingKey { case iptables, iptablesLegacy, iptablesNft }
    }
    struct FamilySchema: Codable {
        var family: Family
        var chosenBackend: Backend
        var populatedBackends: [Backend]?
        enum CodingKeys: String, CodingKey { case family, chosenBackend, populatedBackends }
    }
    struct DumpSchema: Codable {
        var backend: Backend
        var family: Family
        var tables: [String]
        var saveText: String
        enum CodingKeys: String, CodingKey { case backend, family, tables, saveText }
    }
    struct RoutingSchema: Codable {
        struct Rule: Codable {
            var family: Family
            var priority: UInt32?
            var fwmark: UInt32?
            var fwmask: UInt32?
            /// Absent for a rule that looks no table up (`action`), so that an iptaudit from before actions were
            /// recorded refuses the bundle instead of reading the rule as a lookup.
            var table: String?
            /// Written only when true; absent in bundles from before it was read.
            var inverted: Bool?
            /// Selectors, written only when the rule has them; absent in bundles from before they were read.
            var source: String?
            var destination: String?
            var inputInterface: String?
            var outputInterface: String?
            var suppressPrefixLength: Int?
            /// Absent for a lookup, which names its `table`; a rule with an action has no `table`.
            var action: PolicyRouting.RoutingRule.Action?
            var gotoTarget: UInt32?
            var ipProtocol: UInt8?
            var otherSelectors: [String]?
            enum CodingKeys: String, CodingKey {
                case family, priority, fwmark, fwmask, table, inverted, source, destination, inputInterface, outputInterface, suppressPrefixLength
                case action, gotoTarget, ipProtocol, otherSelectors
            }
        }
        struct Route: Codable {
            var family: Family
            var type: String
            var destination: String
            var device: String?
            var table: String
            enum CodingKeys: String, CodingKey { case family, type, destination, device, table }
        }
        var rules: [Rule]
        var routes: [Route]
        /// By family (`ipv4`, `ipv6`), the tables whose routes were read; absent in bundles from before it was.
        var routeTablesRead: [String: [String]]?
        enum CodingKeys: String, CodingKey { case rules, routes, routeTablesRead }
    }
    struct RuntimeSchema: Codable {
        /// Absent when the capture could not read the pod's resolv.conf (no `--pid`).
        var nameservers: [String]?
        var hasGlobalIPv6: Bool?
        /// The process's `/etc/group`, name to gid (`--pid` only): how the pod's image numbers owner-group names.
        var groups: [String: UInt32]?
        enum CodingKeys: String, CodingKey { case nameservers, hasGlobalIPv6, groups }
    }
    struct ProxySchema: Codable {
        var pid: Int32
        var environment: [String: String]
        var annotations: String?
        var labels: String?
        var uid: UInt32?
        var gid: UInt32?
        enum CodingKeys: String, CodingKey { case pid, environment, annotations, labels, uid, gid }
    }
    struct ManifestSchema: Codable {
        var fileName: String
        var text: String
        enum CodingKeys: String, CodingKey { case fileName, text }
    }

    init(_ b: CaptureBundle) {
        schemaVersion = CaptureBundle.schemaVersion
        kind = CaptureBundle.kind
        tool = ToolSchema(name: b.toolName, version: b.toolVersion)
        capturedAt = b.capturedAt
        hostname = b.hostname
        source = SourceSchema(kind: b.source.kind, description: b.source.description, backendOption: b.source.backendOption?.rawValue,
                              namespacePath: b.source.namespacePath, pid: b.source.pid, inputs: b.source.inputs)
        networkNamespaceInode = b.networkNamespaceInode
        iptablesVersions = VersionsSchema(iptables: b.iptablesVersions.iptables, iptablesLegacy: b.iptablesVersions.iptablesLegacy,
                                          iptablesNft: b.iptablesVersions.iptablesNft)
        families = b.families.map { FamilySchema(family: $0.family, chosenBackend: $0.chosenBackend, populatedBackends: $0.populatedBackends) }
        rules = b.rules.map { DumpSchema(backend: $0.backend, family: $0.family, tables: $0.tables.map(\.rawValue), saveText: $0.saveText) }
        policyRouting = b.policyRouting.map { r in
            RoutingSchema(rules: r.rules.map { .init(family: $0.family, priority: $0.priority, fwmark: $0.fwmark, fwmask: $0.fwmask,
                                                    table: $0.action == nil ? $0.table : nil,
                                                    inverted: $0.inverted ? true : nil, source: $0.source, destination: $0.destination,
                                                    inputInterface: $0.inputInterface, outputInterface: $0.outputInterface,
                                                    suppressPrefixLength: $0.suppressPrefixLength, action: $0.action, gotoTarget: $0.gotoTarget,
                                                    ipProtocol: $0.ipProtocol, otherSelectors: $0.otherSelectors) },
                          routes: r.routes.map { .init(family: $0.family, type: $0.type, destination: $0.destination, device: $0.device, table: $0.table) },
                          routeTablesRead: r.routeTablesRead.map { Dictionary(uniqueKeysWithValues: $0.map { ($0.key.rawValue, $0.value) }) })
        }
        runtime = b.runtime.map { RuntimeSchema(nameservers: $0.nameservers, hasGlobalIPv6: $0.hasGlobalIPv6, groups: $0.groups) }
        podManifest = b.podManifest.map { ManifestSchema(fileName: $0.fileName, text: $0.text) }
        nativeNftables = b.nativeNftables.isEmpty ? nil : b.nativeNftables
        proxy = b.proxy.map { ProxySchema(pid: $0.pid, environment: $0.environment, annotations: $0.annotations, labels: $0.labels,
                                          uid: $0.uid, gid: $0.gid) }
    }

    var bundle: CaptureBundle {
        var runtimeInputs: RuntimeInputs?
        if let runtime {
            var r = RuntimeInputs()
            r.nameservers = runtime.nameservers
            r.hasGlobalIPv6 = runtime.hasGlobalIPv6
            r.groups = runtime.groups
            runtimeInputs = r
        }
        var b = CaptureBundle(
            toolVersion: tool.version, capturedAt: capturedAt, hostname: hostname,
            source: .init(kind: source.kind, description: source.description, backendOption: source.backendOption.flatMap(BackendChoice.init(rawValue:)),
                          namespacePath: source.namespacePath, pid: source.pid, inputs: source.inputs),
            networkNamespaceInode: networkNamespaceInode,
            iptablesVersions: .init(iptables: iptablesVersions.iptables, iptablesLegacy: iptablesVersions.iptablesLegacy,
                                    iptablesNft: iptablesVersions.iptablesNft),
            families: families.map { .init(family: $0.family, chosenBackend: $0.chosenBackend, populatedBackends: $0.populatedBackends) },
            rules: rules.map { .init(backend: $0.backend, family: $0.family, tables: $0.tables.map(TableName.init(rawValue:)), saveText: $0.saveText) },
            policyRouting: policyRouting.map { r in
                PolicyRouting(rules: r.rules.map { .init(family: $0.family, priority: $0.priority, fwmark: $0.fwmark, fwmask: $0.fwmask, table: $0.table ?? "",
                                                         inverted: $0.inverted ?? false, source: $0.source, destination: $0.destination,
                                                         inputInterface: $0.inputInterface, outputInterface: $0.outputInterface,
                                                         suppressPrefixLength: $0.suppressPrefixLength).with(action: $0.action, gotoTarget: $0.gotoTarget,
                                                                                                             ipProtocol: $0.ipProtocol, otherSelectors: $0.otherSelectors) },
                              routes: r.routes.map { .init(family: $0.family, type: $0.type, destination: $0.destination, device: $0.device, table: $0.table) },
                              routeTablesRead: r.routeTablesRead.map { read in
                                  Dictionary(uniqueKeysWithValues: Family.allCases.compactMap { f in read[f.rawValue].map { (f, $0) } })
                              })
            },
            runtime: runtimeInputs,
            podManifest: podManifest.map { .init(fileName: $0.fileName, text: $0.text) })
        b.toolName = tool.name
        b.nativeNftables = nativeNftables ?? []
        b.proxy = proxy.map { .init(pid: $0.pid, environment: $0.environment, annotations: $0.annotations, labels: $0.labels, uid: $0.uid, gid: $0.gid) }
        return b
    }
}
