import Foundation
import Testing
import TestSupport

/// The `iptaudit` executable built next to the tests (`swift build` before `swift test`).
enum Binary {
    static let path: String = {
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = testBinary.deletingLastPathComponent()
        if dir.lastPathComponent.hasSuffix(".xctest") || dir.path.contains(".xctest/") {
            while dir.path.contains(".xctest") { dir = dir.deletingLastPathComponent() }
        }
        let candidate = dir.appendingPathComponent("iptaudit").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        return Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug/iptaudit").path
    }()

    static func run(_ args: [String], stdin: String? = nil) throws -> CommandResult {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestNamespaceError.commandFailed("iptaudit", -1, "no executable at \(path): run `swift build` before `swift test`")
        }
        return try runCommand([path] + args, stdin: stdin)
    }
}

/// Loads a golden into a fresh namespace with the corpus loader.
func loadGolden(_ relative: String, family: Int, backend: String, into ns: TestNamespace) throws {
    try ns.mustRun(["sh", Fixtures.loadGolden.path, Fixtures.istio.appendingPathComponent(relative).path, "\(family)", backend])
}

@Suite(.serialized) struct CLITests {
    static let basic = "master/cni-sidecar-iptables/basic.txt.golden"

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func showSaveOfANamespaceEqualsIptablesLegacySave() throws {
        let ns = try TestNamespace()
        try loadGolden(Self.basic, family: 4, backend: "legacy", into: ns)
        let ours = try Binary.run(["show", "--netns", ns.path, "--format", "save", "--table", "nat", "--family", "ipv4"])
        #expect(ours.status == 0, "\(ours.stderr)")
        #expect(ours.stdout.contains("legacy x_tables"), "save output names the backend it read")
        let theirs = try ns.mustRun(["iptables-legacy-save", "-t", "nat"])
        #expect(withoutSaveComments(ours.stdout) == withoutSaveComments(theirs))
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func autoBackendFindsRulesInNfTablesAndSaysSo() throws {
        let ns = try TestNamespace()
        try loadGolden(Self.basic, family: 4, backend: "nft", into: ns)
        let ours = try Binary.run(["show", "--netns", ns.path, "--format", "save", "--family", "ipv4"])
        #expect(ours.status == 0, "\(ours.stderr)")
        #expect(ours.stdout.contains("nf_tables"))
        let theirs = try ns.mustRun(["iptables-nft-save", "-t", "nat"])
        #expect(withoutSaveComments(ours.stdout) == withoutSaveComments(theirs))
        // The legacy side was only looked at, never created.
        #expect(try ns.mustRun(["cat", "/proc/net/ip_tables_names"]).isEmpty)
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func readingAnEmptyNamespaceCreatesNoTable() throws {
        let ns = try TestNamespace()
        let r = try Binary.run(["show", "--netns", ns.path, "--format", "save"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try ns.mustRun(["cat", "/proc/net/ip_tables_names"]).isEmpty)
        #expect(try ns.mustRun(["cat", "/proc/net/ip6_tables_names"]).isEmpty)
        #expect(try ns.mustRun(["iptables-nft-save"]).isEmpty)
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func withoutCapabilitiesExitsTwoNamingCapNetAdmin() throws {
        let ns = try TestNamespace()
        try loadGolden(Self.basic, family: 4, backend: "legacy", into: ns)
        // As the istio-proxy container runs: UID/GID 1337, no capabilities.
        let r = try ns.run(["setpriv", "--reuid=1337", "--regid=1337", "--clear-groups", "--inh-caps=-all",
                            "--bounding-set=-all", Binary.path, "show", "--backend", "legacy"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("CAP_NET_ADMIN"))
        #expect(r.stderr.contains("kubectl debug") && r.stderr.contains("--pid"))
        #expect(!r.stderr.contains("you must be root"))
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func pidReadsTheNamespaceAProcessHolds() throws {
        let ns = try TestNamespace()
        try loadGolden(Self.basic, family: 4, backend: "legacy", into: ns)
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holder.arguments = ["ip", "netns", "exec", ns.name, "sleep", "60"]
        try holder.run()
        defer { holder.terminate() }
        // `ip netns exec` execs sleep in place, so the child's pid is the holder's.
        var pid = holder.processIdentifier
        for _ in 0..<50 {
            if let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe"), link.hasSuffix("sleep") { break }
            usleep(20_000)
        }
        pid = holder.processIdentifier
        let r = try Binary.run(["show", "--pid", "\(pid)", "--format", "save", "--table", "nat", "--family", "ipv4"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(withoutSaveComments(r.stdout) == withoutSaveComments(try ns.mustRun(["iptables-legacy-save", "-t", "nat"])))
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func nativeNftablesTablesAreShownAsNftListsThem() throws {
        let ns = try TestNamespace()
        try ns.mustRun(["nft", "-f", Fixtures.istio.appendingPathComponent("master/sidecar-nftables/dns-uid-gid.golden").path])
        let nft = try Binary.run(["show", "--netns", ns.path, "--format", "nft"])
        #expect(nft.status == 0, "\(nft.stderr)")
        #expect(nft.stdout == (try ns.mustRun(["nft", "list", "ruleset"])))
        let list = try Binary.run(["show", "--netns", ns.path])
        #expect(list.status == 0 && list.stdout.contains("# native nftables table inet istio-proxy-nat (IPv4), as iptaudit normalizes it; no iptables -L lists it\n"), "\(list.stdout)")
        let save = try Binary.run(["show", "--netns", ns.path, "--format", "save"])
        #expect(save.stdout.contains("# native nftables tables (inet istio-proxy-nat, inet istio-proxy-raw)"), "\(save.stdout)")
        // JSON: the normalized table says it is native; base chains carry their hook, rules their handle and nft text.
        let json = try Binary.run(["show", "--netns", ns.path, "--format", "json"])
        let doc = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any] ?? [:]
        let nat = try #require((doc["tables"] as? [[String: Any]])?.first { $0["table"] as? String == "inet istio-proxy-nat" && $0["family"] as? String == "ipv4" })
        #expect(nat["nftFamily"] as? String == "inet")
        let output = try #require((nat["chains"] as? [[String: Any]])?.first { $0["name"] as? String == "output" })
        let hook = output["hook"] as? [String: Any]
        #expect(hook?["hook"] as? String == "output" && hook?["priority"] as? Int == -100 && hook?["type"] as? String == "nat", "\(output)")
        let rule = try #require((output["rules"] as? [[String: Any]])?.first)
        #expect(rule["handle"] as? Int != nil && (rule["nft"] as? String)?.contains("jump istio-output") == true, "\(rule)")
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func verifyingANamespaceWithoutIstioSaysSoFirst() throws {
        let ns = try TestNamespace()
        let r = try Binary.run(["verify", "--netns", ns.path, "--no-ipv6", "--format", "json"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("no Istio chain (ISTIO_*) in any table"))
        let kinds = ((try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["findings"] as? [[String: Any]] ?? [])
            .filter { $0["severity"] as? String == "error" }.compactMap { $0["kind"] as? String }
        #expect(kinds.contains("missing-redirect"))
    }

    @Test func malformedInputExitsTwoWithFileAndLine() throws {
        let file = NSTemporaryDirectory() + "/iptaudit-bad-\(getpid()).save"
        try "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -s 10.0.0.300 -j RETURN\nCOMMIT\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let r = try Binary.run(["show", "--input", file])
        #expect(r.status == 2)
        #expect(r.stderr.contains("\(file):3:"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count <= 2)
    }

    @Test func stdinInputIsRead() throws {
        let text = try Fixtures.text("istio/master/live-save/cni-sidecar-iptables/basic.ipv4.save")
        let r = try Binary.run(["show", "--input", "-", "--format", "save"], stdin: text)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(withoutSaveComments(r.stdout) == withoutSaveComments(text))
    }

    @Test(arguments: [["show", "--input", "a", "--netns", "/run/netns/x"], ["show", "--format", "xml"], ["show", "--pid", "-3"]])
    func usageErrorsExit64(_ args: [String]) throws {
        #expect(try Binary.run(args).status == 64)
    }
}
