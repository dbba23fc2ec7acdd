import Foundation
import Testing
import TestSupport

/// A live read leaves the pod exactly as it was and always comes back: no child process but
/// `iptables-nft-save` (and only where iptables-nft tables exist), no packet originated in the pod (counters
/// unchanged), no hang with lo down or a busy machine, and helpers that cannot be hijacked or hang us.
@Suite(.serialized) struct SideEffectFreeReadTests {
    static let dnsCapture = "master/sidecar-iptables/dns-uid-gid.golden"
    static let enabled = TestNamespace.shouldRun

    /// A namespace holding Istio's DNS-capture rules in one backend, lo up or down (a fresh namespace's lo is down).
    static func pod(backend: String, loUp: Bool) throws -> TestNamespace {
        let ns = try TestNamespace()
        try loadGolden(dnsCapture, family: 4, backend: backend, into: ns)
        try loadGolden(dnsCapture.replacingOccurrences(of: "dns-uid-gid", with: "ipv6-dns-uid-gid"), family: 6, backend: backend, into: ns)
        if loUp { try ns.mustRun(["ip", "link", "set", "lo", "up"]) }
        return ns
    }

    /// Both stores with counters, as an operator would compare them.
    static func counters(_ ns: TestNamespace) throws -> String {
        try ["iptables-legacy-save", "ip6tables-legacy-save", "iptables-nft-save", "ip6tables-nft-save"].map {
            withoutSaveComments(try ns.mustRun([$0, "-c"]))
        }.joined(separator: "\n---\n")
    }

    /// Runs iptaudit with a hard bound, so a hang fails the test instead of stalling the suite.
    static func bounded(_ args: [String], environment: [String: String] = [:]) throws -> CommandResult {
        try runCommand(["timeout", "-s", "KILL", "60", Binary.path] + args, environment: environment)
    }

