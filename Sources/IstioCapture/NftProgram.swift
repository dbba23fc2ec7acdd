import NetfilterModel

/// Istio's native tables (`tools/istio-nftables/pkg/constants`), in the order istio-iptables submits them.
enum IstioNftTable: String, CaseIterable {
    case nat = "istio-proxy-nat"
    case mangle = "istio-proxy-mangle"
    case raw = "istio-proxy-raw"

    /// The chains istio-iptables declares for this table, in its order, base chains with their hook. Only the
    /// chains that get rules are created, and the table only when one does.
    var chains: [(name: NftChainName, base: NftBaseChain?)] {
        switch self {
        case .nat:
            [(.prerouting, NftBaseChain(type: .nat, hook: .prerouting, priority: -100)),
             (.output, NftBaseChain(type: .nat, hook: .output, priority: -100)),
             (.istioInbound, nil), (.istioRedirect, nil), (.istioInRedirect, nil), (.istioOutput, nil), (.istioOutputDNS, nil)]
        case .mangle:
            [(.prerouting, NftBaseChain(type: .filter, hook: .prerouting, priority: -150)),
             (.output, NftBaseChain(type: .route, hook: .output, priority: -150)),
             (.istioDivert, nil), (.istioTProxy, nil), (.istioInbound, nil), (.istioDrop, nil)]
        case .raw:
            [(.prerouting, NftBaseChain(type: .filter, hook: .prerouting, priority: -300)),
             (.output, NftBaseChain(type: .filter, hook: .output, priority: -300)),
             (.istioInbound, nil), (.istioOutputDNS, nil)]
        }
    }
}

/// A chain name in Istio's native tables: lower case, unlike the iptables `ChainName`s.
struct NftChainName: RawRepresentable, Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    var rawValue: String
    init(rawValue: String) { self.rawValue = rawValue }
    init(stringLiteral value: String) { rawValue = value }
    var description: String { rawValue }

    static let prerouting: NftChainName = "prerouting"
    static let output: NftChainName = "output"
    static let istioInbound: NftChainName = "istio-inbound"
    static let istioRedirect: NftChainName = "istio-redirect"
    static let istioInRedirect: NftChainName = "istio-in-redirect"
    static let istioOutput: NftChainName = "istio-output"
    static let istioOutputDNS: NftChainName = "istio-output-dns"
    static let istioDivert: NftChainName = "istio-divert"
    static let istioTProxy: NftChainName = "istio-tproxy"
    static let istioDrop: NftChainName = "istio-drop"
}

/// The add and insert operations istio-iptables puts into its one nft transaction, replayed into the tables a
/// fresh network namespace holds afterwards.
///
/// Replaying keeps nft's `insert rule ... index N` exact (the new rule goes before the one at position N, so
/// two inserts at the same index end up in reverse order, docs/capture-model.md §14) and lets the replay fail where nft
/// would reject the transaction.
struct NftProgram {
    /// 1.28 and later put a `counter` in every rule; 1.27 none.
    let counters: Bool
    private var operations: [IstioNftTable: [Operation]] = [:]

    struct Operation {
        var chain: NftChainName
        /// `insert rule ... index N`; nil for `add rule`.
        var index: Int?
        var statements: [NftStatement]
    }

    init(counters: Bool) { self.counters = counters }

    mutating func append(_ table: IstioNftTable, _ chain: NftChainName, _ statements: [NftStatement]) {
        operations[table, default: []].append(Operation(chain: chain, index: nil, statements: kept(statements)))
    }

    /// `InsertRule(chain, table, index, ...)`: 0-based, as nft counts.
    mutating func insert(_ table: IstioNftTable, _ chain: NftChainName, at index: Int, _ statements: [NftStatement]) {
        operations[table, default: []].append(Operation(chain: chain, index: index, statements: kept(statements)))
    }

    private func kept(_ statements: [NftStatement]) -> [NftStatement] {
        counters ? statements : statements.filter { if case .counter = $0 { false } else { true } }
    }

