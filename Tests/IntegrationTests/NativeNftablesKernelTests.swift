import CaptureVerifier
import Foundation
import IstioCapture
import NetfilterModel
import RuleReaders
import Testing
import TestSupport

/// The hook model and native nftables verification against the kernel: Istio's native tables for the injector's
/// defaults (`iptaudit expect --format nft`) loaded into a routed namespace, another component's chain beside
/// them, and real connections (SO_ORIGINAL_DST) compared with what `trace` and `verify` say.
@Suite(.serialized) struct NativeNftablesKernelTests {
    /// `expect --format nft`: what Istio's `--native-nftables` writes for the injector's defaults (or `args`).
    static func podRules(_ args: String? = nil) throws -> String {
        let r = try Binary.run(["expect", "--format", "nft"] + (args.map { ["--istio-args", $0] } ?? []))
        try #require(r.status == 0, "\(r.stderr)")
        return r.stdout
    }

    /// A routed namespace (lo up, eth0 with a default route) holding `rules`, then `extra` (another component's).
    func namespace(_ rules: String, extra: [String] = []) throws -> TestNamespace {
        let ns = try TestNamespace()
        for cmd in [["ip", "link", "set", "lo", "up"],
                    ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "veth1"],
                    ["ip", "addr", "add", "10.0.0.1/24", "dev", "eth0"],
                    ["ip", "link", "set", "eth0", "up"],
                    ["ip", "link", "set", "veth1", "up"],
                    ["ip", "route", "add", "default", "via", "10.0.0.254", "dev", "eth0"]] {
            try ns.mustRun(cmd)
        }
        try ns.mustRun(["nft", "-f", "-"], stdin: rules)
        for e in extra {
            if e.hasPrefix("iptables") {
                try ns.mustRun(e.split(separator: " ").map(String.init))
            } else {
                try ns.mustRun(["nft", "-f", "-"], stdin: e)
            }
        }
        return ns
    }

    static let app = TraceTests.Connection(name: "app", uid: 1000, gid: 1000, proto: "tcp", host: "1.2.3.4", port: 80)
    static let proxy = TraceTests.Connection(name: "proxy", uid: 1337, gid: 1337, proto: "tcp", host: "1.2.3.4", port: 80)

    /// Where the app's and the proxy's connections land in the kernel, what `trace` says, and verify's errors.
    func observe(_ ns: TestNamespace) throws -> (landed: [String: Int?], traced: [String: String], errors: [[String: Any]]) {
        let probe = TraceTests()
        let real = try probe.connect([Self.app, Self.proxy], in: ns)
        var traced: [String: String] = [:]
        for c in [Self.app, Self.proxy] {
            let t = try probe.traced(c, ns: ns)
            traced[c.name] = t.action + (t.port.map { " \($0)" } ?? "")
        }
        let v = try Binary.run(["verify", "--netns", ns.path, "--no-ipv6", "--format", "json"])
        let doc = try JSONSerialization.jsonObject(with: Data(v.stdout.utf8)) as? [String: Any] ?? [:]
        let errors = (doc["findings"] as? [[String: Any]] ?? []).filter { $0["severity"] as? String == "error" }
        return (real.mapValues { $0.landed }, traced, errors)
    }

    static let enabled = TestNamespace.shouldRun

    @Test(.enabled(if: enabled, netnsSkip), .timeLimit(.minutes(2)))
    func expectLoadsAsNftListsIt() throws {
        let rules = try Self.podRules()
        let ns = try namespace(rules)
        #expect(try ns.mustRun(["nft", "list", "ruleset"]) == rules)
        let v = try Binary.run(["verify", "--netns", ns.path, "--no-ipv6"])
        #expect(v.status == 0, "\(v.stdout)\n\(v.stderr)")
        #expect(v.stdout.contains("native nftables"), "\(v.stdout)")
    }

    @Test("Istio's rules alone: the app lands on 15001, the proxy goes direct; trace and verify agree",
          .enabled(if: enabled, netnsSkip), .timeLimit(.minutes(2)))
    func baseline() throws {
        let ns = try namespace(try Self.podRules())
        let o = try observe(ns)
        #expect(o.landed["app"] == 15001 && o.traced["app"] == "REDIRECT 15001")
        #expect(o.landed["proxy"] == .some(nil) && o.traced["proxy"] == "ACCEPT")
        #expect(o.errors.isEmpty, "\(o.errors)")
        // Each proxy identity alone is exempt (the owner-gap mutations below make these land on 15001).
        let alone = try TraceTests().connect([
            TraceTests.Connection(name: "uid-only", uid: 1337, gid: 1000, proto: "tcp", host: "1.2.3.4", port: 80),
            TraceTests.Connection(name: "gid-only", uid: 1000, gid: 1337, proto: "tcp", host: "1.2.3.4", port: 80),
        ], in: ns)
        #expect(alone["uid-only"]?.landed == .some(nil) && alone["gid-only"]?.landed == .some(nil), "\(alone)")
    }

    @Test("accept in another table's chain at -150 (filter or nat) ends only that chain: Istio's nat chain still redirects",
          .enabled(if: enabled, netnsSkip), .timeLimit(.minutes(2)))
    func acceptEndsOnlyItsChain() throws {
        // A filter chain, and a nat chain: a nat chain that accepts sets up no binding, so the next nat chain runs.
        for type in ["filter", "nat"] {
            let other = "table inet other {\n\tchain out {\n\t\ttype \(type) hook output priority -150; policy accept;\n\t\tmeta l4proto tcp accept\n\t}\n}\n"
            let o = try observe(try namespace(try Self.podRules(), extra: [other]))
            #expect(o.landed["app"] == 15001 && o.traced["app"] == "REDIRECT 15001", "\(type): \(o)")
            #expect(o.errors.isEmpty, "\(type): \(o.errors)")
        }
    }

    @Test("drop in another table's chain at -150 ends everything: nothing lands, trace says DROP",
          .enabled(if: enabled, netnsSkip), .timeLimit(.minutes(2)))
    func dropEndsEverything() throws {
        let other = "table inet other {\n\tchain out {\n\t\ttype filter hook output priority -150; policy accept;\n\t\ttcp dport 80 drop\n\t}\n}\n"
        let o = try observe(try namespace(try Self.podRules(), extra: [other]))
        #expect(o.landed["app"] == .some(nil) && o.traced["app"] == "DROP", "\(o)")
    }

    @Test("a nat chain of another table at -150 that redirects binds the connection first: a foreign-rule error",
          .enabled(if: enabled, netnsSkip), .timeLimit(.minutes(2)))
    func foreignNatFirst() throws {
        let other = "table inet other {\n\tchain out {\n\t\ttype nat hook output priority -150; policy accept;\n\t\tmeta skuid 1000 meta l4proto tcp redirect to :15006\n\t}\n}\n"
        let o = try observe(try namespace(try Self.podRules(), extra: [other]))
        #expect(o.landed["app"] == 15006 && o.traced["app"] == "REDIRECT 15006", "\(o)")
        let foreign = o.errors.filter { $0["kind"] as? String == "foreign-rule" || $0["kind"] as? String == "wrong-port" }
        #expect(!foreign.isEmpty && foreign.allSatisfy { ($0["table"] as? String) == "inet other" }, "\(o.errors)")
    }

    @Test("a legacy nat REDIRECT at Istio's priority (-100), registered after Istio's table, runs first: reported",
          .enabled(if: enabled, netnsSkip), .timeLimit(.minutes(2)))
    func legacyNatAtEqualPriority() throws {
        let o = try observe(try namespace(try Self.podRules(),
                                          extra: ["iptables-legacy -t nat -A OUTPUT -p tcp -m owner --uid-owner 1000 -j REDIRECT --to-ports 15006"]))
        #expect(o.landed["app"] == 15006 && o.traced["app"] == "REDIRECT 15006", "\(o)")
        #expect(o.errors.contains { ($0["table"] as? String) == "nat" && ($0["chain"] as? String) == "OUTPUT" }, "\(o.errors)")
    }

    struct Mutation: CustomTestStringConvertible, Sendable {
        var name: String
        var edit: @Sendable (String) -> String
        /// Error kinds verify must report; empty for a harmless rewrite.
        var kinds: Set<String>
        /// Where the witness's connection lands in the kernel after the edit (by default the app's, UID/GID 1000).
        var appLands: Int?
        /// The connection's owner: the finding's witness (a proxy identity for the owner gaps).
        var uid: UInt32 = 1000
        var gid: UInt32 = 1000
        /// istio-iptables arguments of the base (nil: the injector's defaults); verify is told the same.
        var args: String? = nil
        /// The app connects here (an excluded range needs a destination inside it).
        var host = "1.2.3.4"
        var testDescription: String { name }
    }

    static func replacing(_ old: String, _ new: String) -> @Sendable (String) -> String {
        { text in
            precondition(text.contains(old), "no \(old)")
            return text.replacingOccurrences(of: old, with: new)
        }
    }

    static let excluding = "-p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x 10.96.0.0/12 -b '*' -d 15090,15021,15020"

    static let mutations: [Mutation] = [
        Mutation(name: "outbound redirect removed", edit: replacing("\t\tmeta l4proto tcp counter packets 0 bytes 0 redirect to :15001\n", ""),
                 kinds: ["missing-redirect"], appLands: nil),
        Mutation(name: "15001 → 15002", edit: replacing("redirect to :15001", "redirect to :15002"), kinds: ["wrong-port"], appLands: nil),
        // The proxy's UID with another group: only the UID rules exempt it, so Envoy would capture itself.
        Mutation(name: "skuid 1337 return removed", edit: replacing("\t\tmeta skuid 1337 counter packets 0 bytes 0 return\n", ""),
                 kinds: ["owner-match-gap"], appLands: 15001, uid: 1337, gid: 1000),
        Mutation(name: "skuid 1337 → 1338", edit: replacing("meta skuid 1337", "meta skuid 1338"), kinds: ["owner-match-gap"], appLands: 15001,
                 uid: 1337, gid: 1000),
        Mutation(name: "istio-output jump removed", edit: replacing("\t\tcounter packets 0 bytes 0 jump istio-output\n", ""),
                 kinds: ["missing-redirect"], appLands: nil),
        Mutation(name: "an early accept in istio-output", edit: replacing("\tchain istio-output {\n", "\tchain istio-output {\n\t\tmeta l4proto tcp accept\n"),
                 kinds: ["missing-redirect"], appLands: nil),
        Mutation(name: "skgid 1337 return removed", edit: replacing("\t\tmeta skgid 1337 counter packets 0 bytes 0 return\n", ""),
                 kinds: ["owner-match-gap"], appLands: 15001, uid: 1000, gid: 1337),
        Mutation(name: "the -x exclusion moved below the catch-all",
                 edit: { text in
                     let exclusion = "\t\tip daddr 10.96.0.0/12 counter packets 0 bytes 0 return\n"
                     let catchAll = "\t\tcounter packets 0 bytes 0 jump istio-redirect\n"
                     precondition(text.contains(exclusion + catchAll))
                     return text.replacingOccurrences(of: exclusion + catchAll, with: catchAll + exclusion)
                 },
                 kinds: ["exclusion-leak"], appLands: 15001, args: excluding, host: "10.96.0.10"),
        Mutation(name: "two independent RETURNs swapped (harmless)",
                 edit: { text in
                     let a = "\t\tip daddr 127.0.0.1 counter packets 0 bytes 0 return\n"
                     let b = "\t\tip daddr 10.96.0.0/12 counter packets 0 bytes 0 return\n"
                     precondition(text.contains(a + b))
                     return text.replacingOccurrences(of: a + b, with: b + a)
                 },
                 kinds: [], appLands: nil, args: excluding, host: "10.96.0.10"),
        Mutation(name: "counters and a comment (harmless)", edit: replacing("counter packets 0 bytes 0 jump istio-redirect",
                                                                            "counter packets 7 bytes 420 jump istio-redirect comment \"catch-all\""),
                 kinds: [], appLands: 15001),
    ]

    @Test("each break of the native rules is caught with its kind; the kernel agrees where the app lands",
          .enabled(if: enabled, netnsSkip), .timeLimit(.minutes(3)), arguments: mutations)
    func mutation(_ m: Mutation) throws {
        let ns = try namespace(m.edit(try Self.podRules(m.args)))
        let probe = TraceTests()
        var app = Self.app
        app.host = m.host
        app.uid = m.uid
        app.gid = m.gid
        let real = try probe.connect([app], in: ns)
        #expect(real["app"]?.landed == m.appLands, "\(m.name): landed on \(String(describing: real["app"]))")
        let v = try Binary.run(["verify", "--netns", ns.path, "--no-ipv6", "--format", "json"] + (m.args.map { ["--istio-args", $0] } ?? []))
        let doc = try JSONSerialization.jsonObject(with: Data(v.stdout.utf8)) as? [String: Any] ?? [:]
        let errors = (doc["findings"] as? [[String: Any]] ?? []).filter { $0["severity"] as? String == "error" }
        let kinds = Set(errors.compactMap { $0["kind"] as? String })
        #expect(kinds.isSuperset(of: m.kinds) && (m.kinds.isEmpty ? errors.isEmpty : true), "\(m.name): \(kinds)\n\(v.stdout)")
        #expect(v.status == (m.kinds.isEmpty ? 0 : 1))
    }
}

