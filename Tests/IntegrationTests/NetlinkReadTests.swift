import Foundation
import NetfilterModel
import RuleReaders
import TestSupport
import Testing

/// The in-process netlink reads (`NetlinkRouting`, `PolicyRoutingReader`, `RuntimeInputs`, `NftablesInventory`)
/// against what iproute2 and nft report for the same private namespace, and their read-only promise.
@Suite("Netlink reads equal ip and nft, and change nothing")
struct NetlinkReadTests {
    /// A namespace's routing set-up, as the commands that make it.
    struct Setup: CustomTestStringConvertible, Sendable {
        var name: String
        var commands: [[String]]
        var testDescription: String { name }
    }

    static let tproxy: [[String]] = [
        ["ip", "link", "set", "lo", "up"],
        ["ip", "-4", "rule", "add", "fwmark", "0x539/0xfff", "lookup", "133"],
        ["ip", "-6", "rule", "add", "fwmark", "0x539/0xfff", "lookup", "133"],
        ["ip", "-4", "route", "add", "local", "default", "dev", "lo", "table", "133"],
        ["ip", "-6", "route", "add", "local", "default", "dev", "lo", "table", "133"],
    ]

    static let setups: [Setup] = [
        Setup(name: "empty namespace, lo down", commands: []),
        Setup(name: "istio TPROXY", commands: tproxy),
        Setup(name: "istio ambient", commands: [
            ["ip", "link", "set", "lo", "up"],
            ["ip", "-4", "rule", "add", "fwmark", "0x111/0xfff", "pref", "32764", "lookup", "100"],
            ["ip", "-6", "rule", "add", "fwmark", "0x111/0xfff", "pref", "32764", "lookup", "100"],
            ["ip", "-4", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100"],
            ["ip", "-6", "route", "add", "local", "::/0", "dev", "lo", "table", "100"],
        ]),
        Setup(name: "TPROXY, then lo down", commands: tproxy + [["ip", "link", "set", "lo", "down"]]),
        Setup(name: "veth, /32 route, table 300, rules without table or inverted", commands: tproxy + [
            // No duplicate address detection: its tentative addresses would change under the comparisons.
            ["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"], ["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"],
            ["ip", "link", "add", "nl0", "type", "veth", "peer", "name", "nl1"],
            ["ip", "link", "set", "nl0", "up"], ["ip", "link", "set", "nl1", "up"],
            ["ip", "-4", "addr", "add", "10.9.0.1/24", "dev", "nl0"],
            ["ip", "-4", "addr", "add", "10.9.0.7/32", "dev", "nl1"],
            ["ip", "-6", "addr", "add", "2001:db8:9::1/64", "dev", "nl0", "nodad"],
            ["ip", "-6", "addr", "add", "fd00:9::7/128", "dev", "nl1", "nodad"],
            ["ip", "-4", "rule", "add", "fwmark", "0x2", "lookup", "300"],
            ["ip", "-4", "rule", "add", "not", "fwmark", "0x3", "pref", "200", "lookup", "300"],
            ["ip", "-4", "rule", "add", "from", "10.1.0.0/16", "iif", "nl0", "blackhole"],
            ["ip", "-6", "rule", "add", "fwmark", "0x0/0xff", "lookup", "300"],
            ["ip", "-4", "route", "add", "10.8.0.5/32", "dev", "nl0", "table", "300"],
            ["ip", "-4", "route", "add", "192.168.0.0/16", "via", "10.9.0.2", "table", "300"],
            ["ip", "-4", "route", "add", "blackhole", "10.7.0.0/16", "table", "300"],
            ["ip", "-4", "route", "add", "local", "default", "dev", "lo", "table", "70000"],
            ["ip", "-4", "rule", "add", "fwmark", "0x70", "lookup", "70000"],
            ["ip", "-6", "route", "add", "2001:db8:8::5/128", "dev", "nl0", "table", "300"],
            ["ip", "-6", "route", "add", "unreachable", "2001:db8:7::/48", "table", "300"],
        ]),
        Setup(name: "every kind of rule before a fwmark rule (goto, nop, actions, selectors, suppressors)", commands: [
            ["ip", "link", "set", "lo", "up"],
            ["ip", "link", "add", "nl0", "type", "veth", "peer", "name", "nl1"],
            ["ip", "-4", "rule", "add", "pref", "100", "goto", "32766"],
            ["ip", "-4", "rule", "add", "pref", "101", "nop"],
            ["ip", "-4", "rule", "add", "pref", "102", "ipproto", "udp", "sport", "1000-2000", "dport", "53", "tos", "0x10",
             "uidrange", "1000-2000", "lookup", "main", "suppress_prefixlength", "0", "suppress_ifgroup", "3"],
            ["ip", "-4", "rule", "add", "pref", "103", "to", "10.2.0.0/16", "oif", "nl0", "unreachable"],
            ["ip", "-4", "rule", "add", "pref", "104", "not", "from", "10.3.0.1", "prohibit"],
            ["ip", "-4", "rule", "add", "pref", "105", "tun_id", "7", "lookup", "200"],
            ["ip", "-4", "rule", "add", "pref", "106", "l3mdev"],
            ["ip", "-4", "rule", "add", "pref", "108", "not", "l3mdev"],
            ["ip", "-4", "rule", "add", "pref", "107", "iif", "lo", "lookup", "201"],
            ["ip", "-4", "route", "add", "unreachable", "default", "table", "201"],
            ["ip", "-4", "rule", "add", "fwmark", "0x111/0xfff", "pref", "32764", "lookup", "100"],
            ["ip", "-4", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100"],
            ["ip", "-4", "rule", "add", "pref", "32764", "lookup", "202"],
        ]),
    ]

    static func prepare(_ setup: Setup) throws -> TestNamespace {
        let ns = try TestNamespace()
        for command in setup.commands { try ns.mustRun(command) }
        return ns
    }

    // MARK: ip rule / ip route

    /// What `ip -j rule` and `ip -j route show table T` report, decoded as the old `ip -j` reader did.
    static func policyRoutingFromIp(_ ns: TestNamespace) throws -> PolicyRouting {
        var state = PolicyRouting()
        var read: [Family: [String]] = [:]
        let protocols = ["tcp": 6, "udp": 17, "icmp": 1]
        for family in Family.allCases {
            let flag = family == .ipv4 ? "-4" : "-6"
            var rules: [PolicyRouting.RoutingRule] = []
            for r in try json(ns, ["ip", "-j", flag, "rule", "show"]) {
                func prefix(_ key: String) -> String? {
                    guard let a = r[key] as? String, a != "all" else { return nil }
                    return (r[key + "len"] as? NSNumber).map { "\(a)/\($0)" } ?? a
                }
                func range(_ key: String) -> String? {
                    if let one = r[key] as? NSNumber { return "\(one)" }
                    guard let start = r[key + "_start"] as? NSNumber, let end = r[key + "_end"] as? NSNumber else { return nil }
                    return start == end ? "\(start)" : "\(start)-\(end)"
                }
                // An l3mdev lookup names no table; under `not` the kernel looks up main.
                let l3mdev = r.keys.contains("l3mdev")
                if l3mdev, !r.keys.contains("not") { continue }
                let action: PolicyRouting.RoutingRule.Action? = r.keys.contains("goto") ? .goto : r.keys.contains("nop") ? .nop
                    : (r["action"] as? String).flatMap(PolicyRouting.RoutingRule.Action.init(rawValue:))
                guard let table = action == nil ? (l3mdev ? "main" : r["table"].map({ "\($0)" })) : "" else { continue }
                var other: [String] = []
                if let tos = r["tos"] as? String { other.append("tos \(tos)") }
                if let v = range("sport") { other.append("sport \(v)") }
                if let v = range("dport") { other.append("dport \(v)") }
                if let v = range("uid") { other.append("uidrange \(v)") }
                if let v = r["tun_id"] as? NSNumber { other.append("tun_id \(v)") }
                if let v = r["suppress_ifgroup"] as? String { other.append("suppress_ifgroup \(v)") }
                if l3mdev { other.append("l3mdev") }
                rules.append(PolicyRouting.RoutingRule(
                    family: family, priority: (r["priority"] as? NSNumber)?.uint32Value,
                    fwmark: (r["fwmark"] as? String).flatMap(hex), fwmask: (r["fwmask"] as? String).flatMap(hex),
                    table: table, inverted: r.keys.contains("not"),  // ip -j prints `"not": null`
                    source: prefix("src"), destination: prefix("dst"), inputInterface: r["iif"] as? String, outputInterface: r["oif"] as? String,
                    suppressPrefixLength: (r["suppress_prefixlen"] as? NSNumber)?.intValue
                ).with(action: action, gotoTarget: (r["goto"] as? NSNumber)?.uint32Value,
                       ipProtocol: (r["ipproto"] as? String).flatMap { protocols[$0] }.map(UInt8.init), otherSelectors: other.isEmpty ? nil : other))
            }
            state.rules += rules
            // The tables iptaudit reads: fwmark lookups' and those of lookups listed before the last of them.
            let last = rules.lastIndex { $0.fwmark != nil && $0.action == nil } ?? -1
            let tables = Set(rules.enumerated().filter { i, r in r.action == nil && (r.fwmark != nil || i < last) }.map(\.element.table))
                .subtracting(["local"]).sorted()
            read[family] = tables
            for table in tables {
                // A table no route was ever added to does not exist for ip; it holds no route for iptaudit either.
                let listed = try ns.run(["ip", "-j", flag, "route", "show", "table", table])
                guard listed.status == 0 else { continue }
                for route in try json(ns, ["ip", "-j", flag, "route", "show", "table", table]) {
                    state.routes.append(.init(family: family, type: route["type"] as? String ?? "unicast",
                                              destination: route["dst"] as? String ?? "", device: route["dev"] as? String, table: table))
                }
            }
        }
        state.routeTablesRead = read
        return state
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), arguments: setups)
    func policyRoutingEqualsIp(_ setup: Setup) throws {
        let ns = try Self.prepare(setup)
        let ours = try PolicyRoutingReader(namespacePath: ns.path).read(families: [.ipv4, .ipv6])
        let ip = try Self.policyRoutingFromIp(ns)
        #expect(ours.rules == ip.rules)
        #expect(ours.routeTablesRead == ip.routeTablesRead)
        if setup.name.hasPrefix("every kind") {
            // Written out, not recomputed: the lookups listed before the last fwmark rule, and that rule's table.
            #expect(ours.routeTablesRead == [.ipv4: ["100", "200", "201", "main"], .ipv6: []])
        }
        #expect(Set(ours.routes) == Set(ip.routes))
        #expect(ours.routes.count == ip.routes.count)
        if setup.commands == Self.tproxy {
            // What the TPROXY obligation looks for, spelled exactly.
            for family in Family.allCases {
                #expect(ours.rules.contains(PolicyRouting.RoutingRule(family: family, priority: 32765, fwmark: 0x539, fwmask: 0xfff, table: "133")))
                #expect(ours.routes.contains(PolicyRouting.Route(family: family, type: "local", destination: "default", device: "lo", table: "133")))
            }
        }
    }

    /// Every route of every table, against `ip -j route show table all`: type, dst, dev and table.
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), arguments: setups)
    func everyRouteEqualsIpRouteShowTableAll(_ setup: Setup) throws {
        let ns = try Self.prepare(setup)
        for family in Family.allCases {
            let ours = try NetworkNamespace(path: ns.path).perform { try NetlinkRouting.routes(family: family, table: nil) }
            let ip = try Self.json(ns, ["ip", "-j", family == .ipv4 ? "-4" : "-6", "route", "show", "table", "all"]).map { r in
                PolicyRouting.Route(family: family, type: r["type"] as? String ?? "unicast", destination: r["dst"] as? String ?? "",
                                    device: r["dev"] as? String, table: r["table"].map { "\($0)" } ?? "main")
            }
            #expect(ours.map { $0.route }.sorted(by: Self.order) == ip.sorted(by: Self.order), "\(family)")
        }
    }

    /// Every interface address, against `ip -j addr show`.
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), arguments: setups)
    func addressesEqualIpAddr(_ setup: Setup) throws {
        let ns = try Self.prepare(setup)
        let ours = try NetworkNamespace(path: ns.path).perform { try NetlinkRouting.addresses() }
            .map { "\($0.interface) \($0.family == .ipv4 ? "inet" : "inet6") \($0.address)/\($0.prefixLength) scope \($0.scope)" }
        var ip: [String] = []
        for link in try Self.json(ns, ["ip", "-j", "addr", "show"]) {
            for a in link["addr_info"] as? [[String: Any]] ?? [] {
                ip.append("\(link["ifname"] ?? "?") \(a["family"] ?? "?") \(a["local"] ?? "?")/\(a["prefixlen"] ?? "?") scope \(a["scope"] ?? "?")")
            }
        }
        #expect(ours.sorted() == ip.sorted())
        let globalIPv6 = try !Self.json(ns, ["ip", "-j", "-6", "addr", "show", "scope", "global"])
            .allSatisfy { ($0["addr_info"] as? [[String: Any]] ?? []).isEmpty }
        #expect(RuntimeInputs.gather(pid: nil, namespacePath: ns.path).hasGlobalIPv6 == globalIPv6)
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func globalIPv6IsToldFromLinkLocal() throws {
        let ns = try TestNamespace()
        #expect(RuntimeInputs.gather(pid: nil, namespacePath: ns.path).hasGlobalIPv6 == false)
        try ns.mustRun(["ip", "link", "set", "lo", "up"])  // ::1, scope host
        try ns.mustRun(["ip", "link", "add", "nl0", "type", "veth", "peer", "name", "nl1"])
        try ns.mustRun(["ip", "-6", "addr", "add", "fe80::9/64", "dev", "nl0", "nodad"])
        #expect(RuntimeInputs.gather(pid: nil, namespacePath: ns.path).hasGlobalIPv6 == false)
        try ns.mustRun(["ip", "-6", "addr", "add", "2001:db8:9::1/64", "dev", "nl0", "nodad"])
        #expect(RuntimeInputs.gather(pid: nil, namespacePath: ns.path).hasGlobalIPv6 == true)
    }

    // MARK: nf_tables

    struct NftSetup: CustomTestStringConvertible, Sendable {
        var name: String
        var nftScript: String?
        var iptablesNft: (ipv4: String?, ipv6: String?)
        var testDescription: String { name }
    }

    static let nftSetups: [NftSetup] = [
        NftSetup(name: "no table", nftScript: nil, iptablesNft: (nil, nil)),
        NftSetup(name: "native istio-proxy-nat", nftScript: """
            table inet istio-proxy-nat {
                chain prerouting { type nat hook prerouting priority dstnat; policy accept; }
                chain output { type nat hook output priority -100; policy accept; }
                chain istio-redirect { }
            }
            table bridge other { }
            table netdev dormant { flags dormant; }
            """, iptablesNft: (nil, nil)),
        NftSetup(name: "iptables-nft nat and ip6 mangle", nftScript: nil, iptablesNft: (
            "*nat\n:ISTIO_REDIRECT - [0:0]\n-A OUTPUT -p tcp -j ISTIO_REDIRECT\n-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001\nCOMMIT\n",
            "*mangle\n-A PREROUTING -p tcp -j MARK --set-mark 7\nCOMMIT\n")),
        NftSetup(name: "both, plus an ip table iptables does not own", nftScript: """
            table inet istio-proxy-nat {
                chain output { type nat hook output priority -100; policy accept; }
            }
            table ip istio { }
            table arp a { }
            """, iptablesNft: ("*filter\n-A INPUT -p tcp --dport 9 -j DROP\nCOMMIT\n", nil)),
    ]

    func load(_ setup: NftSetup, into ns: TestNamespace) throws {
        if let script = setup.nftScript { try ns.mustRun(["nft", "-f", "-"], stdin: script) }
        if let v4 = setup.iptablesNft.ipv4 { try ns.mustRun(["iptables-nft-restore"], stdin: v4) }
        if let v6 = setup.iptablesNft.ipv6 { try ns.mustRun(["ip6tables-nft-restore"], stdin: v6) }
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), arguments: nftSetups)
    func nftablesInventoryEqualsNftListTables(_ setup: NftSetup) throws {
        let ns = try TestNamespace()
        try load(setup, into: ns)
        let inventory = try NftablesInventory.read(namespacePath: ns.path)
        let listed = try Self.nftJSON(ns, ["list", "tables"]).compactMap { $0["table"] as? [String: Any] }
        #expect(inventory.tables.map { "\($0.family.rawValue) \($0.name) \($0.handle ?? 0)" }.sorted()
                == listed.map { "\($0["family"] ?? "?") \($0["name"] ?? "?") \($0["handle"] ?? "?")" }.sorted())
        // NFTA_TABLE_USE counts the table's chains.
        let chains = try Self.nftJSON(ns, ["list", "chains"]).compactMap { $0["chain"] as? [String: Any] }
        for table in inventory.tables {
            let count = chains.filter { "\($0["family"] ?? "")" == table.family.rawValue && "\($0["table"] ?? "")" == table.name }.count
            #expect(Int(table.chainCount) == count, "\(table.family) \(table.name)")
        }
        if let dormant = inventory.tables.first(where: { $0.name == "dormant" }) { #expect(dormant.flags & 1 == 1) }

        #expect(inventory.iptablesNftTables(family: .ipv4)
                == listed.filter { "\($0["family"] ?? "")" == "ip" && ["filter", "nat", "mangle", "raw", "security"].contains("\($0["name"] ?? "")") }
                    .map { TableName("\($0["name"]!)") })
        #expect(inventory.holdsIptablesNftTables(family: .ipv4) == (setup.iptablesNft.ipv4 != nil))
        #expect(inventory.holdsIptablesNftTables(family: .ipv6) == (setup.iptablesNft.ipv6 != nil))
        // Native: every table iptables-nft does not own (an x_tables name in family ip or ip6).
        #expect(inventory.nativeTables.map { "\($0.family.rawValue) \($0.name)" }.sorted()
                == listed.filter { !(["ip", "ip6"].contains("\($0["family"] ?? "")") && ["filter", "nat", "mangle", "raw", "security"].contains("\($0["name"] ?? "")")) }
                    .map { "\($0["family"] ?? "?") \($0["name"] ?? "?")" }.sorted())
        #expect(try NftablesInventory.read(namespacePath: ns.path) == inventory, "read in the namespace by path")
    }

    // MARK: read-only

    /// Everything the netlink reads could conceivably change, as the tools print it.
    static func snapshot(_ ns: TestNamespace) throws -> [String] {
        try [["nft", "list", "ruleset"], ["ip", "-4", "rule"], ["ip", "-6", "rule"], ["ip", "-4", "route", "show", "table", "all"],
             ["ip", "-6", "route", "show", "table", "all"], ["ip", "addr"], ["ip", "link"]].map { try ns.mustRun($0) }
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func readsChangeNothing() throws {
        let ns = try Self.prepare(Self.setups.last!)
        try load(Self.nftSetups.last!, into: ns)
        let before = try Self.snapshot(ns)
        _ = try PolicyRoutingReader(namespacePath: ns.path).read(families: [.ipv4, .ipv6])
        _ = RuntimeInputs.gather(pid: nil, namespacePath: ns.path)
        _ = try NftablesInventory.read(namespacePath: ns.path)
        _ = try NetworkNamespace(path: ns.path).perform { try NetlinkRouting.routes(family: .ipv6, table: nil) }
        #expect(try Self.snapshot(ns) == before)
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func readingAnEmptyNamespaceCreatesNoNftablesTable() throws {
        let ns = try TestNamespace()
        let inventory = try NftablesInventory.read(namespacePath: ns.path)
        #expect(inventory.tables.isEmpty)
        _ = try PolicyRoutingReader(namespacePath: ns.path).read(families: [.ipv4, .ipv6])
        _ = RuntimeInputs.gather(pid: nil, namespacePath: ns.path)
        #expect(try ns.mustRun(["nft", "list", "tables"]).isEmpty)
        #expect(try ns.mustRun(["nft", "list", "ruleset"]).isEmpty)
    }

    /// The reads happen on the namespace thread: the test process's own namespace is neither read nor entered.
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func theCallerStaysInItsNamespace() throws {
        let ns = try Self.prepare(Self.setups[1])
        let here = NetworkNamespace.currentInode()
        let routing = try PolicyRoutingReader(namespacePath: ns.path).read(families: [.ipv4])
        #expect(routing.routes.contains { $0.table == "133" && $0.type == "local" })
        #expect(NetworkNamespace.currentInode() == here)
    }

    @Test func aMissingNamespaceIsANamespaceError() {
        #expect(throws: RuleReaderError.self) {
            try PolicyRoutingReader(namespacePath: "/run/netns/iptaudit-no-such-namespace").read(families: [.ipv4])
        }
        #expect(RuntimeInputs.gather(pid: nil, namespacePath: "/run/netns/iptaudit-no-such-namespace").hasGlobalIPv6 == nil)
    }

    // MARK: no child process

    /// `iptaudit verify --netns` on a TPROXY pod, legacy backend, under `strace -f -e trace=execve`: the only
    /// program executed is iptaudit itself — policy routing, runtime inputs and the nf_tables look-up spawn nothing.
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func verifyStartsNoChildProcess() throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/strace"), "strace is not installed (scripts/install-deps.sh installs it)")
        let ns = try Self.prepare(Self.setups[1])
        for (tool, family) in [("iptables-legacy-restore", "ipv4"), ("ip6tables-legacy-restore", "ipv6")] {
            try ns.mustRun([tool], stdin: try Fixtures.text("istio/master/live-save/sidecar-iptables/tproxy.\(family).save"))
        }
        let trace = NSTemporaryDirectory() + "/iptaudit-strace-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: trace) }
        guard FileManager.default.isExecutableFile(atPath: Binary.path) else {
            Issue.record("no executable at \(Binary.path): run `swift build` before `swift test`")
            return
        }
        let r = try runCommand(["strace", "-f", "-qq", "-e", "trace=execve", "-o", trace, Binary.path, "verify", "--netns", ns.path,
                                "--backend", "legacy", "--format", "json",
                                "--istio-args", "-p 15001 -z 15006 -u 1337 -g 1337 -m TPROXY -t 1337 -r 133 -b *"])
        #expect(r.status == 0 || r.status == 1, Comment(rawValue: r.stderr))
        let report = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        #expect(report != nil, Comment(rawValue: String(r.stdout.prefix(200))))
        let execs = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n").filter { $0.contains("execve(") }
        #expect(execs.count == 1, "\(execs.joined(separator: "\n"))")
        #expect(execs.first?.contains(Binary.path) == true)
        // The routing really was read, over netlink: the TPROXY rule and route were found.
        let text = r.stdout
        #expect(!text.contains("policy routing was not read"))
        #expect(!text.contains("has no `ip rule fwmark"))
        #expect(!text.contains("has no a `local default dev lo` route"))
    }

    // MARK: helpers

    static func json(_ ns: TestNamespace, _ argv: [String]) throws -> [[String: Any]] {
        let out = try ns.mustRun(argv).trimmingCharacters(in: .whitespacesAndNewlines)
        if out.isEmpty { return [] }
        return try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]], "\(argv): \(out.prefix(80))")
    }

    static func nftJSON(_ ns: TestNamespace, _ argv: [String]) throws -> [[String: Any]] {
        let out = try ns.mustRun(["nft", "-j"] + argv)
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        return doc["nftables"] as? [[String: Any]] ?? []
    }

    static func hex(_ text: String) -> UInt32? {
        text.hasPrefix("0x") ? UInt32(text.dropFirst(2), radix: 16) : UInt32(text)
    }

    static func order(_ a: PolicyRouting.Route, _ b: PolicyRouting.Route) -> Bool {
        "\(a.table) \(a.type) \(a.destination) \(a.device ?? "")" < "\(b.table) \(b.type) \(b.destination) \(b.device ?? "")"
    }
}
