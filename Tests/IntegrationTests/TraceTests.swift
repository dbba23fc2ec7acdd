import Foundation
import Testing
import TestSupport

/// `iptaudit trace` as a user runs it: argument errors, the JSON shape, and — in a namespace with Istio's rules
/// loaded — real connections landing exactly where the trace said.
@Suite(.serialized) struct TraceTests {
    static let basicSave = Fixtures.istio.appendingPathComponent("master/live-save/cni-sidecar-iptables/basic.ipv4.save").path
    static let dnsSave = Fixtures.istio.appendingPathComponent("master/live-save/cni-sidecar-iptables/dns.ipv4.save").path

    static func json(_ text: String) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    // MARK: usage

    static let usageErrors: [[String]] = [
        ["out", "tcp"],                                          // no destination
        ["sideways", "tcp", "10.0.0.1:80"],                      // direction
        ["out", "tcpx", "10.0.0.1:80"],                          // protocol
        ["out", "tcp", "10.0.0.1:99999"],                        // port out of range
        ["out", "tcp", "10.0.0.300:80"],                         // address
        ["out", "tcp", "fd00::1:80:x"],                          // IPv6 without brackets and a port
        ["out", "tcp", "[fd00::1:80"],                           // unclosed bracket
        ["out", "icmp", "10.0.0.1:80"],                          // icmp has no ports
        ["in", "tcp", "10.0.0.1:80", "--uid", "1000"],           // no owner on arriving packets
        ["in", "tcp", "10.0.0.1:80", "--oif", "eth0"],           // wrong interface side
        ["out", "tcp", "10.0.0.1:80", "--iif", "eth0"],
        ["out", "tcp", "10.0.0.1:80", "--uid", "-1"],
        ["out", "tcp", "10.0.0.1:80", "--ctstate", "SLEEPY"],
        ["out", "tcp", "10.0.0.1:80", "--mark", "0xZZ"],
        ["out", "tcp", "10.0.0.1:80", "--family", "ipv6"],       // family contradicts the address
        ["out", "tcp", "10.0.0.1:80", "--from", "fd00::2"],      // source of another family
        ["out", "tcp", "10.0.0.1:80", "--format", "xml"],
        ["out", "tcp", "10.0.0.1:80", "--input", "x", "--netns", "/run/netns/x"],
    ]

    @Test("argument errors exit 64 and name the problem", arguments: usageErrors)
    func usageError(_ args: [String]) throws {
        let r = try Binary.run(["trace"] + args + (args.contains("--input") ? [] : ["--input", Self.basicSave]))
        #expect(r.status == 64, "\(args): exit \(r.status)\n\(r.stderr)")
        #expect(!r.stderr.isEmpty)
        #expect(r.stdout.isEmpty)
    }

    @Test("unreadable input exits 2")
    func unreadable() throws {
        let r = try Binary.run(["trace", "out", "tcp", "10.0.0.1:80", "--input", "/nonexistent/rules.save"])
        #expect(r.status == 2, "\(r.stderr)")
    }

    // MARK: output