extension NativeNftablesKernelTests {
    @Test("capture carries native tables: verify --bundle equals verify --netns, show --format nft equals nft list ruleset",
          .enabled(if: enabled, netnsSkip), .timeLimit(.minutes(2)))
    func bundleCarriesNativeTables() throws {
        let other = "table inet other {\n\tchain out {\n\t\ttype nat hook output priority -150; policy accept;\n\t\tmeta skuid 1000 meta l4proto tcp redirect to :15006\n\t}\n}\n"
        let ns = try namespace(try Self.podRules(), extra: [other])
        let bundle = FileManager.default.temporaryDirectory.appendingPathComponent("iptaudit-native-\(getpid()).json").path
        defer { try? FileManager.default.removeItem(atPath: bundle) }
        let c = try Binary.run(["capture", "-w", bundle, "--netns", ns.path])
        #expect(c.status == 0 && c.stderr.contains("native nftables: inet istio-proxy-nat, inet other"), "\(c.stderr)")
        let live = try Binary.run(["verify", "--netns", ns.path, "--no-ipv6", "--format", "json"])
        let offline = try Binary.run(["verify", "--bundle", bundle, "--no-ipv6", "--format", "json"])
        func findings(_ r: CommandResult) throws -> String {
            let doc = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
            return String(decoding: try JSONSerialization.data(withJSONObject: doc["findings"] ?? [], options: [.sortedKeys]), as: UTF8.self)
        }
        #expect(live.status == 1 && offline.status == 1)
        #expect(try findings(offline) == findings(live))
        let shown = try Binary.run(["show", "--bundle", bundle, "--format", "nft"])
        #expect(shown.stdout == (try ns.mustRun(["nft", "list", "ruleset"])))
    }
}