    /// The tables as nft lists them after the transaction: Istio's table order, its chain order, rules in the
    /// order the adds and inserts leave them, each rule in its listed form (`N.listed`).
    ///
    /// `insertPastEndAppends`: istio-iptables turns an insert at an index past the chain's end into an append
    /// (1.27.4, 1.28.1 and later); before, it submits it and nft rejects the transaction. Inserts into a chain
    /// with no rules yet are appends in every version.
    func tables(insertPastEndAppends: Bool, version: IstioVersion) throws(IstioCaptureError) -> [NftTable] {
        var out: [NftTable] = []
        for table in IstioNftTable.allCases {
            guard let ops = operations[table], !ops.isEmpty else { continue }
            var rules: [NftChainName: [[NftStatement]]] = [:]
            for op in ops {
                var list = rules[op.chain, default: []]
                let listed = N.listed(op.statements)
                if let index = op.index, !list.isEmpty, index < list.count {
                    list.insert(listed, at: index)
                } else if let index = op.index, !list.isEmpty, !insertPastEndAppends {
                    throw .nativeNftablesRejected(version: version, reason:
                        "it inserts a rule at index \(index) of \(table.rawValue) \(op.chain), which holds \(list.count) "
                        + "(istio/istio#58135, fixed in 1.27.4 and 1.28.1)")
                } else {
                    list.append(listed)
                }
                rules[op.chain] = list
            }
            assert(rules.keys.allSatisfy { name in table.chains.contains { $0.name == name } }, "a chain \(table) does not declare")
            let declared = table.chains.filter { rules[$0.name] != nil }
            let created = Set(declared.map(\.name.rawValue))
            for (chain, _) in declared {
                for target in rules[chain]!.flatMap({ $0.compactMap(Self.jumpTarget) }) where !created.contains(target) {
                    throw .nativeNftablesRejected(version: version, reason: "a rule in \(table.rawValue) \(chain) jumps to "
                        + "\(target), a chain Istio does not create because no rule goes into it")
                }
            }
            let chains = declared.map { chain in
                NftChain(name: chain.name.rawValue, base: chain.base, rules: rules[chain.name]!.map { NftRule(statements: $0) })
            }
            out.append(NftTable(family: .inet, name: table.rawValue, chains: chains))
        }
        return out
    }

    /// The chain a `jump` or `goto` statement enters.
    private static func jumpTarget(_ statement: NftStatement) -> String? {
        if case .verdict(let v) = statement { return v.target }
        return nil
    }
}


/// Small constructors so the rules read like the nft arguments istio-iptables writes, with values as nft stores
/// them (what `nft -j list ruleset` prints and `NftablesReader` reads): numbers as numbers, addresses masked
/// and host prefixes bare, set elements sorted.
enum N {
    static let counter = NftStatement.counter(NftCounter())
    static let `return` = NftStatement.verdict(.return)
    static let accept = NftStatement.verdict(.accept)
    static let drop = NftStatement.verdict(.drop)
    static func jump(_ chain: NftChainName) -> NftStatement { .verdict(.jump(chain.rawValue)) }

    static func match(_ left: NftExpression, not: Bool = false, _ right: NftExpression) -> NftStatement {
        .match(NftMatch(left, not ? .notEqual : .equal, right))
    }

    /// `meta l4proto tcp`.
    static func l4proto(_ proto: String) -> NftStatement { match(.meta(key: "l4proto"), .string(proto)) }
    static func iifname(_ name: String) -> NftStatement { match(.meta(key: "iifname"), .string(name)) }
    static func oifname(_ name: String) -> NftStatement { match(.meta(key: "oifname"), .string(name)) }

    /// `tcp dport 15008`, `udp sport 53`.
    static func port(_ proto: String, _ field: String, _ port: UInt16, not: Bool = false) -> NftStatement {
        match(.payload(.field(protocol: proto, field: field)), not: not, .integer(Int64(port)))
    }
    /// `tcp dport != { 53, 15008 }`: nft keeps an anonymous set sorted and without duplicates.
    static func notPorts(_ proto: String, _ field: String, _ ports: [UInt16]) -> NftStatement {
        match(.payload(.field(protocol: proto, field: field)), not: true, .set(Set(ports).sorted().map { .integer(Int64($0)) }))
    }

