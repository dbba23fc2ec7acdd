import NetfilterModel
@testable import RuleReaders
import Testing
import TestSupport

/// A rule line in a one-chain restore input, and what iptables-legacy-save 1.8.9 printed after
/// iptables-legacy-restore loaded it (recorded in a throw-away network namespace).
struct NormalisationCase: CustomTestStringConvertible, Sendable {
    var family: Family = .ipv4
    var table = "filter"
    var line: String
    var printed: [String]

    init(_ line: String, _ printed: String..., family: Family = .ipv4, table: String = "filter") {
        self.line = line
        self.printed = printed
        self.family = family
        self.table = table
    }

    var testDescription: String { line }
}

/// A bad input, the line the error must name and a fragment of its message.
struct MalformedCase: CustomTestStringConvertible, Sendable {
    var name: String
    var text: String
    var line: Int
    var fragment: String
    var family: Family?

    init(_ name: String, _ text: String, line: Int, _ fragment: String, family: Family? = nil) {
        self.name = name
        self.text = text
        self.line = line
        self.fragment = fragment
        self.family = family
    }

    var testDescription: String { name }
}

func testParser(family: Family? = nil) -> SaveTextParser {
    SaveTextParser(fileName: "rules.save", family: family, groupResolver: { ["java": 2001, "root": 0][$0] },
                   userResolver: { ["root": 0, "istio-proxy": 1337][$0] })
}

/// The `-A` lines that rendering the parsed input prints.
func renderedRules(_ text: String, family: Family? = nil) throws -> [String] {
    try testParser(family: family).parse(text).flatMap { SaveSyntax.render($0).split(separator: "\n") }
        .filter { $0.hasPrefix("-A ") || $0.hasPrefix("[") }.map(String.init)
}

