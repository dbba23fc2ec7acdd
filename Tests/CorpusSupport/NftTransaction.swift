import Foundation
import NetfilterModel

/// Replays an nft transaction script, as Istio's native-nftables goldens hold it, into the tables a fresh
/// network namespace holds afterwards, in the form `nft list ruleset` lists them (and `NftablesReader` reads
/// them): what `nft -f GOLDEN` leaves behind, worked out without a kernel.
///
/// Only what the goldens use: `add table`, `flush table`, `add chain` (with `{ type T hook H priority P ; }`),
/// `add rule`, and `insert rule ... index N`, with the statements istio-iptables writes. What nft does to them:
/// an insert goes before the rule at index N (an index past the end is an error, as in nft); `ip daddr
/// 10.1.2.3/8` is stored masked and a whole-address prefix as the bare address; anonymous sets are sorted;
/// `ct state` flags are listed in bit order; a `meta l4proto P` match that a later `P` header match implies
/// is left out of the listing; group names are resolved by `groups`, as nft resolves them with /etc/group.
/// The recorded `nft list ruleset` output of every golden checks this model of nft (see the conformance tests).
public enum NftTransaction {
    public static func replay(_ text: String, groups: (String) -> UInt32? = { _ in nil }) throws(NftTransactionError) -> [NftTable] {
        var tables: [NftTable] = []
        for (offset, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty else { continue }
            var words = Words(line: offset + 1, tokens: line.split(separator: " ").map(String.init))
            try apply(&words, to: &tables, groups: groups)
        }
        return tables
    }

    private static func apply(_ w: inout Words, to tables: inout [NftTable], groups: (String) -> UInt32?) throws(NftTransactionError) {
        let verb = try w.next()
        let object = try w.next()
        guard try w.next() == "inet" else { throw w.error("only inet tables are expected") }
        let tableName = try w.next()
        switch (verb, object) {
        case ("add", "table"):
            if !tables.contains(where: { $0.name == tableName }) { tables.append(NftTable(family: .inet, name: tableName)) }
            return
        case ("flush", "table"):
            let t = try index(of: tableName, in: tables, w)
            for c in tables[t].chains.indices { tables[t].chains[c].rules = [] }
            return
        default:
            break
        }
        let t = try index(of: tableName, in: tables, w)
        let chainName = try w.next()
        switch (verb, object) {
        case ("add", "chain"):
            var chain = NftChain(name: chainName)
            if w.peek == "{" { chain.base = try baseChain(&w) }
            guard !tables[t].chains.contains(where: { $0.name == chainName }) else { throw w.error("chain \(chainName) added twice") }
            tables[t].chains.append(chain)
        case ("add", "rule"), ("insert", "rule"):
            guard let c = tables[t].chains.firstIndex(where: { $0.name == chainName }) else {
                throw w.error("no chain \(chainName) in \(tableName)")
            }
            var index: Int?
            if w.peek == "index" {
                w.skip()
                guard let n = Int(try w.next()) else { throw w.error("index needs a number") }
                index = n
            }
            guard verb == "insert" || index == nil else { throw w.error("add rule ... index is not expected") }
            let rule = NftRule(statements: listed(try statements(&w, groups: groups)))
            for target in rule.statements.compactMap(jumpTarget) where !tables[t].chains.contains(where: { $0.name == target }) {
                throw w.error("jump to \(target), which \(tableName) does not have")
            }
            let count = tables[t].chains[c].rules.count
            if verb == "add" {
                tables[t].chains[c].rules.append(rule)
            } else if let index {
                // Before the rule at that index; nft refuses an index with no rule at it.
                guard index < count else { throw w.error("index \(index) is past the end of \(chainName), which holds \(count)") }
                tables[t].chains[c].rules.insert(rule, at: index)
            } else {
                tables[t].chains[c].rules.insert(rule, at: 0)
            }
        default:
            throw w.error("unexpected command \(verb) \(object)")
        }
    }

    private static func index(of table: String, in tables: [NftTable], _ w: Words) throws(NftTransactionError) -> Int {
        guard let t = tables.firstIndex(where: { $0.name == table }) else { throw w.error("no table \(table)") }
        return t
    }

