import FoundationEssentials
import NetfilterModel

/// Decodes libnftables' JSON for `list ruleset` (libnftables-json(5)) into tables.
///
/// The JSON is flat: per table, the table, its objects, sets and chains, then every rule naming its table
/// and chain. Rules are put back into their chains in the order listed, which is the kernel's order.
enum NftablesListing {
    static let source = "libnftables JSON (nft -j list ruleset)"

    static func decode(_ json: [UInt8]) throws(RuleReaderError) -> [NftTable] {
        let listing: Listing
        do {
            listing = try JSONDecoder().decode(Listing.self, from: Data(json))
        } catch let error as DecodingError {
            throw .malformed(file: source, line: 1, message: describe(error))
        } catch {
            throw .malformed(file: source, line: 1, message: "\(error)")
        }
        return try assemble(listing.nftables)
    }

    static func assemble(_ items: [Item]) throws(RuleReaderError) -> [NftTable] {
        var tables: [NftTable] = []
        var index: [TableKey: Int] = [:]
        func table(_ family: NftFamily, _ name: String, for what: String) throws(RuleReaderError) -> Int {
            guard let i = index[TableKey(family: family, name: name)] else {
                throw .malformed(file: source, line: 1, message: "\(what) names table \(family.rawValue) \(name), which was not listed")
            }
            return i
        }
        for item in items {
            switch item {
            case .metainfo, .ignored:
                continue
            case .table(let t):
                index[TableKey(family: t.family, name: t.name)] = tables.count
                tables.append(NftTable(family: t.family, name: t.name, handle: t.handle, flags: t.flags?.values ?? []))
            case .chain(let c):
                let i = try table(c.family, c.table, for: "chain \(c.name)")
                tables[i].chains.append(NftChain(name: c.name, handle: c.handle, base: try c.baseChain()))
            case .rule(let r):
                let i = try table(r.family, r.table, for: "a rule")
                guard let j = tables[i].chains.firstIndex(where: { $0.name == r.chain }) else {
                    throw .malformed(file: source, line: 1, message: "a rule names chain \(r.chain) of table \(r.table), which was not listed")
                }
                tables[i].chains[j].rules.append(NftRule(handle: r.handle, comment: r.comment, statements: r.expr))
            case .set(let s, let kind):
                let i = try table(s.family, s.table, for: "set \(s.name)")
                tables[i].sets.append(NftSet(kind: kind, name: s.name, handle: s.handle, keyType: s.type.values, dataType: s.map,
                                             flags: s.flags?.values ?? [], policy: s.policy, size: s.size, timeout: s.timeout,
                                             gcInterval: s.gcInterval, comment: s.comment, elements: s.elem ?? []))
            case .object(let kind, let header, let body):
                let i = try table(header.family, header.table, for: "\(kind) \(header.name)")
                tables[i].objects.append(NftObject(kind: kind, name: header.name, handle: header.handle, body: body))
            }
        }
        return tables
    }