    @Test("JSON: verdict {action, port}, steps, and one entry per outcome with its condition")
    func jsonShape() throws {
        let r = try Binary.run(["trace", "out", "tcp", "10.0.0.1:9080", "--input", Self.basicSave, "--format", "json"])
        #expect(r.status == 0, "\(r.stderr)")
        let doc = try Self.json(r.stdout)
        #expect(doc["schemaVersion"] as? Int == 1)
        let outcomes = try #require(doc["outcomes"] as? [[String: Any]])
        // Without --uid/--gid: the proxy's UID, the proxy's GID, everyone else.
        #expect(outcomes.count == 3)
        let actions = outcomes.compactMap { ($0["verdict"] as? [String: Any])?["action"] as? String }
        #expect(Set(actions) == ["REDIRECT", "ACCEPT"])
        for o in outcomes {
            #expect(o["condition"] is [String])
            #expect((o["steps"] as? [[String: Any]])?.isEmpty == false)
        }
        let redirect = try #require(outcomes.first { ($0["verdict"] as? [String: Any])?["action"] as? String == "REDIRECT" })
        #expect((redirect["verdict"] as? [String: Any])?["port"] as? Int == 15001)
        #expect(redirect["condition"] as? [String] == ["uid is not 1337", "gid is not 1337"])
        // The top-level verdict and steps are the first outcome's.
        let verdict = try #require(doc["verdict"] as? [String: Any])
        #expect(verdict["action"] as? String == (outcomes[0]["verdict"] as? [String: Any])?["action"] as? String)
        let steps = try #require(doc["steps"] as? [[String: Any]])
        #expect(steps.count == (outcomes[0]["steps"] as? [[String: Any]])?.count)
        let rules = steps.filter { $0["rule"] != nil }
        #expect(rules.allSatisfy { $0["matched"] is Bool && $0["ruleText"] is String && $0["reason"] is String })
    }

