import FoundationEssentials
import NetfilterModel

/// `show --format json`: the normalized model under an explicit, versioned schema (docs/json-schema.md).
public enum RulesetJSON {
    public static let schemaVersion = 1

    public static func render(_ ruleset: Ruleset, source: String) -> String {
        let doc = Document(
            schemaVersion: schemaVersion, source: source,
            backends: Dictionary(uniqueKeysWithValues: ruleset.backends.map { ($0.key.rawValue, $0.value.rawValue) }),
            tables: ruleset.tables.map { TableDoc($0) })
        return encode(doc)
    }

    /// Encodes with sorted keys and pretty printing, so output is stable and diffable.
    public static func encode(_ value: some Encodable) -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        guard let data = try? e.encode(value) else { return "{}" }
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    struct Document: Encodable {
        var schemaVersion: Int
        var source: String
        var backends: [String: String]
        var tables: [TableDoc]
    }

    struct TableDoc: Encodable {
        var family: String
        var table: String
        /// `inet`, `ip`, `ip6` for a native nftables table (in its normalized form); absent for iptables' tables.
        var nftFamily: String?
        var chains: [ChainDoc]
        init(_ t: Table) {
            family = t.family.rawValue
            table = t.name.rawValue
            nftFamily = t.nativeFamily?.rawValue
            let graph = ChainGraph(t)
            chains = t.chains.map { ChainDoc($0, table: t, graph: graph) }
        }
    }

    struct ChainDoc: Encodable {
        var name: String
        var builtin: Bool
        var policy: String?
        var policyCounters: Counters?
        var references: [String]
        var reachableFrom: [String]
        /// A native nftables base chain's declared `{hook, priority, type}`.
        var hook: HookRegistration?
        var rules: [RuleDoc]
        init(_ c: Chain, table: Table, graph: ChainGraph) {
            hook = c.registration
            name = c.name.rawValue
            builtin = c.isBuiltin
            policy = c.policy?.rawValue
            policyCounters = c.isBuiltin ? c.policyCounters : nil
            references = graph.referrers(c.name).map(\.description)
            reachableFrom = graph.hooks(reaching: c.name).map(\.rawValue)
            rules = c.rules.enumerated().map { RuleDoc($1, number: $0 + 1, chain: c.name, family: table.family) }
        }
    }

    struct RuleDoc: Encodable {
        var number: Int
        var text: String
        /// A native nftables rule: its kernel handle and its text as nft prints it (`text` is the normalized form).
        var handle: UInt64?
        var nft: String?
        var source: String?
        var destination: String?
        var sourceInverted: Bool?
        var destinationInverted: Bool?
        var inInterface: String?
        var outInterface: String?
        var inInterfaceInverted: Bool?
        var outInterfaceInverted: Bool?
        var `protocol`: String?
        var protocolInverted: Bool?
        var fragment: Bool?
        var matches: [ExtensionDoc]
        var target: ExtensionDoc
        var counters: Counters
        init(_ r: Rule, number: Int, chain: ChainName, family: Family) {
            self.number = number
            text = SaveSyntax.render(r, in: chain, family: family)
            handle = r.native?.handle
            nft = r.native?.text
            source = r.source.map(\.cidrText)
            sourceInverted = r.source?.inverted
            destination = r.destination.map(\.cidrText)
            destinationInverted = r.destination?.inverted
            inInterface = r.inInterface?.text
            inInterfaceInverted = r.inInterface?.inverted
            outInterface = r.outInterface?.text
            outInterfaceInverted = r.outInterface?.inverted
            self.protocol = r.protocol.map { SaveSyntax.protocolName($0.number) }
            protocolInverted = r.protocol?.inverted
            fragment = r.fragment.map { !$0 }
            matches = r.matches.map { ExtensionDoc(match: $0, family: family) }
            target = ExtensionDoc(target: r.target, family: family)
            counters = r.counters
        }
    }

    /// A match or target: its name, its options in save syntax, whether iptaudit decoded it, and the typed value.
    struct ExtensionDoc: Encodable {
        var name: String
        var options: String
        var recognized: Bool
        var value: AnyEncodable?
        init(match: Match, family: Family) {
            name = match.name
            options = String(SaveSyntax.matchOptions(match, family: family).drop { $0 == " " })
            if case .unrecognized = match { recognized = false } else { recognized = true }
            value = match.payload
        }
        init(target: Target, family: Family) {
            name = target.name
            let text = SaveSyntax.targetText(target, family: family)
            let head = target.chainReference != nil || text.isEmpty ? text : " -j " + target.name
            options = text.count > head.count ? String(text.dropFirst(head.count + 1)) : ""
            if case .unrecognized = target { recognized = false } else { recognized = true }
            value = target.payload
        }
    }

    struct AnyEncodable: Encodable {
        let encodeBody: (any Encoder) throws -> Void
        init(_ v: some Encodable) { encodeBody = v.encode }
        func encode(to encoder: any Encoder) throws { try encodeBody(encoder) }
    }
}

extension Match {
    /// The typed fields of this match, for JSON.
    var payload: RulesetJSON.AnyEncodable? {
        switch self {
        case .tcp(let v): .init(v)
        case .udp(let v): .init(v)
        case .multiport(let v): .init(v)
        case .owner(let v): .init(v)
        case .mark(let v), .connmark(let v): .init(v)
        case .conntrack(let v): .init(v)
        case .state(let v): .init(v)
        case .comment(let v): .init(["comment": v])
        case .addrtype(let v): .init(v)
        case .statistic(let v): .init(v)
        case .set(let v): .init(v)
        case .socket(let v): .init(v)
        case .mac(let v): .init(v)
        case .unrecognized(let v): .init(v)
        }
    }
}

extension Target {
    var payload: RulesetJSON.AnyEncodable? {
        switch self {
        case .continue, .accept, .drop, .queue, .return: nil
        case .jump(let c): .init(["chain": c.rawValue])
        case .goto(let c): .init(["goto": c.rawValue])
        case .redirect(let v), .masquerade(let v): .init(v)
        case .dnat(let v), .snat(let v): .init(v)
        case .mark(let v): .init(v)
        case .connmark(let v): .init(v)
        case .tproxy(let v): .init(v)
        case .ct(let v): .init(v)
        case .log(let v): .init(v)
        case .nflog(let v): .init(v)
        case .reject(let v): .init(v)
        case .unrecognized(let v): .init(v)
        }
    }
}