@Suite("Save text: restore input normalised as iptables does")
struct SaveTextNormalisationTests {
    static let cases: [NormalisationCase] = [
        .init("-A X -j MARK --and-mark 0xff", "-A X -j MARK --set-xmark 0x0/0xffffff00", table: "mangle"),
        .init("-A X -j MARK --or-mark 0x10", "-A X -j MARK --set-xmark 0x10/0x10", table: "mangle"),
        .init("-A X -j MARK --xor-mark 0x10", "-A X -j MARK --set-xmark 0x10/0x0", table: "mangle"),
        .init("-A X -j MARK --set-mark 0x1/0xf0", "-A X -j MARK --set-xmark 0x1/0xf1", table: "mangle"),
        .init("-A X -j MARK --set-mark 1337", "-A X -j MARK --set-xmark 0x539/0xffffffff", table: "mangle"),
        .init("-A X -j CONNMARK --set-mark 0x1/0xf0", "-A X -j CONNMARK --set-xmark 0x1/0xf1", table: "mangle"),
        .init("-A X -j CONNMARK --and-mark 0x1", "-A X -j CONNMARK --set-xmark 0x0/0xfffffffe", table: "mangle"),
        .init("-A X -j CONNMARK --save-mark --nfmask 0xf --left-shift-mark 3",
              "-A X -j CONNMARK --save-mark --nfmask 0xf --ctmask 0xffffffff --left-shift-mark 3", table: "mangle"),
        .init("-A X -j CONNMARK --set-xmark 0x1 --ctmask 0xf", "-A X -j CONNMARK --set-xmark 0x1/0xf", table: "mangle"),
        .init("-A X -j CONNMARK --save-mark", "-A X -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff", table: "nat"),
        .init("-A X -m mark --mark 010", "-A X -m mark --mark 0x8", table: "mangle"),
        .init("-A X -p tcp --dport 0x50", "-A X -p tcp -m tcp --dport 80"),
        .init("-A X -p tcp --dport :80", "-A X -p tcp -m tcp --dport 0:80"),
        .init("-A X -p tcp --dport 80:", "-A X -p tcp -m tcp --dport 80:65535"),
        .init("-A X -j REJECT --reject-with icmp-host", "-A X -j REJECT --reject-with icmp-host-unreachable"),
        .init("-A X -j REJECT --reject-with PORT", "-A X -j REJECT --reject-with icmp-port-unreachable"),
        .init("-A X -i +", "-A X"),
        .init("-A X ! -i +", "-A X"),
        .init("-A X -s 10.0.0.1,10.0.0.2 -d 1.1.1.1,2.2.2.2",
              "-A X -s 10.0.0.1/32 -d 1.1.1.1/32", "-A X -s 10.0.0.1/32 -d 2.2.2.2/32",
              "-A X -s 10.0.0.2/32 -d 1.1.1.1/32", "-A X -s 10.0.0.2/32 -d 2.2.2.2/32"),
        .init("-A X -m statistic --mode random --probability 0.5", "-A X -m statistic --mode random --probability 0.50000000000"),
        .init("-A X -m statistic --mode random --probability 0.333333333",
              "-A X -m statistic --mode random --probability 0.33333333302"),
        .init("-A X -m statistic --mode random --probability 1", "-A X -m statistic --mode random --probability 1.00000000000"),
        .init("-A X -m statistic --mode random ! --probability 0.25",
              "-A X -m statistic --mode random ! --probability 0.25000000000"),
        .init("-A X -m statistic --mode nth --every 2 --packet 0", "-A X -m statistic --mode nth --every 2 --packet 0"),
        .init("-A X -m statistic --mode nth ! --every 3 --packet 2", "-A X -m statistic --mode nth ! --every 3 --packet 2"),
        .init("-A X -j LOG --log-level warning --log-prefix \"a'b\"", "-A X -j LOG --log-prefix \"a\\'b\""),
        .init("-A X -j LOG --log-level emerg", "-A X -j LOG --log-level 0"),
        .init("-A X -j LOG --log-prefix 012345678901234567890123456789", "-A X -j LOG --log-prefix 01234567890123456789012345678"),
        .init("-A X -j LOG --log-pre x", "-A X -j LOG --log-prefix x"),
        .init("-A X -p tcp --tcp-flags all none", "-A X -p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE"),
        .init("-A X -p tcp ! --syn", "-A X -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN"),
        .init("-A X -p tcp --tcp-flags NONE NONE", "-A X -p tcp -m tcp"),
        .init("-A X -p tcp -m multiport --dport 5,6", "-A X -p tcp -m multiport --dports 5,6"),
        .init("-A X -p tcp -m multiport --dports 1:2,3,4,5,6,7,8,9,10,11,12,13,14",
              "-A X -p tcp -m multiport --dports 1:2,3,4,5,6,7,8,9,10,11,12,13,14"),
        .init("-A X -p tcp --destination-port 5 --source-port=7", "-A X -p tcp -m tcp --sport 7 --dport 5"),
        .init("-A X -p tcp --dp 80", "-A X -p tcp -m tcp --dport 80"),
        .init("-A X -p 6 --dport 80", "-A X -p tcp -m tcp --dport 80"),
        .init("-A X -m owner --uid-owner root", "-A X -m owner --uid-owner 0"),
        .init("-A X -m owner --gid-owner java --suppl-groups", "-A X -m owner --gid-owner 2001 --suppl-groups"),
        .init("-A X -m owner --uid-owner 4294967294", "-A X -m owner --uid-owner 4294967294"),
        .init("-A X -m state --state new,established", "-A X -m state --state NEW,ESTABLISHED"),
        .init("-A X -m conntrack --ctstate snat --ctproto tcp --ctdir reply",
              "-A X -m conntrack --ctstate SNAT --ctproto 6 --ctdir REPLY"),
        .init("-A X -m conntrack --ctorigsrc 10.1.2.3/32", "-A X -m conntrack --ctorigsrc 10.1.2.3"),
        .init("-A X -m addrtype --src-type local,unicast --limit-iface-out",
              "-A X -m addrtype --src-type UNICAST,LOCAL --limit-iface-out"),
        .init("-A X -m comment --comment abc -m comment --comment \"x y\"",
              "-A X -m comment --comment abc -m comment --comment \"x y\""),
        .init("-A X -p tcp -m comment --comment x --dport 80", "-A X -p tcp -m comment --comment x -m tcp --dport 80"),
        .init("-A X -p tcp --dport 80 -m tcp --sport 1", "-A X -p tcp -m tcp --dport 80 -m tcp --sport 1"),
        .init("-A X -m mac --mac-source a:b:c:d:e:f", "-A X -m mac --mac-source 0a:0b:0c:0d:0e:0f"),
        .init("-A X -s 10.0.0.1/255.255.0.0", "-A X -s 10.0.0.0/16"),
        .init("-A X -s 10.0.0.1/0x10", "-A X -s 10.0.0.0/16"),
        .init("-A X -s 010.0.0.1", "-A X -s 8.0.0.1/32"),
        .init("-A X -s 10.1", "-A X -s 10.1.0.0/32"),
        .init("-p tcp -A X", "-A X -p tcp"),
        .init("-A X -p all", "-A X"),
        .init("-A X -p 0", "-A X"),
        .init("-A X -p TCP", "-A X -p tcp"),
        .init("-A X -p 255", "-A X -p 255"),
        .init("-A X ! -d 0.0.0.0/0", "-A X ! -d 0.0.0.0/0"),
        .init("-A X -d 0.0.0.0/0", "-A X"),
        .init("-A X -i abcdefghijklmno", "-A X -i abcdefghijklmno"),
        .init("-A X --in-interface eth0 --src 1.2.3.4 --dst 1.2.3.4 --proto udp", "-A X -s 1.2.3.4/32 -d 1.2.3.4/32 -i eth0 -p udp"),
        .init("-A X --sourc 1.2.3.4", "-A X -s 1.2.3.4/32"),
        .init("-A X ! -f", "-A X ! -f"),
        .init("-A X -j ACCEPT -m comment --comment x", "-A X -m comment --comment x -j ACCEPT"),
        .init("-A X -j NFLOG", "-A X -j NFLOG"),
        .init("-A X -j NFLOG --nflog-threshold 0", "-A X -j NFLOG"),
        .init("-A X -j NFLOG --nflog-group 0 --nflog-threshold 1 --nflog-prefix \"x y\"",
              "-A X -j NFLOG --nflog-prefix \"x y\" --nflog-threshold 1"),
        .init("-A X -j NFLOG --nflog-size 0", "-A X -j NFLOG --nflog-size 0"),
        .init("-A X -p udp -m udp ! --sport 1:2", "-A X -p udp -m udp ! --sport 1:2"),
        .init("-A X -p tcp -j REDIRECT --to-port 80 --random", "-A X -p tcp -j REDIRECT --to-ports 80 --random", table: "nat"),
        .init("-A X -p tcp -j REDIRECT --to-ports 0x50", "-A X -p tcp -j REDIRECT --to-ports 80", table: "nat"),
        .init("-A X -j REDIRECT --random", "-A X -j REDIRECT --random", table: "nat"),
        .init("-A X -p tcp -j MASQUERADE --to-ports 80 --random --random-fully",
              "-A X -p tcp -j MASQUERADE --to-ports 80 --random --random-fully", table: "nat"),
        .init("-A X -p tcp -j DNAT --to-destination 1.2.3.4:80-90/85", "-A X -p tcp -j DNAT --to-destination 1.2.3.4:80-90/85",
              table: "nat"),
        .init("-A X -p tcp -j DNAT --to-destination :80", "-A X -p tcp -j DNAT --to-destination :80", table: "nat"),
        .init("-A X -j DNAT --to-destination 1.2.3.9-1.2.3.4", "-A X -j DNAT --to-destination 1.2.3.9-1.2.3.4", table: "nat"),
        .init("-A X -p udp -j DNAT --to-destination 1.2.3.4:0", "-A X -p udp -j DNAT --to-destination 1.2.3.4:0", table: "nat"),
        // IPv6
        .init("-A X -p tcp -j DNAT --to-destination [fd00::1]:80", "-A X -p tcp -j DNAT --to-destination [fd00::1]:80",
              family: .ipv6, table: "nat"),
        .init("-A X -p tcp -j DNAT --to-destination [fd00::1]", "-A X -p tcp -j DNAT --to-destination fd00::1",
              family: .ipv6, table: "nat"),
        .init("-A X -p tcp -j DNAT --to-destination fd00::1:80", "-A X -p tcp -j DNAT --to-destination fd00::1:80",
              family: .ipv6, table: "nat"),
        .init("-A X -p tcp -j DNAT --to-destination [fd00::1-fd00::3]:80-90/85",
              "-A X -p tcp -j DNAT --to-destination [fd00::1-fd00::3]:80-90/85", family: .ipv6, table: "nat"),
        .init("-A X -p tcp -j DNAT --to-destination fd00::1-fd00::3", "-A X -p tcp -j DNAT --to-destination fd00::1-fd00::3",
              family: .ipv6, table: "nat"),
        .init("-A X -p tcp -j DNAT --to-destination [::]:80", "-A X -p tcp -j DNAT --to-destination [::]:80",
              family: .ipv6, table: "nat"),
        .init("-A X -p udp -j DNAT --to-destination :53", "-A X -p udp -j DNAT --to-destination :53", family: .ipv6, table: "nat"),
        .init("-A X -s fd00::1/64,fd00::2/ffff:ffff:: -p icmpv6", "-A X -s fd00::/64 -p ipv6-icmp", "-A X -s fd00::/32 -p ipv6-icmp",
              family: .ipv6, table: "nat"),
        .init("-A X -p ipv6-icmp --icmpv6-type 1", "-A X -p ipv6-icmp -m icmp6 --icmpv6-type 1", family: .ipv6, table: "nat"),
        .init("-A X -j REJECT", "-A X -j REJECT --reject-with icmp6-port-unreachable", family: .ipv6),
        .init("-A X -j REJECT --reject-with icmp6-port", "-A X -j REJECT --reject-with icmp6-port-unreachable", family: .ipv6),
    ]