    /// `{ type nat hook prerouting priority -100 ; }`
    private static func baseChain(_ w: inout Words) throws(NftTransactionError) -> NftBaseChain {
        try w.expect("{")
        try w.expect("type")
        guard let type = NftBaseChain.ChainType(rawValue: try w.next()) else { throw w.error("unknown chain type") }
        try w.expect("hook")
        guard let hook = NftBaseChain.Hook(rawValue: try w.next()) else { throw w.error("unknown hook") }
        try w.expect("priority")
        guard let priority = Int(try w.next()) else { throw w.error("priority needs a number") }
        try w.expect(";")
        try w.expect("}")
        return NftBaseChain(type: type, hook: hook, priority: priority)
    }

    private static func statements(_ w: inout Words, groups: (String) -> UInt32?) throws(NftTransactionError) -> [NftStatement] {
        var out: [NftStatement] = []
        while let word = w.peek {
            w.skip()
            switch word {
            case "counter":
                out.append(.counter(NftCounter()))
            case "return", "accept", "drop":
                out.append(.verdict(word == "return" ? .return : word == "accept" ? .accept : .drop))
            case "jump":
                out.append(.verdict(.jump(try w.next())))
            case "meta":
                let key = try w.next()
                out.append(try metaStatement(key, &w, groups: groups))
            case "skuid", "skgid", "mark":
                out.append(try metaStatement(word, &w, groups: groups))
            case "iifname", "oifname":
                let (op, value) = try w.relation()
                out.append(.match(NftMatch(.meta(key: word), op, .string(value))))
            case "ip", "ip6":
                let field = try w.next()
                let (op, value) = try w.relation()
                guard let a = AddressMatch(value), a.address.family == (word == "ip" ? .ipv4 : .ipv6) else {
                    throw w.error("\(value) is not an \(word) address")
                }
                out.append(.match(NftMatch(.payload(.field(protocol: word, field: field)), op, address(a))))
            case "tcp", "udp":
                let field = try w.next()
                let op = w.op()
                let right: NftExpression
                if w.peek == "{" {
                    right = .set(try w.set().map { n throws(NftTransactionError) in try w.number(n) }.sorted().map(NftExpression.integer))
                } else {
                    right = .integer(try w.number(try w.next()))
                }
                out.append(.match(NftMatch(.payload(.field(protocol: word, field: field)), op, right)))
            case "ct":
                out.append(try conntrack(&w))
            case "redirect":
                try w.expect("to")
                out.append(.redirect(NftNAT(port: .integer(try port(&w)))))
            case "tproxy":
                let family = try w.next()
                try w.expect("to")
                out.append(.tproxy(NftTProxy(family: family, port: .integer(try port(&w)))))
            default:
                throw w.error("unexpected \(word)")
            }
        }
        return out
    }

    /// `meta l4proto tcp`, `[meta] skuid [!=] N`, `[meta] skgid [!=] G`, `[meta] mark [!=] N`, `meta mark set V`.
    private static func metaStatement(_ key: String, _ w: inout Words, groups: (String) -> UInt32?) throws(NftTransactionError) -> NftStatement {
        if key == "mark", w.peek == "set" {
            w.skip()
            if w.peek == "ct" {
                w.skip()
                try w.expect("mark")
                return .metaSet(key: "mark", value: .ct(key: "mark", direction: nil))
            }
            return .metaSet(key: "mark", value: .integer(try w.number(try w.next())))
        }
        let (op, value) = try w.relation()
        switch key {
        case "l4proto":
            return .match(NftMatch(.meta(key: key), op, .string(value)))
        case "skuid", "mark":
            return .match(NftMatch(.meta(key: key), op, .integer(try w.number(value))))
        case "skgid":
            let gid = UInt32(value) ?? groups(value)
            return .match(NftMatch(.meta(key: key), op, gid.map { .integer(Int64($0)) } ?? .string(value)))
        default:
            throw w.error("unexpected meta \(key)")
        }
    }

