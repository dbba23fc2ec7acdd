import Testing
@testable import NetfilterModel

@Suite struct SaveSyntaxTests {
    @Test func rendersIstioSelfCallRuleInIptablesOrder() throws {
        let rule = Rule(
            destination: AddressMatch(address: IPAddress("127.0.0.1")!, prefixLength: 32, inverted: true),
            outInterface: InterfaceMatch("lo"),
            protocol: ProtocolMatch(ProtocolMatch.tcp),
            matches: [.tcp(TCPMatch(destinationPort: PortMatch(15008, inverted: true))),
                      .owner(OwnerMatch(uid: IDRangeMatch(1337)))],
            target: .jump("ISTIO_IN_REDIRECT"))
        #expect(SaveSyntax.render(rule, in: "ISTIO_OUTPUT", family: .ipv4)
            == "-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT")
    }

    @Test func rendersStatisticProbabilityLikePrintf() {
        // kube-proxy writes 0.33333333349; the kernel keeps round(p * 2^31).
        #expect(SaveSyntax.probabilityText(715_827_883) == "0.33333333349")
        #expect(SaveSyntax.probabilityText(1 << 30) == "0.50000000000")
        #expect(SaveSyntax.probabilityText(0) == "0.00000000000")
    }

    @Test func quotesLikeXtablesSaveString() {
        #expect(SaveSyntax.quoted("InboundCapture") == " InboundCapture")
        #expect(SaveSyntax.quoted("a b") == " \"a b\"")
        #expect(SaveSyntax.quoted("") == " \"\"")
        #expect(SaveSyntax.quoted("q\"'\\") == " \"q\\\"\\'\\\\\"")
        // Multi-byte text passes through byte for byte; only ASCII quote characters are escaped.
        #expect(SaveSyntax.quoted("café \"ü\"") == " \"café \\\"ü\\\"\"")
        #expect(SaveSyntax.quoted("e\u{301}'") == " \"e\u{301}\\'\"")
    }

    @Test func tableListsBuiltinsFirstThenUserChainsByName() {
        var t = Table(family: .ipv4, name: .nat, chains: [
            Chain(name: "ISTIO_REDIRECT", rules: [Rule(protocol: ProtocolMatch(6), target: .redirect(PortRewriteTarget(ports: 15001...15001)))]),
            Chain(name: "ISTIO_INBOUND"),
            Chain(name: .output, policy: .accept, rules: [Rule(target: .jump("ISTIO_OUTPUT"))]),
            Chain(name: .prerouting, policy: .accept),
        ])
        t.sortChains()
        #expect(SaveSyntax.render(t) == """
            *nat
            :PREROUTING ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            :ISTIO_INBOUND - [0:0]
            :ISTIO_REDIRECT - [0:0]
            -A OUTPUT -j ISTIO_OUTPUT
            -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
            COMMIT

            """)
    }
}

@Suite struct ChainGraphTests {
    @Test func findsReferrersReachabilityDanglingJumpsAndCycles() {
        let t = Table(family: .ipv4, name: .nat, chains: [
            Chain(name: .prerouting, policy: .accept, rules: [Rule(target: .jump("A"))]),
            Chain(name: .output, policy: .accept, rules: [Rule(target: .jump("B")), Rule(target: .jump("MISSING"))]),
            Chain(name: "A", rules: [Rule(target: .goto("B"))]),
            Chain(name: "B", rules: [Rule(target: .jump("C"))]),
            Chain(name: "C", rules: [Rule(target: .jump("B"))]),
            Chain(name: "ORPHAN"),
        ])
        let g = ChainGraph(t)
        #expect(g.referrers("B") == [RulePosition(chain: .output, number: 1), RulePosition(chain: "A", number: 1),
                                     RulePosition(chain: "C", number: 1)])
        #expect(g.isReachable("C", from: .prerouting))
        #expect(!g.isReachable("A", from: .output))
        #expect(g.hooks(reaching: "A") == [.prerouting])
        #expect(g.danglingJumps == [RulePosition(chain: .output, number: 2)])
        #expect(g.cycles == [["B", "C"]])
        #expect(g.unreachableChains == ["ORPHAN"])
    }

    /// What the walk's pruning reads: each rule's target chain by number, each chain's callers once, and a chain a
    /// dump repeats numbered as its first copy, whose repeat's jumps count as the first one's.
    @Test func numbersChainsOnceAndKeepsEachRulesTargetAndEachChainsCallers() {
        let t = Table(family: .ipv4, name: .nat, chains: [
            Chain(name: .output, policy: .accept, rules: [Rule(target: .jump("A")), Rule(target: .accept),
                                                          Rule(target: .jump("A")), Rule(target: .goto("GONE"))]),
            Chain(name: "A", rules: [Rule(target: .jump("B")), Rule(target: .jump("B"))]),
            Chain(name: "B", rules: [Rule(target: .return)]),
            Chain(name: "A", rules: [Rule(target: .jump("C"))]),
            Chain(name: "C"),
        ])
        let g = ChainGraph(t)
        #expect(g.number(.output) == 0 && g.number("A") == 1 && g.number("B") == 2 && g.number("C") == 4)
        #expect(g.number("GONE") == nil)
        #expect(g.numbering.numberAt == [0, 1, 2, 1, 4])
        #expect(g.numbering.chain("A")?.rules.count == 2)
        #expect((0..<4).map { g.target(place: 0, rule: $0) } == [1, -1, 1, -1])
        #expect(g.target(place: 3, rule: 0) == 4)
        #expect(Array(g.callers(of: 1)) == [0])
        #expect(Array(g.callers(of: 2)) == [1])
        #expect(Array(g.callers(of: 4)) == [1], "the repeat of A jumps to C as A")
        #expect(g.callers(of: 0).isEmpty)
        #expect(g.referrers("A") == [RulePosition(chain: .output, number: 1), RulePosition(chain: .output, number: 3)])
        #expect(g.referrers("C") == [RulePosition(chain: "A", number: 1)])
        #expect(g.danglingJumps == [RulePosition(chain: .output, number: 4)])
        #expect(g.isReachable("C", from: .output))
    }

    /// A dump may chain user chains one into the next as deep as it likes (iptables-legacy-restore accepts 50,000):
    /// the graph is built without recursion, and a cycle closed at the far end is still found.
    @Test func aFiftyThousandDeepJumpChainIsWalkedWithoutRecursion() {
        let depth = 50_000
        var chains = [Chain(name: .output, policy: .accept, rules: [Rule(target: .jump("C0"))])]
        for i in 0..<depth {
            let next = i == depth - 1 ? "C\(depth - 2)" : "C\(i + 1)"
            chains.append(Chain(name: ChainName(rawValue: "C\(i)"), rules: [Rule(target: .jump(ChainName(rawValue: next)))]))
        }
        let g = ChainGraph(Table(family: .ipv4, name: .filter, chains: chains))
        #expect(g.isReachable(ChainName(rawValue: "C\(depth - 1)"), from: .output))
        #expect(g.cycles == [[ChainName(rawValue: "C\(depth - 2)"), ChainName(rawValue: "C\(depth - 1)")]])
        #expect(g.hooks(reaching: ChainName(rawValue: "C\(depth / 2)")) == [.output])
    }
}
