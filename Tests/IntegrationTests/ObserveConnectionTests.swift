import Foundation
import Testing
import TestSupport

/// `iptaudit observe` on a real kernel with real connections, run as the istio-proxy container runs it: UID 1337,
/// no capabilities (setpriv). A pod namespace with Istio's rules (from `iptaudit expect`), a stand-in Envoy (UID
/// 1337) on 15001/15006 that holds outbound connections and forwards inbound ones from 127.0.0.6 / ::6, an
/// application server and client (UID 1000), and a client namespace across a veth with servers for the
/// connections that leave the pod.
@Suite("observe: live connections judged", .serialized)
struct ObserveConnectionTests {
    /// The configuration: Istio's default injection with outbound port 5432 excluded, as the downward-API files say.
    static let istioArgs = "-p 15001 -z 15006 -u 1337 -m REDIRECT -i * -x '' -b * -d 15090,15021,15020 -o 5432"
    static let annotations = #"""
        sidecar.istio.io/status="{\"initContainers\":[\"istio-init\"],\"containers\":[\"istio-proxy\"]}"
        traffic.sidecar.istio.io/excludeOutboundPorts="5432"
        """#
    static let outbound = ["10.0.0.2:80", "10.0.0.2:5432", "[fd00::2]:80", "[fd00::2]:5432"]
    static let inbound = ["10.0.0.1:8080", "[fd00::1]:8080"]

    /// The pod and client namespaces, wired and addressed; the rules loaded when `rules`.
    final class Pod {
        let pod: TestNamespace
        let client: TestNamespace
        let podInfo: URL

        init(rules: Bool) throws {
            pod = try TestNamespace()
            client = try TestNamespace()
            for cmd in [["ip", "link", "set", "lo", "up"],
                        ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "veth1"],
                        ["ip", "link", "set", "veth1", "netns", client.name],
                        ["ip", "addr", "add", "10.0.0.1/24", "dev", "eth0"],
                        ["ip", "addr", "add", "fd00::1/64", "dev", "eth0", "nodad"],
                        // Envoy's IPv6 forward source must be bindable; Istio's Envoy binds it the same way.
                        ["ip", "addr", "add", "::6/128", "dev", "lo", "nodad"],
                        ["ip", "link", "set", "eth0", "up"]] {
                try pod.mustRun(cmd)
            }
            for cmd in [["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", "10.0.0.2/24", "dev", "veth1"],
                        ["ip", "addr", "add", "fd00::2/64", "dev", "veth1", "nodad"], ["ip", "link", "set", "veth1", "up"]] {
                try client.mustRun(cmd)
            }
            podInfo = FileManager.default.temporaryDirectory.appendingPathComponent("iptaudit-podinfo-\(pod.name)")
            try FileManager.default.createDirectory(at: podInfo, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            try ObserveConnectionTests.annotations.write(to: podInfo.appendingPathComponent("annotations"), atomically: true, encoding: .utf8)
            try "app=\"demo\"\n".write(to: podInfo.appendingPathComponent("labels"), atomically: true, encoding: .utf8)
            for f in ["annotations", "labels"] {
                try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: podInfo.appendingPathComponent(f).path)
            }
            if rules { try loadRules() }
        }

        deinit { try? FileManager.default.removeItem(at: podInfo) }

        func loadRules() throws {
            let expect = try Binary.run(["expect", "--istio-args", ObserveConnectionTests.istioArgs, "--ipv6"])
            guard expect.status == 0 else { throw TestNamespaceError.commandFailed("iptaudit expect", expect.status, expect.stderr) }
            let parts = expect.stdout.components(separatedBy: "# ip6tables-save\n")
            try pod.mustRun(["iptables-legacy-restore"], stdin: parts[0])
            try pod.mustRun(["ip6tables-legacy-restore"], stdin: parts[1])
        }

        func removeRules() throws {
            for tool in ["iptables-legacy", "ip6tables-legacy"] {
                try pod.mustRun([tool, "-t", "nat", "-F"])
                try pod.mustRun([tool, "-t", "nat", "-X"])
            }
        }

        /// `iptaudit observe` in the pod namespace as the proxy container runs it, or as root (`privileged`).
        func observe(privileged: Bool = false, _ extra: [String] = []) throws -> CommandResult {
            let identity = privileged ? [] : ["setpriv", "--reuid", "1337", "--regid", "1337", "--clear-groups",
                                               "--inh-caps=-all", "--bounding-set=-all"]
            return try pod.run(identity + ["env", "-i", "ISTIO_META_INTERCEPTION_MODE=REDIRECT", "ISTIO_META_CLUSTER_ID=Kubernetes",
                                           Binary.path, "observe", "--pod-info", podInfo.path] + extra)
        }
    }

    /// The traffic: both helper processes running and every connection established (and, inbound, accepted by
    /// the application); they hold their sockets until `finish`.
    final class Traffic {
        let server: Process
        let client: Process
        let serverIn = Pipe(), serverOut = Pipe(), clientIn = Pipe(), clientOut = Pipe()
        let script: URL

        init(_ pod: Pod) throws {
            script = FileManager.default.temporaryDirectory.appendingPathComponent("iptaudit-observe-\(pod.pod.name).py")
            try ObserveConnectionTests.source.write(to: script, atomically: true, encoding: .utf8)
            client = Process()
            client.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            client.arguments = ["netns", "exec", pod.client.name, "python3", script.path, "client"] + ObserveConnectionTests.inbound
            client.standardInput = clientIn
            client.standardOutput = clientOut
            server = Process()
            server.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            server.arguments = ["netns", "exec", pod.pod.name, "python3", script.path, "pod", "\(ObserveConnectionTests.inbound.count)"]
                + ObserveConnectionTests.outbound
            server.standardInput = serverIn
            server.standardOutput = serverOut
            try client.run()
            try expectLine(clientOut, "listening")
            try server.run()
            try expectLine(serverOut, "listening")
            serverIn.fileHandleForWriting.write(Data("connect\n".utf8))
            try expectLine(serverOut, "outbound")
            clientIn.fileHandleForWriting.write(Data("connect\n".utf8))
            try expectLine(clientOut, "connected")
            try expectLine(serverOut, "ready")
        }

        func expectLine(_ pipe: Pipe, _ word: String) throws {
            var line = Data()
            while true {
                let byte = pipe.fileHandleForReading.readData(ofLength: 1)
                if byte.isEmpty || byte == Data("\n".utf8) { break }
                line.append(byte)
            }
            let got = String(decoding: line, as: UTF8.self)
            guard got == word else { throw TestNamespaceError.commandFailed("traffic helper", -1, "expected \(word), got '\(got)'") }
        }

        func finish() {
            try? serverIn.fileHandleForWriting.close()
            try? clientIn.fileHandleForWriting.close()
            server.waitUntilExit()
            client.waitUntilExit()
            try? FileManager.default.removeItem(at: script)
        }
    }

    /// `direction protocol local → remote classification`, from the JSON report, the proxy's own left out.
    static func classified(_ json: String) throws -> [String] {
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let connections = try #require(doc["connections"] as? [[String: Any]])
        return connections.compactMap { c in
            guard let socket = c["socket"] as? [String: Any], let cls = c["classification"] as? String, cls != "envoy",
                  let local = socket["local"] as? String, let remote = socket["remote"] as? String, let dir = c["direction"] as? String else { return nil }
            // Source ports are the kernel's choice: named by the side that is fixed.
            let peer = remote[..<(remote.lastIndex(of: ":") ?? remote.endIndex)]
            return dir == "outbound" ? "out \(remote) \(cls)" : "in \(local) \(cls)" + (cls == "captured" ? "" : " from \(peer)")
        }.sorted()
    }

    static func findings(_ json: String) throws -> [[String: Any]] {
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        return try #require(doc["findings"] as? [[String: Any]])
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), .timeLimit(.minutes(2)))
    func capturedConnectionsAreCapturedAndTheExcludedPortBypassesAsConfigured() throws {
        let pod = try Pod(rules: true)
        let traffic = try Traffic(pod)
        defer { traffic.finish() }
        let r = try pod.observe(["--format", "json"])
        #expect(r.status == 0, "\(r.stderr)\n\(r.stdout)")
        #expect(try Self.classified(r.stdout) == [
            "in 10.0.0.1:8080 captured",
            "in [fd00::1]:8080 captured",
            "out 10.0.0.2:5432 bypassing-expected",
            "out 10.0.0.2:80 captured",
            "out [fd00::2]:5432 bypassing-expected",
            "out [fd00::2]:80 captured",
        ])
        #expect(try Self.findings(r.stdout).isEmpty)
        // Read repeatedly, the same connections count once.
        let sampled = try pod.observe(["--format", "json", "--count", "3", "--interval", "0.05"])
        #expect(sampled.status == 0, "\(sampled.stderr)")
        #expect(try Self.classified(sampled.stdout) == (try Self.classified(r.stdout)))
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(sampled.stdout.utf8)) as? [String: Any])
        #expect(doc["samples"] as? Int == 3)
        // The text report says the same, and that the rules were not readable.
        let text = try pod.observe()
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("rules: not readable here"))
        #expect(text.stdout.contains("No connection contradicts capture: 6 connections judged."), "\(text.stdout)")
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), .timeLimit(.minutes(2)))
    func withoutTheRulesTheSameConnectionsBypassEnvoyAndAreFindings() throws {
        let pod = try Pod(rules: false)
        let traffic = try Traffic(pod)
        defer { traffic.finish() }
        let r = try pod.observe(["--format", "json"])
        #expect(r.status == 1, "\(r.stderr)\n\(r.stdout)")
        #expect(try Self.classified(r.stdout) == [
            "in 10.0.0.1:8080 bypassing-unexpected from 10.0.0.2",
            "in [fd00::1]:8080 bypassing-unexpected from [fd00::2]",
            "out 10.0.0.2:5432 bypassing-expected",
            "out 10.0.0.2:80 bypassing-unexpected",
            "out [fd00::2]:5432 bypassing-expected",
            "out [fd00::2]:80 bypassing-unexpected",
        ])
        let findings = try Self.findings(r.stdout)
        #expect(findings.count == 4)
        for f in findings {
            #expect(f["kind"] as? String == "missing-redirect")
            let witness = try #require(f["witness"] as? [String: Any])
            let packet = try #require(witness["packet"] as? [String: Any])
            // The witness is the connection itself: its real source port, not an example.
            let text = try #require(witness["text"] as? String)
            #expect(text.contains(":\(packet["sourcePort"] as? Int ?? -1) ") || text.contains("]:\(packet["sourcePort"] as? Int ?? -1) "), "\(text)")
            #expect(["REDIRECT --to-ports 15001", "REDIRECT --to-ports 15006"].contains(witness["verdict"] as? String))
        }
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), .timeLimit(.minutes(2)))
    func privilegedTheCombinedReportFlagsConnectionsTheSwappedRulesContradict() throws {
        let pod = try Pod(rules: true)
        let traffic = try Traffic(pod)
        defer { traffic.finish() }
        // The connections were made through Envoy; now the rules are gone.
        try pod.removeRules()
        let r = try pod.observe(privileged: true, ["--format", "json"])
        #expect(r.status == 1, "\(r.stderr)\n\(r.stdout)")
        let findings = try Self.findings(r.stdout)
        let contradictions = findings.filter { $0["kind"] as? String == "observation-contradicts-rules" }
        // The four captured connections (two outbound, two inbound), none of the excluded ones.
        #expect(contradictions.count == 4, "\(findings.map { $0["message"] ?? "" })")
        // The rule proof is in the same report: the missing redirect of verify, too.
        #expect(findings.contains { $0["kind"] as? String == "missing-redirect" && $0["obligation"] as? String == "outbound-hook" }
            || findings.contains { $0["kind"] as? String == "missing-redirect" })
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let obligations = try #require(doc["obligations"] as? [[String: Any]]).compactMap { $0["id"] as? String }
        #expect(obligations.contains("outbound-completeness") && obligations.contains("observed-matches-rules"))
    }

    /// What `observe` reports for the traffic with Istio's rules loaded (the proxy's own sockets left out).
    static let classifiedWithRules = [
        "in 10.0.0.1:8080 captured",
        "in [fd00::1]:8080 captured",
        "out 10.0.0.2:5432 bypassing-expected",
        "out 10.0.0.2:80 captured",
        "out [fd00::2]:5432 bypassing-expected",
        "out [fd00::2]:80 captured",
    ]

    /// Libraries `observe` must run without: the readers load them only to read rules or manifests (libmnl: never).
    static let unwantedLibraries = ["libmnl", "libip4tc", "libip6tc", "libnftables", "libnftnl", "libxtables", "libyaml"]

    /// A temporary root filesystem: `binary` as `/iptaudit`, the shared objects `ldd` lists for it at the paths it
    /// lists, and an empty `/proc` to mount. Returns the root and those paths.
    static func rootFilesystem(for binary: String) throws -> (root: URL, libraries: [String]) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("iptaudit-rootfs-\(getpid())-\(UUID().uuidString)")
        let ldd = try runCommand(["ldd", binary])
        try #require(ldd.status == 0, "\(ldd.stderr)")
        // `libfoo.so => /path/libfoo.so (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`.
        let libraries = ldd.stdout.split(separator: "\n").compactMap { line in
            line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init).first { $0.hasPrefix("/") }
        }
        for library in libraries {
            let target = root.appendingPathComponent(String(library.dropFirst()))
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: URL(fileURLWithPath: library).resolvingSymlinksInPath(), to: target)
        }
        try FileManager.default.copyItem(atPath: binary, toPath: root.appendingPathComponent("iptaudit").path)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("proc"), withIntermediateDirectories: true)
        return (root, libraries)
    }

    /// `/iptaudit observe --format json` chrooted into `root` in the pod's namespace: as the proxy runs it (UID 1337,
    /// its environment only), or as root (`privileged`), where it would read the rules.
    static func observe(in root: URL, _ pod: Pod, privileged: Bool = false) throws -> CommandResult {
        let command = privileged
            ? "exec chroot \"$1\" /iptaudit observe"
            : "exec env -i ISTIO_META_INTERCEPTION_MODE=REDIRECT /usr/sbin/chroot --userspec=1337:1337 \"$1\" /iptaudit observe --format json --istio-args \"$2\""
        return try pod.pod.run(["unshare", "--mount", "sh", "-c", "mount -t proc proc \"$1/proc\" && " + command, "sh", root.path, istioArgs])
    }

    /// The Debian package that installed `path` (`dpkg -S`), also asked under its /usr-merged twin.
    static func debianPackage(owning path: String) throws -> String? {
        for candidate in [path, path.hasPrefix("/usr/") ? String(path.dropFirst(4)) : "/usr" + path] {
            let r = try runCommand(["dpkg", "-S", candidate])
            if r.status == 0, let line = r.stdout.split(separator: "\n").first, let colon = line.firstIndex(of: ":") {
                return String(line[..<colon])
            }
        }
        return nil
    }

    /// A root filesystem with the binary and only the shared objects `ldd` lists for it (glibc, and the Swift
    /// runtime of a debug build): no libmnl, libiptc, libnftables or libyaml. `observe` runs there as the proxy does.
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), .timeLimit(.minutes(2)))
    func observeRunsInARootFilesystemWithoutLibiptcOrLibnftables() throws {
        let (root, libraries) = try Self.rootFilesystem(for: Binary.path)
        defer { try? FileManager.default.removeItem(at: root) }
        #expect(!libraries.isEmpty)
        #expect(!libraries.contains { l in Self.unwantedLibraries.contains { l.contains($0) } }, "linked at load time: \(libraries)")
        let everything = try FileManager.default.subpathsOfDirectory(atPath: root.path)
        #expect(!everything.contains { p in Self.unwantedLibraries.contains { p.contains($0) } })

        let pod = try Pod(rules: true)
        let traffic = try Traffic(pod)
        defer { traffic.finish() }
        let r = try Self.observe(in: root, pod)
        #expect(r.status == 0, "\(r.stderr)\n\(r.stdout)")
        #expect(try Self.classified(r.stdout) == Self.classifiedWithRules)
        // As root the legacy tables would be read, and there is no libiptc to read them with: one line that says so.
        let privileged = try Self.observe(in: root, pod, privileged: true)
        #expect(privileged.status == 2)
        #expect(privileged.stderr.contains("libip4tc") && privileged.stderr.split(separator: "\n").count == 1, "\(privileged.stderr)")
    }

    /// The release binary CI builds and names in `IPTAUDIT_RELEASE_BIN` (scripts/test.sh); nil when not set.
    static let releaseBinary = ProcessInfo.processInfo.environment["IPTAUDIT_RELEASE_BIN"].flatMap { $0.isEmpty ? nil : $0 }

    /// Issue 14's acceptance with the binary that ships: a copy of the release build (static Swift runtime) in a
    /// root of glibc's own files alone observes what the debug build observes on the same connections. Under
    /// `IPTAUDIT_REQUIRE_NETNS=1` (CI) a missing `IPTAUDIT_RELEASE_BIN` is a failure, not a skip.
    @Test(.enabled(if: TestNamespace.shouldRun && (releaseBinary != nil || TestNamespace.required),
                   "needs root and IPTAUDIT_RELEASE_BIN, the release binary scripts/test.sh builds"),
          .timeLimit(.minutes(3)))
    func theReleaseBinaryObservesFromARootOfGlibcAlone() throws {
        let release = try #require(Self.releaseBinary,
                                   "IPTAUDIT_RELEASE_BIN is not set: scripts/test.sh builds the release binary and names it there")
        try #require(FileManager.default.isExecutableFile(atPath: release), "IPTAUDIT_RELEASE_BIN=\(release) is not an executable")
        let (root, libraries) = try Self.rootFilesystem(for: release)
        defer { try? FileManager.default.removeItem(at: root) }
        #expect(!libraries.isEmpty)
        // Every file but the binary is glibc's: the libc6 package's (the dynamic loader is one of them).
        let files = try FileManager.default.subpathsOfDirectory(atPath: root.path).filter { path in
            var isDirectory: ObjCBool = false
            return path != "iptaudit" && FileManager.default.fileExists(atPath: root.appendingPathComponent(path).path, isDirectory: &isDirectory)
                && !isDirectory.boolValue
        }
        #expect(files.count == libraries.count, "\(files)")
        for file in files {
            #expect(try Self.debianPackage(owning: "/" + file) == "libc6", "/\(file) is not from glibc's package (libc6)")
        }
        #expect(!files.contains { f in (Self.unwantedLibraries + ["libswift", "libstdc++", "libgcc_s"]).contains { f.contains($0) } }, "\(files)")

        let (debugRoot, _) = try Self.rootFilesystem(for: Binary.path)
        defer { try? FileManager.default.removeItem(at: debugRoot) }
        let pod = try Pod(rules: true)
        let traffic = try Traffic(pod)
        defer { traffic.finish() }
        let r = try Self.observe(in: root, pod)
        #expect(r.status == 0, "\(r.stderr)\n\(r.stdout)")
        #expect(try Self.classified(r.stdout) == Self.classifiedWithRules)
        // The debug build, on the same namespace and connections, says the same.
        let debug = try Self.observe(in: debugRoot, pod)
        #expect(debug.status == r.status, "\(debug.stderr)")
        #expect(try Self.classified(r.stdout) == (try Self.classified(debug.stdout)))
        #expect(try Self.findings(r.stdout).map { $0["kind"] as? String } == (try Self.findings(debug.stdout)).map { $0["kind"] as? String })
        // As root it would read the rules: one line naming the library that is not there.
        let privileged = try Self.observe(in: root, pod, privileged: true)
        #expect(privileged.status == 2)
        #expect(privileged.stderr.contains("libip4tc") && privileged.stderr.split(separator: "\n").count == 1, "\(privileged.stderr)")
    }

    static let source = #"""
    import os, select, socket, struct, sys, signal
    signal.alarm(90)  # never outlive the test
    SO_ORIGINAL_DST, IP6T_SO_ORIGINAL_DST = 80, 80