    private static func describe(_ error: DecodingError) -> String {
        func at(_ context: DecodingError.Context) -> String {
            let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }.joined()
            return (path.isEmpty ? "" : "at \(path): ") + context.debugDescription
        }
        switch error {
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .keyNotFound(_, let c), .dataCorrupted(let c): return at(c)
        @unknown default: return "\(error)"
        }
    }

    struct TableKey: Hashable {
        var family: NftFamily
        var name: String
    }

    // MARK: the JSON objects

    struct Listing: Decodable {
        var nftables: [Item]
    }

    /// One member of the `nftables` array: an object whose only key says what it is.
    enum Item: Decodable {
        case metainfo
        case table(Table)
        case chain(Chain)
        case rule(Rule)
        case set(SetObject, NftSet.Kind)
        /// Stateful objects and flowtables: `counter`, `quota`, `ct helper`, `limit`, `flowtable`, ...
        case object(kind: String, ObjectHeader, NftJSON)
        /// `element` and anything a later libnftables adds: not part of a listing iptaudit models.
        case ignored

        static let objectKinds: Set<String> = [
            "counter", "quota", "ct helper", "limit", "ct timeout", "ct expectation", "secmark", "synproxy", "flowtable",
        ]

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: AnyKey.self)
            guard c.allKeys.count == 1, let key = c.allKeys.first else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                        debugDescription: "expected an object with one key"))
            }
            switch key.stringValue {
            case "metainfo": self = .metainfo
            case "table": self = .table(try c.decode(Table.self, forKey: key))
            case "chain": self = .chain(try c.decode(Chain.self, forKey: key))
            case "rule": self = .rule(try c.decode(Rule.self, forKey: key))
            case "set": self = .set(try c.decode(SetObject.self, forKey: key), .set)
            case "map": self = .set(try c.decode(SetObject.self, forKey: key), .map)
            case "meter": self = .set(try c.decode(SetObject.self, forKey: key), .meter)
            case let kind where Self.objectKinds.contains(kind):
                self = .object(kind: kind, try c.decode(ObjectHeader.self, forKey: key), try c.decode(NftJSON.self, forKey: key))
            default: self = .ignored
            }
        }
    }

    struct Table: Decodable {
        var family: NftFamily
        var name: String
        var handle: UInt64
        var flags: StringOrList?
    }

    struct Chain: Decodable {
        var family: NftFamily
        var table: String
        var name: String
        var handle: UInt64
        var type: NftBaseChain.ChainType?
        var hook: NftBaseChain.Hook?
        var prio: Int?
        var policy: NftBaseChain.Policy?
        var dev: String?

        /// The hook attachment; a base chain is one with a hook.
        func baseChain() throws(RuleReaderError) -> NftBaseChain? {
            guard let hook else { return nil }
            guard let type, let prio else {
                throw .malformed(file: NftablesListing.source, line: 1, message: "base chain \(name) has a hook but no type or priority")
            }
            return NftBaseChain(type: type, hook: hook, priority: prio, policy: policy ?? .accept, device: dev)
        }
    }

    struct Rule: Decodable {
        var family: NftFamily
        var table: String
        var chain: String
        var handle: UInt64
        var comment: String?
        var expr: [NftStatement]
    }

    struct SetObject: Decodable {
        var family: NftFamily
        var table: String
        var name: String
        var handle: UInt64
        var type: StringOrList
        var map: String?
        var flags: StringOrList?
        var policy: String?
        var size: Int?
        var timeout: Int?
        var gcInterval: Int?
        var comment: String?
        var elem: [NftExpression]?

        enum CodingKeys: String, CodingKey {
            case family, table, name, handle, type, map, flags, policy, size, timeout, comment, elem
            case gcInterval = "gc-interval"
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            family = try c.decode(NftFamily.self, forKey: .family)
            table = try c.decode(String.self, forKey: .table)
            name = try c.decode(String.self, forKey: .name)
            handle = try c.decode(UInt64.self, forKey: .handle)
            type = try c.decode(StringOrList.self, forKey: .type)
            map = try c.decodeIfPresent(String.self, forKey: .map)
            flags = try c.decodeIfPresent(StringOrList.self, forKey: .flags)
            policy = try c.decodeIfPresent(String.self, forKey: .policy)
            size = try c.decodeIfPresent(Int.self, forKey: .size)
            timeout = try c.decodeIfPresent(Int.self, forKey: .timeout)
            gcInterval = try c.decodeIfPresent(Int.self, forKey: .gcInterval)
            comment = try c.decodeIfPresent(String.self, forKey: .comment)
            // A map's elements are `[key, data]` pairs, which only a set's own decoding reads as mappings.
            elem = try c.decodeIfPresent([NftJSON].self, forKey: .elem)?.map { try NftExpression(setItem: $0, path: c.codingPath) }
        }
    }

    struct ObjectHeader: Decodable {
        var family: NftFamily
        var table: String
        var name: String
        var handle: UInt64
    }

    /// nft writes a single flag (or type) as a string and several as an array.
    struct StringOrList: Decodable {
        var values: [String]

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let one = try? c.decode(String.self) {
                values = [one]
            } else {
                values = try c.decode([String].self)
            }
        }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}