    @Test(arguments: cases)
    func ruleIsNormalisedLikeIptables(_ c: NormalisationCase) throws {
        let text = "*\(c.table)\n:X - [0:0]\n\(c.line)\nCOMMIT\n"
        let tables = try testParser(family: c.family).parse(text)
        #expect(tables.map(\.family) == [c.family])
        #expect(try renderedRules(text, family: c.family) == c.printed)
    }
}

@Suite("Save text: parser behaviour")
struct SaveTextParserTests {
    @Test func emptyInputHasNoTables() throws {
        #expect(try testParser().parse("").isEmpty)
        #expect(try testParser().parse("\n\n# only a comment\n").isEmpty)
    }

    @Test func restoreHeaderCreatesBuiltinChains() throws {
        let tables = try testParser().parse("* nat\n-N ISTIO_OUTPUT\n-A OUTPUT -j ISTIO_OUTPUT\nCOMMIT")
        let nat = try #require(tables.first)
        #expect(nat.chains.map(\.name.rawValue) == ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "ISTIO_OUTPUT"])
        #expect(nat.chains.filter(\.isBuiltin).allSatisfy { $0.policy == .accept && $0.policyCounters == .zero })
        #expect(nat.chain(.output)?.rules.first?.target == .jump("ISTIO_OUTPUT"))
    }

    @Test func countersGoIntoTheModel() throws {
        let text = """
            *filter
            :INPUT DROP [5:300]
            :FORWARD ACCEPT [0:0]
            :OUTPUT ACCEPT [7:8]
            [1:60] -A INPUT -j ACCEPT
            -A OUTPUT -c 2 120 -j ACCEPT
            -A OUTPUT -c 3,180
            COMMIT
            """
        let table = try #require(try testParser().parse(text).first)
        #expect(table.chain(.input)?.policy == .drop)
        #expect(table.chain(.input)?.policyCounters == Counters(packets: 5, bytes: 300))
        #expect(table.chain(.input)?.rules.first?.counters == Counters(packets: 1, bytes: 60))
        #expect(table.chain(.output)?.rules.map(\.counters) == [Counters(packets: 2, bytes: 120), Counters(packets: 3, bytes: 180)])
        #expect(SaveSyntax.render(table, counters: true).contains("[2:120] -A OUTPUT -j ACCEPT\n"))
    }