    /// `ip saddr 127.0.0.6`, `ip6 daddr != ::1`, `ip daddr 10.0.0.0/8`: the family's header, the address as nft
    /// stores it (masked to the prefix; a whole-address prefix is the bare address). An inverted match is `!=`.
    static func address(_ a: AddressMatch, source: Bool) -> NftStatement {
        let header = a.address.family == .ipv4 ? "ip" : "ip6"
        return match(.payload(.field(protocol: header, field: source ? "saddr" : "daddr")), not: a.inverted, value(a))
    }
    static func saddr(_ a: AddressMatch) -> NftStatement { address(a, source: true) }
    static func daddr(_ a: AddressMatch) -> NftStatement { address(a, source: false) }

    static func value(_ a: AddressMatch) -> NftExpression {
        let length = a.mask.prefixLength ?? a.address.family.addressBits
        let address = NftExpression.string(a.address.description)
        return length == a.address.family.addressBits ? address : .prefix(address: address, length: length)
    }

    /// `skuid 1337` (nft lists it as `meta skuid 1337`).
    static func skuid(_ id: UInt32, not: Bool = false) -> NftStatement { match(.meta(key: "skuid"), not: not, .integer(Int64(id))) }
    /// `skgid 1337`; a group name nft could not resolve stays a name.
    static func skgid(_ id: UInt32, not: Bool = false) -> NftStatement { skgid(.integer(Int64(id)), not: not) }
    static func skgid(_ id: NftExpression, not: Bool = false) -> NftStatement { match(.meta(key: "skgid"), not: not, id) }

    /// `mark 1337` (nft lists it as `meta mark 0x00000539`).
    static func mark(_ value: UInt32, not: Bool = false) -> NftStatement {
        match(.meta(key: "mark"), not: not, .integer(Int64(value)))
    }
    /// `ct mark 1337`.
    static func connmark(_ value: UInt32) -> NftStatement { match(.ct(key: "mark", direction: nil), .integer(Int64(value))) }
    /// `ct state related,established`: a flag match, listed in nft's bit order (`established,related`).
    static func ctState(_ states: [String]) -> NftStatement {
        let order = ["invalid", "established", "related", "new", "untracked"]
        let sorted = states.sorted { (order.firstIndex(of: $0) ?? order.count) < (order.firstIndex(of: $1) ?? order.count) }
        let right: NftExpression = sorted.count == 1 ? .string(sorted[0]) : .list(sorted.map(NftExpression.string))
        return .match(NftMatch(.ct(key: "state", direction: nil), .implicit, right))
    }

    /// `redirect to :15001`.
    static func redirect(_ port: UInt16) -> NftStatement { .redirect(NftNAT(port: .integer(Int64(port)))) }
    /// `tproxy ip to :15006`.
    static func tproxy(_ family: Family, _ port: UInt16) -> NftStatement {
        .tproxy(NftTProxy(family: family == .ipv4 ? "ip" : "ip6", port: .integer(Int64(port))))
    }
    /// `meta mark set 1337`.
    static func setMark(_ value: UInt32) -> NftStatement { .metaSet(key: "mark", value: .integer(Int64(value))) }
    /// `ct mark set mark`: CONNMARK --save-mark.
    static let saveMark = NftStatement.ctSet(key: "mark", direction: nil, value: .meta(key: "mark"))
    /// `meta mark set ct mark`: CONNMARK --restore-mark.
    static let restoreMark = NftStatement.metaSet(key: "mark", value: .ct(key: "mark", direction: nil))
    /// `ct zone set 1`.
    static func zone(_ zone: UInt16) -> NftStatement { .ctSet(key: "zone", direction: nil, value: .integer(Int64(zone))) }

    /// A rule as nft lists it: a `meta l4proto P` match is left out when a later match on a `P` header field
    /// implies it (nft's payload-dependency elimination), as in `meta l4proto tcp tcp dport 15008` listed as
    /// `tcp dport 15008`. Istio writes the protocol match; the kernel keeps one; nft lists the port match only.
    static func listed(_ statements: [NftStatement]) -> [NftStatement] {
        statements.enumerated().filter { i, s in
            guard case .match(let m) = s, m.op == .equal, m.left == .meta(key: "l4proto"), case .string(let proto) = m.right
            else { return true }
            return !statements[(i + 1)...].contains { later in
                if case .match(let l) = later, case .payload(.field(let p, _)) = l.left { return p == proto }
                return false
            }
        }.map(\.element)
    }
}
