import Foundation
import NetfilterModel
import RuleReaders
import Testing
import TestSupport

/// One case of Istio's native-nftables corpus (`master/sidecar-nftables`): an `nft -f` transaction.
struct NftablesGolden: Sendable, CustomTestStringConvertible {
    var name: String
    /// Why loading needs more than `nft -f` (from load-results.tsv), "" when it needs nothing.
    var prerequisite: String

    static let directory = "istio/master/sidecar-nftables"
    var path: String { Fixtures.url("\(Self.directory)/\(name).golden").path }
    var recordedListing: URL { Fixtures.url("istio/master/live-save/sidecar-nftables/\(name).nft") }
    var testDescription: String { name }

    /// Owner-group cases name groups `java` and `ftp`, which `nft` resolves through /etc/group when it loads.
    var needsGroupNames: Bool { prerequisite.contains("group") }

    /// Every case of cases.json, with load-results.tsv's prerequisite where it records one.
    static let all: [NftablesGolden] = {
        guard let data = try? Data(contentsOf: Fixtures.url("\(directory)/cases.json")),
              let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let cases = root["cases"] as? [String: Any] else { return [] }
        var prerequisites: [String: String] = [:]
        for line in ((try? Fixtures.text("istio/load-results.tsv")) ?? "").split(separator: "\n") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            if f.count >= 7, f[1] == "sidecar-nftables", f[4] == "nftables", f[5] == "ok-with-prereq" { prerequisites[f[2]] = f[6] }
        }
        return cases.keys.sorted().map { NftablesGolden(name: $0, prerequisite: prerequisites[$0] ?? "") }
    }()

    /// Loads the transaction unchanged with `nft -f`, the way istio-iptables submits it. Group names come from a
    /// private /etc/group bind-mounted in a throw-away mount namespace (as load-golden.sh's header describes),
    /// so the host's file is never touched; nft stores the numeric GID, and lists it as a number.
    func load(into ns: TestNamespace) throws {
        var argv = ["nft", "-f", path]
        var groupFile: String?
        if needsGroupNames {
            let file = NSTemporaryDirectory() + "/\(ns.name).group"
            let hostGroups = (try? String(contentsOfFile: "/etc/group", encoding: .utf8)) ?? ""
            try (hostGroups + "java:x:2001:\nftp:x:2002:\n").write(toFile: file, atomically: true, encoding: .utf8)
            groupFile = file
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    "mount --bind \"$0\" /etc/group && exec \"$@\"", file] + argv
        }
        defer { if let groupFile { try? FileManager.default.removeItem(atPath: groupFile) } }
        try ns.mustRun(argv)
    }
}

let netnsSkip = Comment(rawValue: TestNamespace.skipReason)

/// Issue 13: Istio's native nftables tables read in-process through libnftables, rendered as `nft list ruleset`.
@Suite("Native nf_tables through libnftables: Istio's nftables corpus reads back as nft lists it")
struct NftablesReaderGoldenTests {
    @Test("the corpus lists its 28 cases, four of them with owner-group names")
    func corpusIsThere() {
        #expect(NftablesGolden.all.count == 28)
        #expect(NftablesGolden.all.filter(\.needsGroupNames).map(\.name)
                == ["ipv6-dns-outbound-owner-groups", "ipv6-dns-outbound-owner-groups-exclude",
                    "outbound-owner-groups", "outbound-owner-groups-exclude"])
        for golden in NftablesGolden.all {
            #expect(FileManager.default.fileExists(atPath: golden.path), "\(golden.name).golden")
        }
    }

    /// Load, read through libnftables, render: byte-identical to `nft list ruleset` (and, with handles, to
    /// `nft -a list ruleset`) in the same namespace, and to the listing recorded when the corpus was made.
    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip), arguments: NftablesGolden.all)
    func goldenRendersAsNftListsIt(_ golden: NftablesGolden) throws {
        let ns = try TestNamespace()
        try golden.load(into: ns)
        let tables = try NftablesReader(namespacePath: ns.path).read()
        #expect(!tables.isEmpty)
        #expect(tables.allSatisfy { $0.family == .inet && $0.name.hasPrefix("istio-proxy-") })

        let listed = try ns.mustRun(["nft", "list", "ruleset"])
        #expect(NftSyntax.render(tables) == listed)
        let listedWithHandles = try ns.mustRun(["nft", "-a", "list", "ruleset"])
        #expect(NftSyntax.render(tables, handles: true) == listedWithHandles)
        #expect(NftSyntax.render(tables) == (try String(contentsOf: golden.recordedListing, encoding: .utf8)))
    }
}