    @Test func insertDeleteReplaceFlushAndDeleteChain() throws {
        let text = """
            *filter
            -N A
            -N B
            -A A -s 10.0.0.1 -j RETURN
            -I A -s 10.0.0.2 -j RETURN
            -I A 2 -s 10.0.0.3 -j RETURN
            -I A 4 -s 10.0.0.4 -j RETURN
            -A A -s 10.0.0.5 -j RETURN
            -D A 5
            -D A -s 10.0.0.3 -j RETURN
            -R A 1 -s 10.0.0.9 -j DROP
            -A B -j ACCEPT
            -F B
            -X B
            -P FORWARD DROP
            COMMIT
            """
        let table = try #require(try testParser().parse(text).first)
        #expect(table.chain("A")?.rules.map { SaveSyntax.ruleSpec($0, family: .ipv4) }
            == [" -s 10.0.0.9/32 -j DROP", " -s 10.0.0.1/32 -j RETURN", " -s 10.0.0.4/32 -j RETURN"])
        #expect(table.chain("B") == nil)
        #expect(table.chain(.forward)?.policy == .drop)
    }

    @Test func insertWithSeveralAddressesReversesThemLikeIptables() throws {
        let rules = try renderedRules("*filter\n-N A\n-A A -j ACCEPT\n-I A -s 10.0.0.1,10.0.0.2\nCOMMIT\n")
        #expect(rules == ["-A A -s 10.0.0.2/32", "-A A -s 10.0.0.1/32", "-A A -j ACCEPT"])
    }

    @Test func jumpsToChainsDeclaredLaterAreJumps() throws {
        let table = try #require(try testParser().parse("*nat\n-A OUTPUT -j LATER\n-N LATER\n-A OUTPUT -j UNKNOWN_TARGET\nCOMMIT\n").first)
        #expect(table.chain(.output)?.rules.map(\.target)
            == [.jump("LATER"), .unrecognized(UnrecognizedExtension(name: "UNKNOWN_TARGET", arguments: []))])
    }

    @Test func unknownExtensionsAreKeptAsWritten() throws {
        let text = """
            *filter
            -A INPUT -p tcp -m limit --limit 5/min --limit-burst 3 -m string --string "a b" --algo bm -j TCPMSS --clamp-mss-to-pmtu
            -A INPUT -p icmp --icmp-type 8 -j ACCEPT
            COMMIT
            """
        let table = try #require(try testParser().parse(text).first)
        let rules = try #require(table.chain(.input)?.rules)
        #expect(rules[0].matches == [
            .unrecognized(UnrecognizedExtension(name: "limit", arguments: ["--limit", "5/min", "--limit-burst", "3"])),
            .unrecognized(UnrecognizedExtension(name: "string", arguments: ["--string", "\"a b\"", "--algo", "bm"])),
        ])
        #expect(rules[0].target == .unrecognized(UnrecognizedExtension(name: "TCPMSS", arguments: ["--clamp-mss-to-pmtu"])))
        #expect(SaveSyntax.render(rules[0], in: .input, family: .ipv4)
            == "-A INPUT -p tcp -m limit --limit 5/min --limit-burst 3 -m string --string \"a b\" --algo bm -j TCPMSS --clamp-mss-to-pmtu")
        // `-p icmp --icmp-type` loads the icmp match implicitly, as iptables does.
        #expect(SaveSyntax.render(rules[1], in: .input, family: .ipv4) == "-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT")
    }

    @Test func quotingFollowsIptablesRestore() throws {
        let table = try #require(try testParser().parse(
            "*filter\n-A INPUT -m comment --comment \"quote\\\"d and 'single' \\\\ back\" -m comment --comment \"\"\nCOMMIT\n").first)
        #expect(table.chain(.input)?.rules.first?.matches == [.comment("quote\"d and 'single' \\ back"), .comment("")])
        #expect(try SaveTextLexer.split("a \"b c\"d\t\"\" x\\y").map(\.value) == ["a", "b c", "d", "", "x\\y"])
    }

    @Test func statisticKeepsKernelProbabilityAndUserEvery() throws {
        let table = try #require(try testParser().parse(
            "*nat\n-A OUTPUT -m statistic --mode random --probability 0.2\n-A OUTPUT -m statistic --mode nth --every 5 --packet 4\nCOMMIT\n").first)
        let matches = try #require(table.chain(.output)?.rules.map(\.matches))
        // lround(0.2 * 2^31) = 429496730.
        #expect(matches[0] == [.statistic(StatisticMatch(mode: .random(probability: 429_496_730)))])
        #expect(matches[1] == [.statistic(StatisticMatch(mode: .nth(every: 5, packet: 4)))])
    }

    @Test func tproxyDefaultsToTheAnyAddressOfTheFamily() throws {
        let v4 = try renderedRules("*mangle\n-A PREROUTING -p tcp -j TPROXY --tproxy-mark 1337/0xffffffff --on-port 15006\nCOMMIT\n")
        #expect(v4 == ["-A PREROUTING -p tcp -j TPROXY --on-port 15006 --on-ip 0.0.0.0 --tproxy-mark 0x539/0xffffffff"])
        let v6 = try renderedRules("*mangle\n-A PREROUTING -p tcp -j TPROXY --tproxy-mark 1337/0xffffffff --on-port 15006\nCOMMIT\n",
                                   family: .ipv6)
        #expect(v6 == ["-A PREROUTING -p tcp -j TPROXY --on-port 15006 --on-ip :: --tproxy-mark 0x539/0xffffffff"])
    }

    @Test func systemResolversReadThisHostsDatabases() {
        #expect(SaveTextParser.systemUserID("root") == 0)
        #expect(SaveTextParser.systemGroupID("root") == 0)
        #expect(SaveTextParser.systemUserID("no-such-user-iptaudit") == nil)
    }

    @Test func lineFamilyFlagsSkipTheOtherFamily() throws {
        let rules = try renderedRules("*filter\n-6 -A INPUT -j DROP\n-4 -A INPUT -j ACCEPT\nCOMMIT\n")
        #expect(rules == ["-A INPUT -j ACCEPT"])
    }

    @Test func windowsLineEndingsAndBlankLinesAreAccepted() throws {
        #expect(try renderedRules("*filter\r\n\r\n-A INPUT -j ACCEPT\r\nCOMMIT\r\n") == ["-A INPUT -j ACCEPT"])
    }

    @Test func commandListsCreateTablesInFirstSeenOrder() throws {
        let text = """
            iptables -t nat -N ISTIO_REDIRECT
            iptables -t nat -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
            iptables -t mangle -A PREROUTING -j ACCEPT
            iptables -A INPUT -j ACCEPT
            ip6tables -t nat -A OUTPUT -j RETURN
            iptables-save
            """
        let tables = try testParser().parse(text)
        #expect(tables.map { "\($0.family) \($0.name)" } == ["ipv4 nat", "ipv4 mangle", "ipv4 filter", "ipv6 nat"])
    }
}

