import Foundation
import Testing
@testable import NetfilterModel

/// The nf_tables model's own behaviour, without a kernel: priorities by name, nft's JSON in and out, and text
/// details the live round trip (IntegrationTests/NftablesReaderTests) would only show as a byte mismatch.
@Suite struct NftSyntaxTests {
    struct PriorityCase: Sendable, CustomTestStringConvertible {
        var value: Int
        var family: NftFamily
        var hook: NftBaseChain.Hook
        var expected: String
        var testDescription: String { "\(family) \(hook) \(value) → \(expected)" }
    }

    /// As nft 1.0.6's `prio2str` prints them (checked against `nft list ruleset` while writing these).
    static let priorities: [PriorityCase] = [
        .init(value: -100, family: .inet, hook: .prerouting, expected: "dstnat"),
        .init(value: -100, family: .inet, hook: .output, expected: "-100"),
        .init(value: 100, family: .ip, hook: .postrouting, expected: "srcnat"),
        .init(value: 110, family: .ip, hook: .postrouting, expected: "srcnat + 10"),
        .init(value: 100, family: .ip, hook: .output, expected: "100"),
        .init(value: -150, family: .inet, hook: .output, expected: "mangle"),
        .init(value: -145, family: .inet, hook: .output, expected: "mangle + 5"),
        .init(value: -300, family: .inet, hook: .prerouting, expected: "raw"),
        .init(value: -10, family: .inet, hook: .input, expected: "filter - 10"),
        .init(value: 11, family: .inet, hook: .input, expected: "11"),
        .init(value: 50, family: .ip6, hook: .forward, expected: "security"),
        .init(value: 0, family: .arp, hook: .input, expected: "filter"),
        .init(value: -300, family: .arp, hook: .input, expected: "-300"),
        .init(value: 0, family: .netdev, hook: .ingress, expected: "filter"),
        .init(value: -150, family: .netdev, hook: .ingress, expected: "-150"),
        .init(value: -300, family: .bridge, hook: .prerouting, expected: "dstnat"),
        .init(value: -300, family: .bridge, hook: .output, expected: "-300"),
        .init(value: 100, family: .bridge, hook: .output, expected: "out"),
        .init(value: -200, family: .bridge, hook: .forward, expected: "filter"),
    ]

    @Test(arguments: priorities) func priorityIsNamedAsNftNamesIt(_ c: PriorityCase) {
        #expect(NftSyntax.priority(c.value, family: c.family, hook: c.hook) == c.expected)
    }

