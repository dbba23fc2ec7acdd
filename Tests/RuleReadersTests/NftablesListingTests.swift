import NetfilterModel
import Testing
@testable import RuleReaders

/// libnftables' flat `list ruleset` JSON put back together into tables, without a kernel.
@Suite struct NftablesListingTests {
    static func decode(_ json: String) throws(RuleReaderError) -> [NftTable] {
        try NftablesListing.decode(Array(json.utf8))
    }

    @Test func emptyRulesetIsNoTables() throws {
        // What libnftables 1.0.6 prints for a namespace without tables.
        let json = #"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}]}"#
        #expect(try Self.decode(json) == [])
    }

    @Test func rulesFollowTheirChainsAcrossTables() throws {
        let json = """
            {"nftables": [{"metainfo": {"json_schema_version": 1}},
             {"table": {"family": "inet", "name": "a", "handle": 1}},
             {"map": {"family": "inet", "name": "ports", "table": "a", "type": "inet_service", "handle": 3, "map": "verdict",
                      "elem": [[22, {"accept": null}], [80, {"jump": {"target": "c2"}}]]}},
             {"chain": {"family": "inet", "table": "a", "name": "c1", "handle": 1, "type": "nat", "hook": "output", "prio": -100, "policy": "accept"}},
             {"chain": {"family": "inet", "table": "a", "name": "c2", "handle": 2}},
             {"rule": {"family": "inet", "table": "a", "chain": "c2", "handle": 5, "expr": [{"return": null}]}},
             {"rule": {"family": "inet", "table": "a", "chain": "c1", "handle": 4, "comment": "first", "expr": [{"jump": {"target": "c2"}}]}},
             {"table": {"family": "ip", "name": "a", "handle": 2, "flags": "dormant"}},
             {"counter": {"family": "ip", "name": "hits", "table": "a", "handle": 1, "packets": 1, "bytes": 2}}]}
            """
        let tables = try Self.decode(json)
        #expect(tables.map { "\($0.family.rawValue) \($0.name)" } == ["inet a", "ip a"])
        #expect(tables[0].chains.map(\.name) == ["c1", "c2"])
        #expect(tables[0].chains[0].base == NftBaseChain(type: .nat, hook: .output, priority: -100, policy: .accept))
        #expect(tables[0].chains[0].rules == [NftRule(handle: 4, comment: "first", statements: [.verdict(.jump("c2"))])])
        #expect(tables[0].chains[1].rules == [NftRule(handle: 5, statements: [.verdict(.return)])])
        #expect(tables[0].sets == [NftSet(kind: .map, name: "ports", handle: 3, keyType: ["inet_service"], dataType: "verdict",
                                          elements: [.mapping(.integer(22), .verdict(.accept)), .mapping(.integer(80), .verdict(.jump("c2")))])])
        #expect(tables[1].flags == ["dormant"])
        #expect(tables[1].objects.map(\.kind) == ["counter"] && tables[1].objects[0].body["packets"] == .integer(1))
    }

    @Test func ruleOfAnUnlistedChainIsMalformed() {
        let json = """
            {"nftables": [{"table": {"family": "inet", "name": "a", "handle": 1}},
             {"rule": {"family": "inet", "table": "a", "chain": "nope", "handle": 5, "expr": [{"accept": null}]}}]}
            """
        #expect(throws: RuleReaderError.malformed(file: NftablesListing.source, line: 1,
                                                  message: "a rule names chain nope of table a, which was not listed")) {
            try Self.decode(json)
        }
    }

    @Test func brokenJSONIsMalformedWithWhereAndWhat() throws {
        do {
            _ = try Self.decode(#"{"nftables": [{"table": {"family": "inet", "name": "a"}}]}"#)
            Issue.record("decoded a table without a handle")
        } catch {
            guard case .malformed(let file, _, let message) = error else { Issue.record("\(error)"); return }
            #expect(file == NftablesListing.source)
            #expect(message.contains("handle"))
        }
        do {
            _ = try Self.decode(#"{"nftables": [{"rule": {"family": "inet", "table": "a", "chain": "c", "handle": 1, "expr": [{"match": {"op": "=="}}]}}]}"#)
            Issue.record("decoded a match without sides")
        } catch {
            guard case .malformed(_, _, let message) = error else { Issue.record("\(error)"); return }
            #expect(message.hasPrefix("expected a match with op, left and right"))
        }
    }
}