@Suite("Save text: family detection")
struct SaveTextFamilyTests {
    @Test(arguments: [
        ("*nat\n-A OUTPUT -d 10.0.0.1 -j RETURN\nCOMMIT\n", Family.ipv4),
        ("*nat\n-A OUTPUT -j RETURN\nCOMMIT\n", .ipv4),
        ("*nat\n-A OUTPUT -j RETURN\n-A OUTPUT ! -d ::1/128 -j RETURN\nCOMMIT\n", .ipv6),
        ("# Generated by ip6tables-save v1.8.9 (legacy) on today\n*nat\n-A OUTPUT -j RETURN\nCOMMIT\n", .ipv6),
        ("# Generated by ip6tables-nft-save v1.8.9 (nf_tables)\n*raw\nCOMMIT\n", .ipv6),
        ("*filter\n-A INPUT -p ipv6-icmp -j ACCEPT\nCOMMIT\n", .ipv6),
        ("*filter\n-A INPUT -p icmpv6 -j ACCEPT\nCOMMIT\n", .ipv6),
        ("*filter\n-A INPUT -m icmp6 --icmpv6-type 1 -j ACCEPT\nCOMMIT\n", .ipv6),
        ("*filter\n-A INPUT -j REJECT --reject-with icmp6-adm-prohibited\nCOMMIT\n", .ipv6),
        ("*nat\n-A POSTROUTING -j SNAT --to-source fd16:9254:7127:1337:ffff:ffff:ffff:ffff\nCOMMIT\n", .ipv6),
        ("*nat\n-A OUTPUT -p tcp -j DNAT --to-destination [fd00::1]:80\nCOMMIT\n", .ipv6),
        ("*mangle\n-A PREROUTING -p tcp -j TPROXY --on-port 1 --on-ip ::1\nCOMMIT\n", .ipv6),
        ("ip6tables-save\n* nat\n-A OUTPUT -j RETURN\nCOMMIT\n", .ipv6),
        ("ip6tables -t nat -A OUTPUT -j RETURN\n", .ipv6),
    ])
    func familyComesFromTheContent(_ text: String, family: Family) throws {
        let tables = try testParser().parse(text)
        #expect(!tables.isEmpty)
        #expect(tables.allSatisfy { $0.family == family })
    }

    @Test func givenFamilyAppliesWhenTheInputDoesNotSay() throws {
        let tables = try testParser(family: .ipv6).parse("*nat\n-A OUTPUT -j RETURN\nCOMMIT\n")
        #expect(tables.map(\.family) == [.ipv6])
        // The input's own statement wins over the caller's.
        let stated = try testParser(family: .ipv6).parse("# Generated by iptables-save v1.8.9\n*nat\nCOMMIT\n")
        #expect(stated.map(\.family) == [.ipv4])
    }

    @Test func concatenatedDumpsOfBothFamilies() throws {
        let text = "*nat\n-A OUTPUT -d 10.0.0.1/32 -j RETURN\nCOMMIT\n*filter\nCOMMIT\n*nat\n-A OUTPUT -d ::1/128 -j RETURN\nCOMMIT\n"
        let tables = try testParser().parse(text)
        #expect(tables.map { "\($0.family) \($0.name)" } == ["ipv4 nat", "ipv4 filter", "ipv6 nat"])
    }

    @Test func commandLinesSurviveAnIPv6RestartOfTheNextPart() throws {
        let text = "iptables -t nat -A OUTPUT -j RETURN\n*filter\n-A INPUT -j REJECT\n-A INPUT -s ::1 -j ACCEPT\nCOMMIT\n"
        let tables = try testParser().parse(text)
        #expect(tables.map { "\($0.family) \($0.name) \($0.ruleCount)" } == ["ipv4 nat 1", "ipv6 filter 2"])
    }

    @Test func restoreStubHoldsBothFamilies() throws {
        let tables = try corpusParser("tproxy.golden").parse(try Fixtures.text("istio/master/sidecar-iptables/tproxy.golden"))
        #expect(tables.map { "\($0.family) \($0.name)" }
            == ["ipv4 mangle", "ipv4 nat", "ipv4 raw", "ipv6 mangle", "ipv6 nat", "ipv6 raw"])
    }

    @Test func ipv6RestartKeepsEarlierTablesOfThePart() throws {
        // The IPv6 evidence is in the second table; the first one is read again as IPv6.
        let text = "*filter\n-A INPUT -j REJECT\nCOMMIT\n*nat\n-A OUTPUT -d ::1/128 -j RETURN\nCOMMIT\n"
        let tables = try testParser().parse(text)
        #expect(tables.map(\.family) == [.ipv6, .ipv6])
        #expect(tables.first?.chain(.input)?.rules.first?.target == .reject(RejectTarget(with: "icmp6-port-unreachable")))
    }
}