    def endpoint(text):
        host, port = text.rsplit(":", 1)
        host = host.strip("[]")
        return (socket.AF_INET6 if ":" in host else socket.AF_INET), host, int(port)

    def listener(family, port):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
        s.listen(64)
        return s

    def drop(uid):
        os.setgroups([]); os.setresgid(uid, uid, uid); os.setresuid(uid, uid, uid)

    def say(word):
        sys.stdout.write(word + "\n"); sys.stdout.flush()

    def child(uid, body):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                drop(uid); body(w)
            finally:
                os._exit(0)
        os.close(w)
        return pid, r

    def hold_forever():
        while True:
            signal.pause()

    def envoy(ready):
        # Holds outbound connections; forwards inbound ones to their original destination from 127.0.0.6 / ::6.
        ls = [listener(f, p) for p in (15001, 15006) for f in (socket.AF_INET, socket.AF_INET6)]
        os.write(ready, b"l")
        held = []
        while True:
            for l in select.select(ls, [], [])[0]:
                c, _ = l.accept(); held.append(c)
                if l.getsockname()[1] != 15006:
                    continue
                if l.family == socket.AF_INET:
                    port, addr = struct.unpack("!2xH4s8x", c.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16))
                    f = socket.socket(socket.AF_INET); f.bind(("127.0.0.6", 0)); f.connect((socket.inet_ntoa(addr), port))
                else:
                    raw = c.getsockopt(socket.IPPROTO_IPV6, IP6T_SO_ORIGINAL_DST, 28)
                    port = struct.unpack("!H", raw[2:4])[0]
                    f = socket.socket(socket.AF_INET6); f.bind(("::6", 0)); f.connect((socket.inet_ntop(socket.AF_INET6, raw[8:24]), port))
                held.append(f)

    def app_server(ready):
        ls = [listener(f, 8080) for f in (socket.AF_INET, socket.AF_INET6)]
        os.write(ready, b"l")
        held = []
        while True:
            for l in select.select(ls, [], [])[0]:
                c, _ = l.accept(); held.append(c); os.write(ready, b"a")

    def app_client(targets):
        def body(ready):
            held = []
            for t in targets:
                family, host, port = endpoint(t)
                c = socket.socket(family, socket.SOCK_STREAM); c.settimeout(5); c.connect((host, port)); held.append(c)
            os.write(ready, b"c")
            hold_forever()
        return body

    def wait_line():
        line = sys.stdin.readline()
        if not line:
            sys.exit(0)

    role = sys.argv[1]
    children = []
    if role == "client":
        ls = [listener(f, p) for p in (80, 5432) for f in (socket.AF_INET, socket.AF_INET6)]
        say("listening")
        wait_line()
        held = []
        for t in sys.argv[2:]:
            family, host, port = endpoint(t)
            c = socket.socket(family, socket.SOCK_STREAM); c.settimeout(5); c.connect((host, port)); held.append(c)
        for l in ls:
            l.setblocking(False)
        say("connected")
        while sys.stdin.read(1):
            pass
    else:
        inbound = int(sys.argv[2])
        pid, envoy_ready = child(1337, envoy); children.append(pid)
        os.read(envoy_ready, 1)
        pid, server_ready = child(1000, app_server); children.append(pid)
        os.read(server_ready, 1)
        say("listening")
        wait_line()
        pid, client_ready = child(1000, app_client(sys.argv[3:])); children.append(pid)
        os.read(client_ready, 1)
        say("outbound")
        accepted = 0
        while accepted < inbound:
            accepted += len(os.read(server_ready, 1))
        say("ready")
        while sys.stdin.read(1):
            pass
    for pid in children:
        os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
    """#
}