    /// Statement JSON as libnftables 1.0.6 printed it for Istio's TPROXY case, and what it decodes to.
    static let statements: [(json: String, statement: NftStatement, text: String)] = [
        (#"{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "lo"}}"#,
         .match(NftMatch(.meta(key: "oifname"), .equal, .string("lo"))), #"oifname "lo""#),
        (#"{"match": {"op": "!=", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [53, 15008]}}}"#,
         .match(NftMatch(.payload(.field(protocol: "tcp", field: "dport")), .notEqual, .set([.integer(53), .integer(15008)]))),
         "tcp dport != { 53, 15008 }"),
        (#"{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "9.9.0.0", "len": 16}}}}"#,
         .match(NftMatch(.payload(.field(protocol: "ip", field: "daddr")), .equal, .prefix(address: .string("9.9.0.0"), length: 16))),
         "ip daddr 9.9.0.0/16"),
        (#"{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}"#,
         .match(NftMatch(.ct(key: "state", direction: nil), .implicit, .list([.string("established"), .string("related")]))),
         "ct state established,related"),
        (#"{"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 1337}}"#,
         .match(NftMatch(.meta(key: "mark"), .equal, .integer(1337))), "meta mark 0x00000539"),
        (#"{"counter": {"packets": 12, "bytes": 720}}"#, .counter(NftCounter(packets: 12, bytes: 720)), "counter packets 12 bytes 720"),
        (#"{"jump": {"target": "istio-output"}}"#, .verdict(.jump("istio-output")), "jump istio-output"),
        (#"{"return": null}"#, .verdict(.return), "return"),
        (#"{"redirect": {"port": 15001}}"#, .redirect(NftNAT(port: .integer(15001))), "redirect to :15001"),
        (#"{"redirect": null}"#, .redirect(NftNAT()), "redirect"),
        (#"{"tproxy": {"family": "ip6", "port": 15006}}"#, .tproxy(NftTProxy(family: "ip6", port: .integer(15006))), "tproxy ip6 to :15006"),
        (#"{"mangle": {"key": {"meta": {"key": "mark"}}, "value": 1338}}"#, .metaSet(key: "mark", value: .integer(1338)),
         "meta mark set 0x0000053a"),
        (#"{"mangle": {"key": {"ct": {"key": "mark"}}, "value": {"meta": {"key": "mark"}}}}"#,
         .ctSet(key: "mark", direction: nil, value: .meta(key: "mark")), "ct mark set meta mark"),
        (#"{"mangle": {"key": {"ct": {"key": "zone"}}, "value": 2}}"#, .ctSet(key: "zone", direction: nil, value: .integer(2)), "ct zone set 2"),
        (#"{"notrack": null}"#, .notrack, "notrack"),
    ]

    @Test func nftJSONDecodesIntoTheModelAndEncodesBack() throws {
        for (json, statement, _) in Self.statements {
            let decoded = try JSONDecoder().decode(NftStatement.self, from: Data(json.utf8))
            #expect(decoded == statement, "\(json)")
            // Encoding gives nft's JSON back: the same value once parsed (key order aside).
            let reencoded = try JSONEncoder().encode(decoded)
            #expect(try JSONSerialization.jsonObject(with: reencoded) as? NSDictionary
                    == JSONSerialization.jsonObject(with: Data(json.utf8)) as? NSDictionary, "\(json)")
        }
    }

    @Test func statementsRenderInNftSyntax() {
        for (_, statement, text) in Self.statements {
            #expect(NftSyntax.render(statement) == text)
        }
    }

    @Test func unknownStatementsAreKeptWholeAndShownAsJSON() throws {
        let json = #"{"log": {"prefix": "istio ", "level": "warn"}}"#
        let statement = try JSONDecoder().decode(NftStatement.self, from: Data(json.utf8))
        #expect(statement == .other(.object(["log": .object(["prefix": .string("istio "), "level": .string("warn")])])))
        #expect(NftSyntax.render(statement) == #"{"log":{"level":"warn","prefix":"istio "}}"#)
    }

    @Test func malformedStatementNamesWhatWasExpected() {
        #expect(throws: NftJSONError.self) {
            try JSONDecoder().decode(NftStatement.self, from: Data(#"{"match": {"op": "==", "left": {"meta": {"key": "mark"}}}}"#.utf8))
        }
        #expect(throws: NftJSONError.self) {
            try JSONDecoder().decode(NftStatement.self, from: Data(#"{"match": {"op": "~", "left": 1, "right": 2}}"#.utf8))
        }
    }

    @Test func tableRendersLikeNftListRuleset() {
        let table = NftTable(family: .inet, name: "istio-proxy-nat", handle: 4, chains: [
            NftChain(name: "output", handle: 1, base: NftBaseChain(type: .nat, hook: .output, priority: -100), rules: [
                NftRule(handle: 5, statements: [.counter(NftCounter()), .verdict(.jump("istio-output"))]),
            ]),
            NftChain(name: "istio-output", handle: 2, rules: [
                NftRule(handle: 6, comment: "self", statements: [
                    .match(NftMatch(.meta(key: "skuid"), .equal, .integer(1337))), .verdict(.return),
                ]),
            ]),
        ])
        #expect(NftSyntax.render([table]) == """
            table inet istio-proxy-nat {
            \tchain output {
            \t\ttype nat hook output priority -100; policy accept;
            \t\tcounter packets 0 bytes 0 jump istio-output
            \t}

            \tchain istio-output {
            \t\tmeta skuid 1337 return comment "self"
            \t}
            }

            """)
        #expect(NftSyntax.render([table], handles: true).hasPrefix("table inet istio-proxy-nat { # handle 4\n\tchain output { # handle 1\n"))
        #expect(NftSyntax.render([table], handles: true).contains("\t\tmeta skuid 1337 return comment \"self\" # handle 6\n"))
        #expect(NftSyntax.render([]) == "")
    }

    @Test func namedSetElementsWrapAsNftWrapsThem() {
        let marks = NftSet(name: "m", keyType: ["mark"], elements: (1...6).map { .integer($0) })
        #expect(NftSyntax.render(marks, handles: false) == """
            \tset m {
            \t\ttype mark
            \t\telements = { 0x00000001, 0x00000002, 0x00000003, 0x00000004, 0x00000005,
            \t\t\t     0x00000006 }
            \t}

            """)
        let names = NftSet(name: "i", keyType: ["ifname"], elements: [.string("eth0"), .string("eth1")])
        #expect(NftSyntax.render(names, handles: false).contains("elements = { \"eth0\",\n\t\t\t     \"eth1\" }"))
    }

    @Test func modelEncodesAndDecodesUnchanged() throws {
        let table = NftTable(family: .inet, name: "t", handle: 1, sets: [
            NftSet(kind: .map, name: "v", keyType: ["inet_service"], dataType: "verdict",
                   elements: [.mapping(.integer(80), .verdict(.jump("web")))]),
        ], chains: [
            NftChain(name: "c", handle: 2, base: NftBaseChain(type: .filter, hook: .input, priority: 0, policy: .drop), rules: [
                NftRule(handle: 3, statements: [
                    .verdictMap(key: .payload(.field(protocol: "tcp", field: "dport")), data: .setReference("v")),
                    .other(.object(["limit": .object(["rate": .integer(10), "per": .string("second")])])),
                ]),
            ]),
        ])
        let data = try JSONEncoder().encode(table)
        #expect(try JSONDecoder().decode(NftTable.self, from: data) == table)
    }
}