@Suite("Save text: malformed input")
struct SaveTextMalformedTests {
    static let cases: [MalformedCase] = [
        .init("-A without a chain", "*filter\n-A\nCOMMIT\n", line: 2, "-A needs a chain name"),
        .init("option without its value", "*filter\n-A INPUT -s\nCOMMIT\n", line: 2, "-s needs an address"),
        .init("unterminated quote", "*filter\n-A INPUT -m comment --comment \"abc\nCOMMIT\n", line: 2, "unterminated quote"),
        .init("unknown option", "*filter\n\n-A INPUT --bogus 1\nCOMMIT\n", line: 3, "unknown option \"--bogus\""),
        .init("unknown option of a known match", "*filter\n-A INPUT -p tcp -m tcp --mark 1\nCOMMIT\n", line: 2,
              "unknown option \"--mark\""),
        .init("unknown option of a known target", "*mangle\n-A INPUT -j MARK --set-mss 1\nCOMMIT\n", line: 2,
              "unknown option \"--set-mss\""),
        .init("missing COMMIT", "# dump\n*nat\n-A OUTPUT -j ACCEPT\n", line: 4, "table nat (started at line 2) has no COMMIT"),
        .init("missing COMMIT, no final newline", "*nat\n-A OUTPUT -j ACCEPT", line: 3, "table nat (started at line 1)"),
        .init("rule outside a table", "-A INPUT -j ACCEPT\n", line: 1, "rule outside a table"),
        .init("chain declaration outside a table", ":INPUT ACCEPT [0:0]\n", line: 1, "outside a table"),
        .init("COMMIT outside a table", "COMMIT\n", line: 1, "COMMIT outside a table"),
        .init("undeclared chain in a save dump", "*filter\n:INPUT ACCEPT [0:0]\n-A FOO -j ACCEPT\nCOMMIT\n", line: 3,
              "chain FOO does not exist"),
        .init("bad address", "*filter\n:INPUT ACCEPT [0:0]\n\n\n\n\n-A INPUT -s 10.0.0.300 -j DROP\nCOMMIT\n", line: 7,
              "expected an address after -s, got \"10.0.0.300\""),
        .init("hostname", "*filter\n-A INPUT -d example.com\nCOMMIT\n", line: 2, "expected an address after -d"),
        .init("bad mask", "*filter\n-A INPUT -s 10.0.0.0/33\nCOMMIT\n", line: 2, "expected a mask"),
        .init("empty mask", "*filter\n-A INPUT -s 10.0.0.0/\nCOMMIT\n", line: 2, "expected a mask"),
        .init("missing address before mask", "*filter\n-A INPUT -s /8\nCOMMIT\n", line: 2, "expected an address after -s"),
        .init("bad port", "*filter\n-A INPUT -p tcp --dport 70000\nCOMMIT\n", line: 2, "expected a port number"),
        .init("reversed port range", "*filter\n-A INPUT -p tcp --dport 5:1\nCOMMIT\n", line: 2, "LOW <= HIGH"),
        .init("reversed multiport range", "*filter\n-A INPUT -p tcp -m multiport --dports 5:1\nCOMMIT\n", line: 2, "LOW <= HIGH"),
        .init("too many multiport ports", "*filter\n-A INPUT -p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16\nCOMMIT\n",
              line: 2, "too many ports"),
        .init("multiport without a protocol", "*filter\n-A INPUT -m multiport --dports 1\nCOMMIT\n", line: 2, "needs -p tcp"),
        .init("bad protocol name", "*filter\n-A INPUT -p tcpp\nCOMMIT\n", line: 2, "expected a protocol name or number"),
        .init("protocol out of range", "*filter\n-A INPUT -p 256\nCOMMIT\n", line: 2, "expected a protocol name or number"),
        .init("inverted any protocol", "*filter\n-A INPUT ! -p all\nCOMMIT\n", line: 2, "would never match"),
        .init("NUL byte", "*filter\n-A INPUT\u{0} -j ACCEPT\nCOMMIT\n", line: 2, "binary data"),
        .init("huge line", "*filter\n-A INPUT -m comment --comment " + String(repeating: "x", count: 70_000) + "\nCOMMIT\n",
              line: 2, "the limit is 65536 bytes"),
        .init("table twice", "*nat\nCOMMIT\n*filter\nCOMMIT\n*nat\nCOMMIT\n", line: 5, "table nat is given twice for IPv4: at line 1 and at line 5"),
        .init("table twice in one stated family",
              "# Generated by iptables-save v1.8.9\n*nat\nCOMMIT\n# Generated by iptables-save v1.8.9\n*nat\nCOMMIT\n", line: 5,
              "given twice"),
        .init("table twice with the family given", "*nat\nCOMMIT\n*nat\nCOMMIT\n", line: 3, "given twice", family: .ipv4),
        .init("header while a table is open", "*nat\n-A OUTPUT -j ACCEPT\n*filter\nCOMMIT\n", line: 3, "has no COMMIT before this *filter"),
        .init("unknown table", "*nta\nCOMMIT\n", line: 1, "expected a table (filter, nat, mangle, raw or security)"),
        .init("policy on a user chain", "*filter\n:X ACCEPT [0:0]\nCOMMIT\n", line: 2, "not a built-in chain"),
        .init("bad policy", "*filter\n:INPUT REJECT [0:0]\nCOMMIT\n", line: 2, "expected a policy"),
        .init("bad policy counters", "*filter\n:INPUT ACCEPT [x:0]\nCOMMIT\n", line: 2, "expected counters"),
        .init("chain declared twice", "*filter\n:X - [0:0]\n:X - [0:0]\nCOMMIT\n", line: 3, "already exists"),
        .init("chain named like a target", "*filter\n-N DNAT\nCOMMIT\n", line: 2, "name of a target"),
        .init("chain name too long", "*filter\n-N " + String(repeating: "C", count: 29) + "\nCOMMIT\n", line: 2, "at most 28 bytes"),
        .init("-t in restore input", "*filter\n-t nat -A OUTPUT\nCOMMIT\n", line: 2, "cannot be used in restore input"),
        .init("two commands", "*filter\n-A INPUT -I INPUT\nCOMMIT\n", line: 2, "two commands"),
        .init("no command", "*filter\n-s 10.0.0.1 -j ACCEPT\nCOMMIT\n", line: 2, "no command"),
        .init("two targets", "*filter\n-A INPUT -j ACCEPT -j DROP\nCOMMIT\n", line: 2, "one target"),
        .init("address twice", "*filter\n-A INPUT -s 1.2.3.4 -s 1.2.3.5\nCOMMIT\n", line: 2, "given twice"),
        .init("option twice", "*filter\n-A INPUT -p tcp ! --dport 80 --dport 90\nCOMMIT\n", line: 2, "--dport is given twice"),
        .init("conflicting options", "*filter\n-A INPUT -p tcp --syn --tcp-flags SYN SYN\nCOMMIT\n", line: 2, "cannot be combined"),
        .init("double negation", "*filter\n-A INPUT ! ! -s 1.2.3.4\nCOMMIT\n", line: 2, "two \"!\""),
        .init("intrapositioned negation", "*filter\n-A INPUT -s ! 1.2.3.4\nCOMMIT\n", line: 2, "expected an address after -s, got \"!\""),
        .init("negation of a non-invertible option", "*filter\n-A INPUT -m comment ! --comment x\nCOMMIT\n", line: 2,
              "cannot precede --comment"),
        .init("trailing negation", "*filter\n-A INPUT !\nCOMMIT\n", line: 2, "ends with \"!\""),
        .init("ambiguous option", "*filter\n-A INPUT -m conntrack --ctst NEW\nCOMMIT\n", line: 2, "ambiguous option \"--ctst\""),
        .init("ambiguous rule option", "*filter\n-A INPUT -p tcp --d 80\nCOMMIT\n", line: 2, "ambiguous option \"--d\""),
        .init("stray argument", "*filter\n-A INPUT ACCEPT\nCOMMIT\n", line: 2, "unexpected argument \"ACCEPT\""),
        .init("insert past the end", "*filter\n-I INPUT 5 -j ACCEPT\nCOMMIT\n", line: 2, "cannot insert at position 5"),
        .init("bad rule number", "*filter\n-I INPUT 0 -j ACCEPT\nCOMMIT\n", line: 2, "expected a rule number"),
        .init("unknown user name", "*nat\n-A OUTPUT -m owner --uid-owner nosuchuser\nCOMMIT\n", line: 2,
              "unknown user \"nosuchuser\""),
        .init("unknown group name", "*nat\n-A OUTPUT -m owner --gid-owner ftp\nCOMMIT\n", line: 2, "unknown group \"ftp\""),
        .init("uid out of range", "*nat\n-A OUTPUT -m owner --uid-owner 4294967295\nCOMMIT\n", line: 2, "expected a user id"),
        .init("reversed uid range", "*nat\n-A OUTPUT -m owner --uid-owner 5-1\nCOMMIT\n", line: 2, "LOW <= HIGH"),
        .init("suppl-groups without gid", "*nat\n-A OUTPUT -m owner --suppl-groups\nCOMMIT\n", line: 2, "needs --gid-owner"),
        .init("nth without packet", "*nat\n-A OUTPUT -m statistic --mode nth --every 3\nCOMMIT\n", line: 2, "needs --every N and --packet P"),
        .init("packet not below every", "*nat\n-A OUTPUT -m statistic --mode nth --every 3 --packet 3\nCOMMIT\n", line: 2,
              "must be below --every"),
        .init("random without probability", "*nat\n-A OUTPUT -m statistic --mode random\nCOMMIT\n", line: 2, "needs --probability"),
        .init("statistic without mode", "*nat\n-A OUTPUT -m statistic --probability 0.5\nCOMMIT\n", line: 2, "needs --mode"),
        .init("probability above 1", "*nat\n-A OUTPUT -m statistic --mode random --probability 1.5\nCOMMIT\n", line: 2,
              "expected a probability between 0 and 1"),
        .init("tcp option 0", "*filter\n-A INPUT -p tcp --tcp-option 0\nCOMMIT\n", line: 2, "expected a TCP option number"),
        .init("bad tcp flag", "*filter\n-A INPUT -p tcp --tcp-flags SYN,FOO SYN\nCOMMIT\n", line: 2, "expected TCP flags"),
        .init("addrtype without types", "*filter\n-A INPUT -m addrtype --limit-iface-in\nCOMMIT\n", line: 2, "needs --src-type or --dst-type"),
        .init("mark without --mark", "*filter\n-A INPUT -m mark\nCOMMIT\n", line: 2, "needs --mark"),
        .init("mark too large", "*filter\n-A INPUT -m connmark --mark 4294967296\nCOMMIT\n", line: 2, "expected a mark"),
        .init("comment without --comment", "*filter\n-A INPUT -m comment\nCOMMIT\n", line: 2, "needs --comment"),
        .init("comment too long", "*filter\n-A INPUT -m comment --comment " + String(repeating: "c", count: 256) + "\nCOMMIT\n",
              line: 2, "at most 255"),
        .init("bad state", "*filter\n-A INPUT -m state --state NEW,OLD\nCOMMIT\n", line: 2, "expected states"),
        .init("bad conntrack direction", "*filter\n-A INPUT -m conntrack --ctdir SIDEWAYS\nCOMMIT\n", line: 2, "expected ORIGINAL or REPLY"),
        .init("bad mac", "*filter\n-A INPUT -m mac --mac-source 00:11:22:33:44\nCOMMIT\n", line: 2, "expected a MAC address"),
        .init("redirect ports without protocol", "*nat\n-A OUTPUT -j REDIRECT --to-ports 15001\nCOMMIT\n", line: 2, "needs -p tcp"),
        .init("redirect ports with a colon", "*nat\n-A OUTPUT -p tcp -j REDIRECT --to-ports 80:90\nCOMMIT\n", line: 2, "with a dash"),
        .init("redirect reversed ports", "*nat\n-A OUTPUT -p tcp -j REDIRECT --to-ports 90-80\nCOMMIT\n", line: 2, "LOW <= HIGH"),
        .init("DNAT without destination", "*nat\n-A OUTPUT -j DNAT\nCOMMIT\n", line: 2, "DNAT needs --to-destination"),
        .init("DNAT --random-fully", "*nat\n-A OUTPUT -j DNAT --to-destination 1.2.3.4 --random-fully\nCOMMIT\n", line: 2,
              "unknown option \"--random-fully\""),
        .init("SNAT twice", "*nat\n-A POSTROUTING -j SNAT --to-source 1.2.3.4 --to-source 1.2.3.5\nCOMMIT\n", line: 2, "given twice"),
        .init("DNAT ports without protocol", "*nat\n-A OUTPUT -j DNAT --to-destination 1.2.3.4:80\nCOMMIT\n", line: 2, "needs -p tcp"),
        .init("MARK without an operation", "*mangle\n-A OUTPUT -j MARK\nCOMMIT\n", line: 2, "MARK needs --set-xmark"),
        .init("CONNMARK without an operation", "*mangle\n-A OUTPUT -j CONNMARK --mask 0xff\nCOMMIT\n", line: 2, "CONNMARK needs"),
        .init("TPROXY without port", "*mangle\n-A PREROUTING -p tcp -j TPROXY --tproxy-mark 0x1\nCOMMIT\n", line: 2, "needs --on-port"),
        .init("CT zone from mark", "*raw\n-A OUTPUT -j CT --zone mark\nCOMMIT\n", line: 2, "expected a zone number"),
        .init("bad log level", "*filter\n-A INPUT -j LOG --log-level WARNING\nCOMMIT\n", line: 2, "expected a log level"),
        .init("empty log prefix", "*filter\n-A INPUT -j LOG --log-prefix \"\"\nCOMMIT\n", line: 2, "at least one character"),
        .init("bad reject type", "*filter\n-A INPUT -j REJECT --reject-with icmp-sad\nCOMMIT\n", line: 2, "expected a reject type"),
        .init("empty interface", "*filter\n-A INPUT -i \"\"\nCOMMIT\n", line: 2, "expected an interface name"),
        .init("interface name too long", "*filter\n-A INPUT -i abcdefghijklmnop\nCOMMIT\n", line: 2, "at most 15 bytes"),
        .init("fragment flag in IPv6", "*filter\n-A INPUT -d ::1 -f\nCOMMIT\n", line: 2, "does not exist for IPv6"),
        .init("IPv6 address in stated IPv4 rules", "*filter\n-A INPUT -s fd00::1\nCOMMIT\n", line: 2,
              "expected an IPv4 address after -s, got \"fd00::1\"", family: .ipv4),
        .init("IPv4 address in detected IPv6 rules", "*nat\n-A OUTPUT -d ::1/128 -j RETURN\n-A OUTPUT -d 10.0.0.1 -j RETURN\nCOMMIT\n",
              line: 3, "expected an IPv6 address after -d, got \"10.0.0.1\" (these rules are read as IPv6 because line 2 holds an IPv6 value)"),
        .init("icmp6 is not a protocol name", "*filter\n-A INPUT -p icmp6\nCOMMIT\n", line: 2, "expected a protocol name or number",
              family: .ipv6),
        .init("third part in a two-family golden", "iptables-save\n* nat\nCOMMIT\n* nat\nCOMMIT\n* nat\nCOMMIT\n", line: 6,
              "third address-family part"),
        .init("unexpected text after COMMIT", "*filter\nCOMMIT now\n", line: 2, "unexpected text after COMMIT"),
        .init("table in a command line", "iptables -t nta -A INPUT\n", line: 1, "expected a table"),
        .init("listing in a command line", "iptables -t nat -L\n", line: 1, "not a rule command"),
        .init("REJECT outside filter", "*nat\n-A OUTPUT -j REJECT\nCOMMIT\n", line: 2, "REJECT is only valid in table filter"),
        .init("NOTRACK outside raw", "*mangle\n-A OUTPUT -j NOTRACK\nCOMMIT\n", line: 2, "NOTRACK is only valid in table raw"),
        .init("TPROXY outside mangle", "*nat\n-A PREROUTING -p tcp -j TPROXY --on-port 1\nCOMMIT\n", line: 2, "only valid in table mangle"),
        .init("TPROXY without protocol", "*mangle\n-A PREROUTING -j TPROXY --on-port 1\nCOMMIT\n", line: 2, "needs -p tcp or -p udp"),
        .init("tcp match without -p tcp", "*filter\n-A INPUT -m udp --dport 53\nCOMMIT\n", line: 2, "the udp match needs -p udp"),
        .init("tcp match after ! -p tcp", "*filter\n-A INPUT ! -p tcp -m tcp\nCOMMIT\n", line: 2, "the tcp match needs -p tcp"),
        .init("implicit match after ! -p tcp", "*filter\n-A INPUT ! -p tcp --dport 80\nCOMMIT\n", line: 2, "cannot follow \"! -p\""),
        .init("tcp-reset without -p tcp", "*filter\n-A INPUT -p udp -j REJECT --reject-with tcp-reset\nCOMMIT\n", line: 2, "needs -p tcp"),
        .init("goto to a missing chain", "*filter\n-A INPUT -g NOWHERE\n\nCOMMIT\n", line: 4, "goes to chain NOWHERE (-g)"),
        .init("nftables script", "add table inet istio-proxy-nat\n", line: 1, "nftables syntax"),
        .init("bare double dash", "*filter\n-A INPUT --\nCOMMIT\n", line: 2, "unknown option \"--\""),
        .init("command line inside a table", "*nat\niptables -t nat -A OUTPUT -j ACCEPT\nCOMMIT\n", line: 2, "has no COMMIT before this command line"),
    ]