    @Test("a fully given packet has one outcome; the text names every rule, why it failed, and where it lands")
    func textSingleOutcome() throws {
        let r = try Binary.run(["trace", "out", "tcp", "10.0.0.1:9080", "--uid", "1000", "--gid", "1000", "--input", Self.basicSave])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stdout.contains("outcomes:"))
        #expect(r.stdout.contains("-A ISTIO_OUTPUT -p tcp -m tcp --dport 15020 -j RETURN"))
        #expect(r.stdout.contains("not matched: dport 9080 ≠ 15020"))
        #expect(r.stdout.contains("uid 1000 is not 1337"))
        #expect(r.stdout.contains("ends up: Envoy outbound listener 15001"))
    }

    @Test("inbound to the app port lands on 15006; DNS over UDP on 15053; IPv6 destinations in brackets")
    func otherDirections() throws {
        let inbound = try Binary.run(["trace", "in", "tcp", "10.1.2.3:8080", "--from", "10.9.9.9", "--iif", "eth0",
                                      "--input", Self.basicSave, "--format", "json"])
        #expect(inbound.status == 0, "\(inbound.stderr)")
        let v = try #require(try Self.json(inbound.stdout)["verdict"] as? [String: Any])
        #expect(v["action"] as? String == "REDIRECT" && v["port"] as? Int == 15006)
        #expect(v["summary"] as? String == "Envoy inbound listener 15006")

        let dns = try Binary.run(["trace", "out", "udp", "10.96.0.10:53", "--uid", "1000", "--gid", "1000",
                                  "--input", Self.dnsSave, "--format", "json"])
        #expect(dns.status == 0, "\(dns.stderr)")
        let dv = try #require(try Self.json(dns.stdout)["verdict"] as? [String: Any])
        #expect(dv["action"] as? String == "REDIRECT" && dv["port"] as? Int == 15053, "\(dns.stdout)")

        // No IPv6 rules in an IPv4 dump: the packet passes untouched, and stderr says why.
        let v6 = try Binary.run(["trace", "out", "tcp", "[fd00::a]:9080", "--input", Self.basicSave, "--family", "ipv6", "--format", "json"])
        #expect(v6.status == 0, "\(v6.stderr)")
        #expect((try Self.json(v6.stdout)["verdict"] as? [String: Any])?["action"] as? String == "ACCEPT")
    }

    // MARK: real kernel

    struct Connection: CustomStringConvertible {
        var name: String
        var uid: UInt32
        var gid: UInt32
        var proto: String
        var host: String
        var port: UInt16
        /// The pod's own address is routed over lo. The trace is not told: on a live read it knows the namespace's
        /// addresses. Only the source is given (over lo a socket's source is that address, not 127.0.0.6).
        var toItself = false
        var description: String { "\(name): \(proto) \(host):\(port) as uid \(uid) gid \(gid)" }
    }

    /// A namespace with a golden loaded and a routed `eth0` (docs/capture-model.md §15: without a route, connect() fails
    /// before nat OUTPUT sees the packet). The veth's peer stays in the namespace; nothing answers on it.
    func routedNamespace(_ golden: String) throws -> TestNamespace {
        let ns = try TestNamespace()
        try loadGolden(golden, family: 4, backend: "legacy", into: ns)
        for cmd in [["ip", "link", "set", "lo", "up"],
                    ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "veth1"],
                    ["ip", "addr", "add", "10.0.0.1/24", "dev", "eth0"],
                    ["ip", "link", "set", "eth0", "up"],
                    ["ip", "link", "set", "veth1", "up"],
                    ["ip", "route", "add", "default", "via", "10.0.0.254", "dev", "eth0"]] {
            try ns.mustRun(cmd)
        }
        return ns
    }

    /// Where each connection really lands, by the listeners' SO_ORIGINAL_DST.
    func connect(_ connections: [Connection], in ns: TestNamespace) throws -> [String: (landed: Int?, original: String?)] {
        let landings = try ConnectionProbe.run(connections.map {
            ConnectionProbe.Connection(name: $0.name, uid: $0.uid, gid: $0.gid, proto: $0.proto, host: $0.host, port: $0.port)
        }, in: ns)
        return landings.mapValues { ($0.landed, $0.original) }
    }

    /// What `iptaudit trace --netns` says for a connection: the verdict's action and port. The source port is
    /// left unknown, so the raw conntrack-zone rules may split the walk; every outcome must agree on the verdict.
    func traced(_ c: Connection, ns: TestNamespace) throws -> (action: String, port: Int?) {
        let r = try Binary.run(["trace", "out", c.proto, "\(c.host):\(c.port)", "--uid", "\(c.uid)", "--gid", "\(c.gid)",
                                "--netns", ns.path, "--format", "json"]
                                + (c.toItself ? ["--from", c.host] : []))
        try #require(r.status == 0, "trace \(c): \(r.stderr)")
        let doc = try Self.json(r.stdout)
        let outcomes = try #require(doc["outcomes"] as? [[String: Any]])
        let verdicts = Set(outcomes.compactMap { o -> String? in
            guard let v = o["verdict"] as? [String: Any], let a = v["action"] as? String else { return nil }
            return a + ((v["port"] as? Int).map { " \($0)" } ?? "")
        })
        #expect(verdicts.count == 1, "\(c): the given fields decide the verdict, yet the trace has \(verdicts)")
        let v = try #require(doc["verdict"] as? [String: Any])
        return (try #require(v["action"] as? String), v["port"] as? Int)
    }

    func expectTraceMatchesKernel(_ golden: String, _ connections: [Connection], expected: [String: Int?]) throws {
        let ns = try routedNamespace(golden)
        let real = try connect(connections, in: ns)
        for c in connections {
            let t = try traced(c, ns: ns)
            let landed = try #require(real[c.name], "\(c): no report from the probe").landed
            // The trace says where it goes; the kernel agrees.
            if let port = t.port, t.action == "REDIRECT" {
                #expect(landed == port, "\(c): trace says REDIRECT \(port), the connection landed on \(landed.map(String.init) ?? "nothing")")
                if c.proto == "tcp" { #expect(real[c.name]?.original == "\(c.host):\(c.port)", "\(c): original destination") }
            } else {
                #expect(t.action == "ACCEPT", "\(c): \(t)")
                #expect(landed == nil, "\(c): trace says not captured, the connection landed on \(landed.map(String.init) ?? "-")")
            }
            // And both agree with the model (§15).
            #expect(landed == expected[c.name] ?? nil, "\(c): landed on \(landed.map(String.init) ?? "nothing")")
        }
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), .timeLimit(.minutes(2)))
    func connectionsLandWhereTheTraceSaid() throws {
        let connections = [
            Connection(name: "app", uid: 1000, gid: 1000, proto: "tcp", host: "1.2.3.4", port: 80),
            Connection(name: "proxy-uid", uid: 1337, gid: 1337, proto: "tcp", host: "1.2.3.4", port: 80),
            Connection(name: "proxy-gid", uid: 0, gid: 1337, proto: "tcp", host: "1.2.3.4", port: 80),
            Connection(name: "excluded-15020", uid: 1000, gid: 1000, proto: "tcp", host: "1.2.3.4", port: 15020),
            Connection(name: "app-udp", uid: 1000, gid: 1000, proto: "udp", host: "1.2.3.4", port: 53),
            // The proxy calling its own pod goes through the inbound listener; the app calling itself does not.
            Connection(name: "self-call", uid: 1337, gid: 1337, proto: "tcp", host: "10.0.0.1", port: 9080, toItself: true),
            Connection(name: "app-to-self", uid: 1000, gid: 1000, proto: "tcp", host: "10.0.0.1", port: 9080, toItself: true),
        ]
        try expectTraceMatchesKernel("master/cni-sidecar-iptables/basic.txt.golden", connections,
                                     expected: ["app": 15001, "proxy-uid": nil, "proxy-gid": nil, "excluded-15020": nil, "app-udp": nil,
                                                "self-call": 15006, "app-to-self": nil])
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), .timeLimit(.minutes(2)))
    func dnsLandsWhereTheTraceSaid() throws {
        // The CNI DNS case captures every port-53 query (capture-all).
        let connections = [
            Connection(name: "app-dns", uid: 1000, gid: 1000, proto: "udp", host: "10.96.0.10", port: 53),
            Connection(name: "proxy-dns", uid: 1337, gid: 1337, proto: "udp", host: "10.96.0.10", port: 53),
            Connection(name: "app-udp", uid: 1000, gid: 1000, proto: "udp", host: "1.2.3.4", port: 9999),
        ]
        try expectTraceMatchesKernel("master/cni-sidecar-iptables/dns.txt.golden", connections,
                                     expected: ["app-dns": 15053, "proxy-dns": nil, "app-udp": nil])
    }
}