    @Test(.enabled(if: enabled, Comment(rawValue: TestNamespace.skipReason)))
    func threeHundredLiveRunsNeverHangPrintOnlyTheAnswerAndMoveNoCounter() throws {
        // The other core busy, as on a loaded node: the original hang showed up under exactly this load.
        // SIGKILL: the test runner's blocked signals are inherited, so SIGTERM would leave it spinning; and no
        // inherited stdout, so a leftover could never hold the runner's output open.
        let busy = Process()
        busy.executableURL = URL(fileURLWithPath: "/bin/sh")
        busy.arguments = ["-c", "while :; do :; done"]
        busy.standardInput = FileHandle.nullDevice
        busy.standardOutput = FileHandle.nullDevice
        busy.standardError = FileHandle.nullDevice
        try busy.run()
        defer {
            kill(busy.processIdentifier, SIGKILL)
            busy.waitUntilExit()
        }

        let pods = try [
            Self.pod(backend: "legacy", loUp: false), Self.pod(backend: "nft", loUp: false),
            Self.pod(backend: "legacy", loUp: true), Self.pod(backend: "nft", loUp: true),
        ]
        let bundle = NSTemporaryDirectory() + "iptaudit-side-effects-\(getpid()).json"
        defer { unlink(bundle) }
        let commands: [(String, [String])] = [
            ("show", ["show", "--format", "save"]),
            ("verify", ["verify", "--dns-servers", "10.96.0.10", "--format", "json"]),
            ("trace", ["trace", "out", "udp", "10.96.0.10:53"]),
            ("capture", ["capture", "-w", bundle]),
        ]
        var before = try pods.map(Self.counters)
        var runs = 0
        for round in 0..<75 {
            for (i, pod) in pods.enumerated() {
                let (name, args) = commands[(round + i) % commands.count]
                let r = try Self.bounded(args + ["--netns", pod.path])
                runs += 1
                #expect(r.status != 137, "\(name) in \(pod.name) hung and was killed")
                #expect([0, 1].contains(r.status), "\(name) in \(pod.name) exited \(r.status): \(r.stderr)")
                if name == "capture" {
                    // capture's answer is the bundle, and one line on stderr saying where it went.
                    #expect(r.stdout.isEmpty && r.stderr.hasPrefix("iptaudit: wrote \(bundle) (")
                            && r.stderr.split(separator: "\n").count == 1, "capture printed: \(r.stdout) \(r.stderr)")
                } else {
                    #expect(r.stderr.isEmpty, "\(name) in \(pod.name) printed beside its answer: \(r.stderr)")
                    #expect(!r.stdout.isEmpty, "\(name) printed its answer")
                }
                let after = try Self.counters(pod)
                #expect(after == before[i], "\(name) changed the tables or moved a counter of \(pod.name)")
                before[i] = after
            }
        }
        #expect(runs == 300)
        // The counters really are live: traffic the test itself makes in the pod moves them, so an unchanged
        // listing above is evidence, not a blind spot.
        let lived = pods[2]
        try lived.mustRun(["python3", "-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 9))"])
        #expect(try Self.counters(lived) != before[2])
    }

    /// The system calls of one live command under strace: every program started and every socket opened.
    static func traced(_ args: [String], in pod: TestNamespace) throws -> (execs: [String], sockets: [String]) {
        let log = NSTemporaryDirectory() + "iptaudit-strace-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(log) }
        let r = try runCommand(["timeout", "-s", "KILL", "60", "strace", "-f", "-qq", "-o", log, "-e", "trace=execve,socket",
                                Binary.path] + args + ["--netns", pod.path])
        #expect([0, 1].contains(r.status), "\(args) exited \(r.status): \(r.stderr)")
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        let execs = lines.filter { $0.contains("execve(") && !$0.contains("= -1 ") }.compactMap { line -> String? in
            guard let open = line.range(of: "execve(\""), let close = line[open.upperBound...].firstIndex(of: "\"") else { return nil }
            return String(line[open.upperBound..<close])
        }
        let sockets = lines.filter { $0.contains("socket(") }.compactMap { line -> String? in
            guard let open = line.range(of: "socket("), let close = line[open.upperBound...].firstIndex(of: ")") else { return nil }
            return String(line[open.upperBound..<close])
        }
        return (execs, sockets)
    }

    @Test(.enabled(if: enabled, Comment(rawValue: TestNamespace.skipReason)), arguments: ["legacy", "nft", "none"])
    func liveReadsStartNoProgramButTheNftDecoderAndOpenNoInetSocket(backend: String) throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/strace"), "strace is not installed (scripts/install-deps.sh installs it)")
        let pod = backend == "none" ? try TestNamespace() : try Self.pod(backend: backend, loUp: true)
        if backend == "none" { try pod.mustRun(["ip", "link", "set", "lo", "up"]) }
        for args in [["show"], ["verify", "--dns-servers", "10.96.0.10"], ["trace", "out", "tcp", "1.2.3.4:80"]] {
            let (execs, sockets) = try Self.traced(args, in: pod)
            #expect(execs.first == Binary.path, "strace saw the binary start: \(execs)")
            let helpers = execs.dropFirst().map { ($0 as NSString).lastPathComponent }
            // iptables-nft-save decodes iptables-nft's xt-compat rules; it runs only where such tables exist, and
            // only for the families the command reads (trace of an IPv4 packet reads IPv4).
            let families = args[0] == "trace" ? ["iptables-nft-save"] : ["iptables-nft-save", "ip6tables-nft-save"]
            let expected = backend == "nft" ? families : []
            #expect(helpers == expected, "\(args) on a \(backend) pod started \(helpers)")
            // Netlink only; libiptc's raw getsockopt socket (it never sends, cannot receive) exactly where legacy
            // tables exist.
            let inet = sockets.filter { $0.hasPrefix("AF_INET") }
            #expect(inet.allSatisfy { $0 == "AF_INET, SOCK_RAW, IPPROTO_RAW" || $0 == "AF_INET6, SOCK_RAW, IPPROTO_RAW" },
                    "\(args) on a \(backend) pod opened \(inet)")
            #expect(sockets.allSatisfy { $0.hasPrefix("AF_NETLINK") || inet.contains($0) }, "\(args) opened \(sockets)")
            if backend != "legacy" { #expect(inet.isEmpty, "\(args) on a \(backend) pod opened \(inet)") }
        }
    }

    @Test(.enabled(if: enabled, Comment(rawValue: TestNamespace.skipReason)))
    func aFakeHelperEarlyInPathIsNeverRunAndTheChildEnvironmentIsClean() throws {
        let pod = try Self.pod(backend: "nft", loUp: true)
        let dir = NSTemporaryDirectory() + "iptaudit-fake-bin-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let marker = dir + "/ran"
        for tool in ["iptables-nft-save", "ip6tables-nft-save", "nsenter", "ip", "nft"] {
            // A helper that would certify an invented, perfect Istio rule set.
            let fake = dir + "/" + tool
            try "#!/bin/sh\ntouch \(marker)\nprintf '*nat\\n:OUTPUT ACCEPT [0:0]\\nCOMMIT\\n'\n".write(toFile: fake, atomically: true, encoding: .utf8)
            chmod(fake, 0o755)
        }
        let path = dir + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin")
        // XTABLES_LIBDIR would make a child iptables load extensions from an attacker's directory.
        let r = try Self.bounded(["show", "--format", "save", "--table", "nat", "--family", "ipv4", "--netns", pod.path],
                                 environment: ["PATH": path, "XTABLES_LIBDIR": dir])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(access(marker, F_OK) != 0, "a fake helper from PATH ran")
        #expect(withoutSaveComments(r.stdout) == withoutSaveComments(try pod.mustRun(["iptables-nft-save", "-t", "nat"])))
    }

    @Test(.enabled(if: enabled, Comment(rawValue: TestNamespace.skipReason)))
    func aHelperThatHangsEndsInExitTwoAfterItsDeadline() throws {
        let pod = try Self.pod(backend: "nft", loUp: true)
        // The real decoder is replaced by one that sleeps, in a private mount namespace so the system's stays.
        let fake = NSTemporaryDirectory() + "iptaudit-hanging-helper-\(getpid())"
        try "#!/bin/sh\nsleep 600\n".write(toFile: fake, atomically: true, encoding: .utf8)
        chmod(fake, 0o755)
        defer { unlink(fake) }
        let target = try #require(HelperPath.real("iptables-nft-save"))
        let script = "mount --bind \(fake) \(target) && exec \(Binary.path) show --netns \(pod.path)"
        let r = try runCommand(["timeout", "-s", "KILL", "60", "unshare", "-m", "--propagation", "private", "sh", "-c", script],
                               environment: ["IPTAUDIT_HELPER_TIMEOUT": "1"])
        #expect(r.status == 2, "stdout: \(r.stdout) stderr: \(r.stderr)")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "one line: \(r.stderr)")
        #expect(r.stderr.contains("iptables-nft-save") && r.stderr.contains("did not finish within 1 s and was stopped"), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
    }

    /// A helper deadline that is not whole seconds above 0 is refused with one line as a usage error (exit 64), as
    /// every input limit is, before anything is read, rather than quietly becoming the default; whole seconds pass.
    /// (That the value reaches the namespace thread the helper starts from, the hanging-helper test shows.)
    @Test(.enabled(if: enabled, Comment(rawValue: TestNamespace.skipReason)))
    func aHelperDeadlineThatIsNotWholeSecondsIsRefused() throws {
        let pod = try Self.pod(backend: "nft", loUp: true)
        for value in ["abc", "0", "-5", "inf", "nan", "", " 2", "0.5"] {
            let r = try Self.bounded(["show", "--netns", pod.path], environment: ["IPTAUDIT_HELPER_TIMEOUT": value])
            #expect(r.status == 64, "\(value): \(r.stdout) \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("IPTAUDIT_HELPER_TIMEOUT=\(value): expected a positive whole number"),
                    "\(value): \(r.stderr)")
            #expect(r.stdout.isEmpty)
        }
        for value in ["30", "1"] {
            let r = try Self.bounded(["show", "--netns", pod.path], environment: ["IPTAUDIT_HELPER_TIMEOUT": value])
            #expect(r.status == 0, "\(value): \(r.stderr)")
        }
    }

    @Test(.enabled(if: enabled, Comment(rawValue: TestNamespace.skipReason)))
    func aHelperThatSomeoneElseCouldHaveReplacedIsRefused() throws {
        let pod = try Self.pod(backend: "nft", loUp: true)
        let fake = NSTemporaryDirectory() + "iptaudit-foreign-helper-\(getpid())"
        try "#!/bin/sh\nprintf '*nat\\n:OUTPUT ACCEPT [0:0]\\nCOMMIT\\n'\n".write(toFile: fake, atomically: true, encoding: .utf8)
        defer { unlink(fake) }
        let target = try #require(HelperPath.real("iptables-nft-save"))
        for (owner, mode) in [(1000 as uid_t, 0o755 as mode_t), (0, 0o775)] {
            chown(fake, owner, 0)
            chmod(fake, mode)
            let script = "mount --bind \(fake) \(target) && exec \(Binary.path) show --netns \(pod.path)"
            let r = try runCommand(["timeout", "-s", "KILL", "60", "unshare", "-m", "--propagation", "private", "sh", "-c", script])
            #expect(r.status == 2, "owner \(owner) mode \(String(mode, radix: 8)): \(r.stdout) \(r.stderr)")
            #expect(r.stderr.contains("is not owned by root or is writable by others; refusing to run it"), "\(r.stderr)")
        }
    }
}

/// Where a helper really is (symlinks resolved), for tests that put something in its place.
enum HelperPath {
    static func real(_ name: String) -> String? {
        for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] where FileManager.default.fileExists(atPath: dir + "/" + name) {
            return URL(fileURLWithPath: dir + "/" + name).resolvingSymlinksInPath().path
        }
        return nil
    }
}