    @Test(arguments: cases)
    func malformedInputIsReported(_ c: MalformedCase) {
        do {
            let tables = try testParser(family: c.family).parse(c.text)
            Issue.record("parsed without error: \(tables.map { SaveSyntax.render($0) })")
        } catch {
            guard case .malformed(let file, let line, let message) = error else {
                Issue.record("wrong error case: \(error)")
                return
            }
            #expect(file == "rules.save")
            #expect(line == c.line)
            #expect(message.contains(c.fragment), "message: \(message)")
        }
    }

    @Test func invalidUTF8IsBinaryData() {
        let bytes = Array("*filter\n-A INPUT -j ACCEPT\n".utf8) + [0xFF, 0xFE, 0x0A] + Array("COMMIT\n".utf8)
        #expect(throws: RuleReaderError.malformed(file: "rules.save", line: 3, message: "binary data: the input is not UTF-8 text")) {
            try testParser().parse(bytes: bytes)
        }
    }

    @Test func errorDescriptionNamesFileAndLine() {
        let error = #expect(throws: RuleReaderError.self) {
            try testParser().parse("*filter\n-A INPUT -s 10.0.0.300\nCOMMIT\n")
        }
        #expect(error?.description == "rules.save:2: expected an address after -s, got \"10.0.0.300\"")
    }
}