extension TraceTests {
    /// A wildcard interface match splits the outcomes by interface class; each condition says the class
    /// (`eth+`, another name), not the example name the walk used for it (`eth1`, `net1`), which would read as
    /// if only that one interface went the other way.
    @Test func interfaceConditionsNameTheirClassNotAnExampleName() throws {
        var text = try String(contentsOfFile: Fixtures.repositoryPath("examples/healthy.save"), encoding: .utf8)
        let first = try #require(text.range(of: "-A ISTIO_OUTPUT "))
        text.insert(contentsOf: "-A ISTIO_OUTPUT -o eth+ -p tcp -m multiport --dports 9000:9100 -j RETURN\n", at: first.lowerBound)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("wildcard-\(UUID().uuidString).save")
        try text.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let r = try Binary.run(["trace", "out", "tcp", "10.0.0.2:9080", "--uid", "1000", "--gid", "1000", "--input", file.path, "--color", "never"])
        #expect(r.status == 0, "\(r.stderr)")
        let conditions = r.stdout.split(separator: "\n").filter { $0.hasPrefix("  1. when") || $0.hasPrefix("  2. when") }
        #expect(conditions == [
            "  1. when output interface is another name (not eth0, lo, eth+) → REDIRECT 15001: Envoy outbound listener 15001",
            "  2. when output interface is one of eth0, eth+ (other than eth0) → ACCEPT: 10.0.0.2:9080 directly — not through Envoy",
        ], "\(r.stdout)")
        // Each condition holds: an eth interface is returned, another one captured.
        for (oif, captured) in [("eth7", false), ("net2", true)] {
            let one = try Binary.run(["trace", "out", "tcp", "10.0.0.2:9080", "--uid", "1000", "--gid", "1000", "--oif", oif, "--input", file.path, "-o", "json"])
            let verdict = (try Self.json(one.stdout)["verdict"] as? [String: Any])?["action"] as? String
            #expect(verdict == (captured ? "REDIRECT" : "ACCEPT"), "\(oif): \(one.stdout)")
        }
    }
}