    /// `ct state a,b`, `ct mark N`, `ct mark set mark`, `ct zone set N`.
    private static func conntrack(_ w: inout Words) throws(NftTransactionError) -> NftStatement {
        let key = try w.next()
        if w.peek == "set" {
            w.skip()
            let value = try w.next()
            if key == "mark", value == "mark" { return .ctSet(key: "mark", direction: nil, value: .meta(key: "mark")) }
            return .ctSet(key: key, direction: nil, value: .integer(try w.number(value)))
        }
        switch key {
        case "state":
            let bits = ["invalid": 1, "established": 2, "related": 4, "new": 8, "untracked": 64]
            let flags = try w.next().split(separator: ",").map(String.init)
            guard flags.allSatisfy({ bits[$0] != nil }) else { throw w.error("unknown ct state") }
            let sorted = flags.sorted { bits[$0]! < bits[$1]! }
            return .match(NftMatch(.ct(key: "state", direction: nil), .implicit,
                                   sorted.count == 1 ? .string(sorted[0]) : .list(sorted.map(NftExpression.string))))
        case "mark":
            let (op, value) = try w.relation()
            return .match(NftMatch(.ct(key: "mark", direction: nil), op, .integer(try w.number(value))))
        default:
            throw w.error("unexpected ct \(key)")
        }
    }

    /// `:15001`
    private static func port(_ w: inout Words) throws(NftTransactionError) -> Int64 {
        let word = try w.next()
        guard word.hasPrefix(":"), let n = Int64(word.dropFirst()) else { throw w.error("expected :PORT, found \(word)") }
        return n
    }

    /// As nft stores an address match: masked; a whole-address prefix as the bare address.
    private static func address(_ a: AddressMatch) -> NftExpression {
        let bits = a.address.family.addressBits
        let length = a.mask.prefixLength ?? bits
        return length == bits ? .string(a.address.description) : .prefix(address: .string(a.address.description), length: length)
    }

    /// nft's listing leaves out a `meta l4proto P` that a later match on a `P` header implies.
    private static func listed(_ statements: [NftStatement]) -> [NftStatement] {
        var out: [NftStatement] = []
        for (i, s) in statements.enumerated() {
            if case .match(let m) = s, m.left == .meta(key: "l4proto"), m.op == .equal, case .string(let proto) = m.right,
               statements[(i + 1)...].contains(where: {
                   if case .match(let later) = $0, case .payload(.field(proto, _)) = later.left { return true }
                   return false
               }) {
                continue
            }
            out.append(s)
        }
        return out
    }

    private static func jumpTarget(_ s: NftStatement) -> String? {
        if case .verdict(let v) = s { return v.target }
        return nil
    }
}

/// A line of a transaction this replay does not understand, or one nft would reject.
public struct NftTransactionError: Error, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "line \(line): \(message)" }
}

/// The words of one line, consumed left to right.
private struct Words {
    let line: Int
    var tokens: [String]
    var position = 0

    init(line: Int, tokens: [String]) {
        self.line = line
        self.tokens = tokens
    }

    var peek: String? { position < tokens.count ? tokens[position] : nil }
    mutating func skip() { position += 1 }

    mutating func next() throws(NftTransactionError) -> String {
        guard let word = peek else { throw error("unexpected end of line") }
        position += 1
        return word
    }

    mutating func expect(_ word: String) throws(NftTransactionError) {
        let found = try next()
        guard found == word else { throw error("expected \(word), found \(found)") }
    }

    /// An optional `!=` or `==`; no operator is `==`.
    mutating func op() -> NftRelationalOperator {
        switch peek {
        case "!=": skip(); return .notEqual
        case "==": skip(); return .equal
        default: return .equal
        }
    }

    mutating func relation() throws(NftTransactionError) -> (NftRelationalOperator, String) {
        let op = op()
        return (op, try next())
    }

    /// `{ 53, 15008 }`
    mutating func set() throws(NftTransactionError) -> [String] {
        try expect("{")
        var items: [String] = []
        while let word = peek, word != "}" {
            skip()
            items += word.split(separator: ",").map(String.init)
        }
        try expect("}")
        return Array(Set(items))
    }

    func number(_ text: String) throws(NftTransactionError) -> Int64 {
        guard let n = Int64(text) else { throw error("\(text) is not a number") }
        return n
    }

    func error(_ message: String) -> NftTransactionError { NftTransactionError(line: line, message: message) }
}