/// What the reader decodes, how it behaves in odd namespaces, and that reading changes nothing.
@Suite("Native nf_tables reader: decoding, empty and odd namespaces, no side effects")
struct NftablesReaderTests {
    /// Base chains of every kind, counters with values, a jump and a goto, verdict maps (anonymous and named),
    /// a named set and map, marks, masks, NAT, notrack and a comment: each line as nft 1.0.6 lists it.
    static let handmade = """
        table inet t {
        \tset allowed {
        \t\ttype ipv4_addr
        \t\tflags interval
        \t\telements = { 10.0.0.0/8, 192.168.1.1 }
        \t}

        \tmap ports {
        \t\ttype inet_service : verdict
        \t\telements = { 22 : accept, 80 : jump web }
        \t}

        \tchain pre {
        \t\ttype filter hook prerouting priority raw; policy accept;
        \t\tip saddr @allowed counter packets 7 bytes 420 notrack
        \t\ttcp dport vmap @ports
        \t\tudp dport vmap { 53 : accept, 123 : drop }
        \t}

        \tchain out {
        \t\ttype route hook output priority mangle + 5; policy accept;
        \t\tmeta mark & 0x00000fff == 0x00000539 counter packets 3 bytes 180 ct mark set ct mark & 0xfffff111 | 0x00000111
        \t\tct state established,related accept comment "keep going"
        \t\tmeta l4proto tcp goto web
        \t}

        \tchain post {
        \t\ttype nat hook postrouting priority srcnat; policy accept;
        \t\tip daddr 10.1.0.0/16 masquerade
        \t\tip6 daddr fd00::/8 meta l4proto tcp snat ip6 to [fd00::1]:1000-2000
        \t}

        \tchain natin {
        \t\ttype nat hook prerouting priority dstnat; policy accept;
        \t\tudp dport 5353 dnat ip to 10.0.0.1:53
        \t\tmeta l4proto tcp redirect to :15001
        \t}

        \tchain filt {
        \t\ttype filter hook input priority filter - 10; policy drop;
        \t\tiifname { "eth0", "eth1" } tcp dport != { 22, 80 } drop
        \t\tmeta skuid 1337 ct zone set 2
        \t}

        \tchain web {
        \t\ttcp flags == syn return
        \t}
        }

        """

    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip))
    func handmadeRulesetDecodesAndRendersExactly() throws {
        let ns = try TestNamespace()
        try ns.mustRun(["nft", "-f", "-"], stdin: Self.handmade)
        let tables = try NftablesReader(namespacePath: ns.path).read()
        let listed = try ns.mustRun(["nft", "list", "ruleset"])
        #expect(listed == Self.handmade, "the fixture is written as nft lists it")
        #expect(NftSyntax.render(tables) == listed)
        #expect(NftSyntax.render(tables, handles: true) == (try ns.mustRun(["nft", "-a", "list", "ruleset"])))

        let table = try #require(tables.first)
        #expect(tables.count == 1 && table.family == .inet && table.name == "t")
        #expect(table.chains.map(\.name) == ["pre", "out", "post", "natin", "filt", "web"])
        #expect(table.chain("pre")?.base == NftBaseChain(type: .filter, hook: .prerouting, priority: -300, policy: .accept))
        #expect(table.chain("out")?.base == NftBaseChain(type: .route, hook: .output, priority: -145, policy: .accept))
        #expect(table.chain("post")?.base == NftBaseChain(type: .nat, hook: .postrouting, priority: 100, policy: .accept))
        #expect(table.chain("filt")?.base == NftBaseChain(type: .filter, hook: .input, priority: -10, policy: .drop))
        #expect(table.chain("web")?.base == nil)

        // Handles are the kernel's: unique, and the ones `nft -a` prints.
        let handles = table.chains.flatMap(\.rules).map(\.handle)
        #expect(Set(handles).count == handles.count && !handles.contains(0))
        let annotated = try ns.mustRun(["nft", "-a", "list", "chain", "inet", "t", "out"])
        let out = try #require(table.chain("out"))
        for rule in out.rules { #expect(annotated.contains("# handle \(rule.handle)\n")) }

        let pre = try #require(table.chain("pre")?.rules)
        #expect(pre[0].statements == [
            .match(NftMatch(.payload(.field(protocol: "ip", field: "saddr")), .equal, .setReference("allowed"))),
            .counter(NftCounter(packets: 7, bytes: 420)),
            .notrack,
        ])
        #expect(pre[1].statements == [.verdictMap(key: .payload(.field(protocol: "tcp", field: "dport")), data: .setReference("ports"))])
        #expect(pre[2].statements == [.verdictMap(key: .payload(.field(protocol: "udp", field: "dport")),
                                                  data: .set([.mapping(.integer(53), .verdict(.accept)), .mapping(.integer(123), .verdict(.drop))]))])
        #expect(out.rules[0].statements == [
            .match(NftMatch(.binary(.and, .meta(key: "mark"), .integer(0xfff)), .equal, .integer(0x539))),
            .counter(NftCounter(packets: 3, bytes: 180)),
            .ctSet(key: "mark", direction: nil, value: .binary(.or, .binary(.and, .ct(key: "mark", direction: nil), .integer(0xfffff111)), .integer(0x111))),
        ])
        #expect(out.rules[1].comment == "keep going")
        #expect(out.rules[1].statements.first == .match(NftMatch(.ct(key: "state", direction: nil), .implicit,
                                                                  .list([.string("established"), .string("related")]))))
        #expect(out.rules[2].statements.last == .verdict(.goto("web")))
        #expect(table.chain("filt")?.rules[1].statements.last == .ctSet(key: "zone", direction: nil, value: .integer(2)))

        #expect(table.sets == [
            NftSet(kind: .set, name: "allowed", handle: table.sets[0].handle, keyType: ["ipv4_addr"], flags: ["interval"],
                   elements: [.prefix(address: .string("10.0.0.0"), length: 8), .string("192.168.1.1")]),
            NftSet(kind: .map, name: "ports", handle: table.sets[1].handle, keyType: ["inet_service"], dataType: "verdict",
                   elements: [.mapping(.integer(22), .verdict(.accept)), .mapping(.integer(80), .verdict(.jump("web")))]),
        ])
        // The one jump or goto statement is `goto web`; the map's `jump web` is data, not a statement.
        let targets = table.chains.flatMap(\.rules).flatMap(\.statements).compactMap { s -> String? in
            if case .verdict(let v) = s { return v.target }
            return nil
        }
        #expect(targets == ["web"])
    }

    /// Beyond Istio's corpus: every family, named sets that wrap over lines, concatenations, ranges, maps,
    /// flag comparisons, header writes, NAT with ranges and flags, tproxy in an `ip` table, fib, rt, socket. The fixture is
    /// exactly what `nft list ruleset` printed after loading it, so it also loads as it is.
    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip))
    func constructsBeyondTheCorpusRenderExactly() throws {
        let fixture = try Fixtures.text("nftables/constructs.nft")
        let ns = try TestNamespace()
        try ns.mustRun(["nft", "-f", Fixtures.url("nftables/constructs.nft").path])
        let listed = try ns.mustRun(["nft", "list", "ruleset"])
        #expect(listed == fixture)
        let tables = try NftablesReader(namespacePath: ns.path).read()
        #expect(tables.map(\.family) == [.inet, .ip, .ip6, .arp, .bridge])
        #expect(NftSyntax.render(tables) == listed)
        #expect(NftSyntax.render(tables, handles: true) == (try ns.mustRun(["nft", "-a", "list", "ruleset"])))
    }

    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip))
    func tproxyCaseDecodesIstiosChains() throws {
        let ns = try TestNamespace()
        try NftablesGolden(name: "tproxy", prerequisite: "").load(into: ns)
        let tables = try NftablesReader(namespacePath: ns.path).read()
        #expect(tables.map(\.name) == ["istio-proxy-nat", "istio-proxy-mangle", "istio-proxy-raw"])
        let nat = try #require(tables.first)
        #expect(nat.chain("prerouting")?.base == NftBaseChain(type: .nat, hook: .prerouting, priority: -100))
        #expect(nat.chain("output")?.base == NftBaseChain(type: .nat, hook: .output, priority: -100))
        #expect(nat.chain("istio-output")?.base == nil)
        #expect(nat.chain("output")?.rules.last?.statements == [.counter(NftCounter()), .verdict(.jump("istio-output"))])
        #expect(nat.chain("istio-redirect")?.rules.first?.statements == [
            .match(NftMatch(.meta(key: "l4proto"), .equal, .string("tcp"))),
            .counter(NftCounter()),
            .redirect(NftNAT(port: .integer(15001))),
        ])
        let mangle = tables[1]
        #expect(mangle.chain("output")?.base == NftBaseChain(type: .route, hook: .output, priority: -150))
        #expect(mangle.chain("istio-tproxy")?.rules.first?.statements.suffix(4) == [
            .tproxy(NftTProxy(family: "ip", port: .integer(15006))),
            .metaSet(key: "mark", value: .integer(1337)),
            .counter(NftCounter()),
            .verdict(.accept),
        ])
        let raw = tables[2]
        #expect(raw.chain("istio-output-dns")?.rules.first?.statements.last == .ctSet(key: "zone", direction: nil, value: .integer(1)))
    }

    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip))
    func namespaceWithoutTablesReadsAsEmpty() throws {
        let ns = try TestNamespace()
        #expect(try NftablesReader(namespacePath: ns.path).read() == [])
        try ns.mustRun(["ip", "link", "set", "lo", "up"])
        #expect(try NftablesReader(namespacePath: ns.path).read() == [])
        // Reading created nothing.
        #expect(try ns.mustRun(["nft", "list", "ruleset"]).isEmpty)
    }

    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip), arguments: [false, true])
    func readsWithLoopbackDownAndUp(loUp: Bool) throws {
        let ns = try TestNamespace()
        try NftablesGolden(name: "dns-uid-gid", prerequisite: "").load(into: ns)
        if loUp { try ns.mustRun(["ip", "link", "set", "lo", "up"]) }
        let tables = try NftablesReader(namespacePath: ns.path).read()
        #expect(tables.map(\.name) == ["istio-proxy-nat", "istio-proxy-raw"])
        #expect(NftSyntax.render(tables) == (try ns.mustRun(["nft", "list", "ruleset"])))
    }

    /// Fifty reads with lo up: the rules and every counter stay as they were, so no packet was sent or seen.
    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip))
    func fiftyReadsMoveNoCounter() throws {
        let ns = try TestNamespace()
        try NftablesGolden(name: "tproxy", prerequisite: "").load(into: ns)
        try ns.mustRun(["ip", "link", "set", "lo", "up"])
        let before = try ns.mustRun(["nft", "-a", "list", "ruleset"])
        let reader = NftablesReader(namespacePath: ns.path)
        let first = try reader.read()
        for _ in 0..<50 { #expect(try reader.read() == first) }
        #expect(try ns.mustRun(["nft", "-a", "list", "ruleset"]) == before)
        // The reader's own view of the counters: all still zero.
        let counters = first.flatMap(\.chains).flatMap(\.rules).flatMap(\.statements).compactMap { s -> NftCounter? in
            if case .counter(let c) = s { return c }
            return nil
        }
        #expect(!counters.isEmpty && counters.allSatisfy { $0 == NftCounter() })
    }

    /// The read's own thread under strace: the test bundle runs itself for one probe test that reads a prepared
    /// namespace, and every system call of the threads that entered it (setns) is checked. No program started,
    /// only netlink sockets, and only nf_tables GET requests sent (type 0x0aNN, NN a NFT_MSG_GET*).
    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip))
    func readThreadStartsNothingAndSendsOnlyNetlinkGets() throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/strace"), "strace is not installed (scripts/install-deps.sh installs it)")
        let ns = try TestNamespace()
        try NftablesGolden(name: "tproxy", prerequisite: "").load(into: ns)
        try ns.mustRun(["ip", "link", "set", "lo", "up"])
        let log = NSTemporaryDirectory() + "iptaudit-nft-strace-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(log) }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
        let r = try runCommand(["timeout", "-s", "KILL", "120", "strace", "-f", "-qq", "-o", log, "-e", "trace=setns,execve,socket,sendto,sendmsg,connect",
                                bundle, "--testing-library", "swift-testing", "--filter", "nftablesReadProbe"],
                               environment: [Self.probeVariable: ns.path])
        #expect(r.status == 0, "the probe run failed: \(r.stdout.suffix(2000)) \(r.stderr.suffix(2000))")
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        let readers = Set(lines.filter { $0.contains("setns(") }.compactMap { $0.split(separator: " ").first.map(String.init) })
        #expect(!readers.isEmpty, "no thread entered the namespace")
        let calls = lines.filter { line in readers.contains { line.hasPrefix($0 + " ") } }
        #expect(!calls.contains { $0.contains("execve(") }, "the read started a program")
        let sockets = calls.filter { $0.contains("socket(") }
        #expect(sockets.count >= 2 && sockets.allSatisfy { $0.contains("socket(AF_NETLINK,") && $0.contains("NETLINK_NETFILTER") }, "\(sockets)")
        #expect(!calls.contains { $0.contains("connect(") || $0.contains("sendmsg(") }, "\(calls)")
        // NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETTABLE 1, GETCHAIN 4, GETRULE 7, GETSET 10, GETSETELEM 13, GETGEN 16,
        // GETOBJ 19, GETFLOWTABLE 23.
        let gets: Set<String> = ["0xa01", "0xa04", "0xa07", "0xa0a", "0xa0d", "0xa10", "0xa13", "0xa17"]
        let sent = calls.filter { $0.contains("sendto(") }.compactMap { line -> String? in
            guard let r = line.range(of: "nlmsg_type=") else { return nil }
            return String(line[r.upperBound...].prefix { $0 != " " && $0 != "," })
        }
        #expect(!sent.isEmpty && sent.allSatisfy(gets.contains), "sent \(sent)")
        #expect(sent.contains("0xa07"), "the rules were dumped")
    }

    static let probeVariable = "IPTAUDIT_NFT_STRACE_PROBE"

    /// Runs only inside `readThreadStartsNothingAndSendsOnlyNetlinkGets`, which names the namespace to read.
    @Test(.enabled(if: ProcessInfo.processInfo.environment[probeVariable] != nil,
                   "runs only as readThreadStartsNothingAndSendsOnlyNetlinkGets' traced child"))
    func nftablesReadProbe() throws {
        let path = try #require(ProcessInfo.processInfo.environment[Self.probeVariable])
        #expect(try !NftablesReader(namespacePath: path).read().isEmpty)
    }

    /// iptables-nft's tables are nf_tables too: their xt matches and targets are kept (as JSON), not an error.
    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip))
    func iptablesNftTablesAreReadWithTheirXtStatementsKept() throws {
        let ns = try TestNamespace()
        try ns.mustRun(["sh", Fixtures.loadGolden.path, Fixtures.istio.appendingPathComponent("master/cni-sidecar-iptables/basic.txt.golden").path,
                        "4", "nft"])
        let tables = try NftablesReader(namespacePath: ns.path).read()
        let nat = try #require(tables.first { $0.family == .ip && $0.name == "nat" })
        #expect(nat.chain("ISTIO_OUTPUT") != nil)
        let kept = nat.chains.flatMap(\.rules).flatMap(\.statements).filter { if case .other(let json) = $0 { json["xt"] != nil } else { false } }
        #expect(!kept.isEmpty)
    }

    @Test func missingNamespaceIsANamespaceError() {
        #expect(throws: RuleReaderError.self) { try NftablesReader(namespacePath: "/run/netns/iptaudit-no-such-namespace").read() }
        do {
            _ = try NftablesReader(namespacePath: "/run/netns/iptaudit-no-such-namespace").read()
        } catch {
            guard case .namespace = error else { Issue.record("expected a namespace error, got \(error)"); return }
        }
    }

    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip))
    func liveReaderReadsNativeTablesOfItsNamespace() throws {
        let ns = try TestNamespace()
        try NftablesGolden(name: "empty", prerequisite: "").load(into: ns)
        let tables = try LiveRulesetReader(namespacePath: ns.path).readNativeNftables()
        #expect(tables.map(\.name) == ["istio-proxy-nat"])
    }
}
