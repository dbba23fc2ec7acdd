import Foundation
import Testing
import TestSupport

/// Runs the built binary under a kill-timeout and, when asked, an address-space limit (`RLIMIT_AS` through
/// prlimit): a hang or a runaway allocation ends the child with a signal (status 137 or a crash), never the suite.
/// The bounds are generous, far above what the run takes: they catch hangs and blow-ups, they time nothing.
func runBounded(_ args: [String], seconds: Int = 180, memoryMiB: Int? = nil, environment: [String: String] = [:],
                stdin: String? = nil) throws -> CommandResult {
    var argv = ["timeout", "-s", "KILL", "\(seconds)"]
    if let memoryMiB { argv += ["prlimit", "--as=\(memoryMiB << 20)", "--"] }
    return try runCommand(argv + [Binary.path] + args, stdin: stdin, environment: environment)
}

/// Runs the built binary with stdout and stderr on a pseudo-terminal (python3's pty module), under a kill-timeout;
/// the terminal's output comes back in `stdout`, the child's exit status in `status`.
func runInTerminal(_ args: [String], seconds: Int = 180) throws -> CommandResult {
    let script = """
        import os, pty, sys
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(sys.argv[1], sys.argv[1:])
        out = b""
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            out += data
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(out.decode("utf-8", "replace"))
        sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
        """
    return try runCommand(["timeout", "-s", "KILL", "\(seconds)", "python3", "-c", script, Binary.path] + args)
}

/// A file in a fresh temporary directory, removed with it.
final class TemporaryFile {
    let directory: URL
    let path: String
    init(_ name: String, contents: String) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("iptaudit-limits-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent(name).path
        try contents.write(toFile: path, atomically: false, encoding: .utf8)
    }
    deinit { try? FileManager.default.removeItem(at: directory) }
}

/// Inputs made at run time (none is committed): each stands for a hostile or broken file of the kind.
enum HostileInput {
    static let healthy = Fixtures.repository.appendingPathComponent("examples/healthy.save")
    static let pod = Fixtures.repository.appendingPathComponent("examples/pod.yaml")

    /// examples/healthy.save with `depth` user chains jumping one into the next ahead of Istio's jump in nat OUTPUT.
    static func deepJumpChain(_ depth: Int) throws -> String {
        let save = try String(contentsOf: healthy, encoding: .utf8)
        var lines = save.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let nat = try #require(lines.firstIndex(of: "*nat"))
        let firstRule = try #require(lines[nat...].firstIndex { $0.hasPrefix("-A ") })
        var added = (0..<depth).map { ":C\($0) - [0:0]" }
        added.append("-A OUTPUT -j C0")
        added += (0..<(depth - 1)).map { "-A C\($0) -j C\($0 + 1)" }
        lines.insert(contentsOf: added, at: firstRule)
        return lines.joined(separator: "\n")
    }

    /// A pod manifest whose `spec` nests `levels` deep: flow (`[[[…]]]`) or block (`- - - …`) style.
    static func nestedManifest(_ levels: Int, block: Bool) -> String {
        block ? "kind: Pod\nspec:\n  containers:\n  " + String(repeating: "- ", count: levels) + "x\n"
            : "kind: Pod\nspec: " + String(repeating: "[", count: levels) + String(repeating: "]", count: levels) + "\n"
    }

    /// A CNI-mode pod whose annotation `key` holds `value`.
    static func annotatedPod(_ key: String, _ value: String) -> String {
        """
        apiVersion: v1
        kind: Pod
        metadata:
          name: p
          annotations:
            sidecar.istio.io/status: '{}'
            \(key): "\(value)"
        spec:
          initContainers:
          - name: istio-validation
            image: docker.io/istio/proxyv2:1.24.0
          containers:
          - name: istio-proxy
            image: docker.io/istio/proxyv2:1.24.0

        """
    }

    /// `count` filter rules, one port each.
    static func manyRules(_ count: Int) -> String {
        var s = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        s.reserveCapacity(count * 40)
        for i in 0..<count { s += "-A OUTPUT -p tcp -m tcp --dport \(i % 65535 + 1) -j ACCEPT\n" }
        return s + "COMMIT\n"
    }
}

/// An error the way the commands print it: one line, naming what was refused.
func expectOneLineError(_ r: CommandResult, status: Int32 = 2, containing parts: [String],
                        sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(r.status == status, "\(r.stderr.prefix(2000))", sourceLocation: sourceLocation)
    let lines = r.stderr.split(separator: "\n")
    #expect(lines.count == 1, "\(r.stderr.prefix(2000))", sourceLocation: sourceLocation)
    #expect(r.stderr.utf8.count < 1000, sourceLocation: sourceLocation)
    for part in parts { #expect(r.stderr.contains(part), "\(r.stderr)", sourceLocation: sourceLocation) }
}

@Suite struct LimitsTests {
    /// Also the long run the progress line is for: on a terminal it shows (the run takes many times the 2 s
    /// before the first line); the million-rule test below shows that a pipe gets none.
    @Test func aFiftyThousandDeepJumpChainIsAFindingNotACrash() throws {
        let file = try TemporaryFile("chain.save", contents: try HostileInput.deepJumpChain(50_000))
        let r = try runInTerminal(["verify", "--input", file.path])
        #expect(r.status == 1, "\(r.stdout.suffix(2000))")
        #expect(r.stdout.contains("nested more than 64 deep"))
        #expect(r.stdout.contains("iptaudit: verify: "), "a progress line on the terminal")
    }

    @Test(arguments: [5_000, 100_000], [false, true])
    func deepNestingInAManifestIsOneLineAndExitTwo(levels: Int, block: Bool) throws {
        let file = try TemporaryFile("pod.yaml", contents: HostileInput.nestedManifest(levels, block: block))
        let r = try runBounded(["expect", "--pod", file.path], seconds: 120, memoryMiB: 2048)
        expectOneLineError(r, containing: [file.path, "nested more than 256 levels deep", "IPTAUDIT_MAX_NESTING"])
    }

    @Test(arguments: [5_000, 100_000], [false, true])
    func deepNestingInABundlesManifestIsOneLineAndExitTwo(levels: Int, block: Bool) throws {
        let dir = try TemporaryFile("pod.yaml", contents: try String(contentsOf: HostileInput.pod, encoding: .utf8))
        let bundle = dir.directory.appendingPathComponent("bundle.json").path
        let captured = try runBounded(["capture", "--input", HostileInput.healthy.path, "--pod", dir.path, "-w", bundle])
        #expect(captured.status == 0, "\(captured.stderr)")
        var json = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: bundle))) as? [String: Any])
        var manifest = try #require(json["podManifest"] as? [String: Any])
        manifest["text"] = HostileInput.nestedManifest(levels, block: block)
        json["podManifest"] = manifest
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: bundle))
        let r = try runBounded(["verify", "--bundle", bundle], seconds: 120, memoryMiB: 2048)
        expectOneLineError(r, containing: ["nested more than 256 levels deep"])
    }

    /// The bundle's own JSON nested deep: named as nesting, not as "not JSON".
    @Test(arguments: [5_000, 100_000])
    func deepNestingInABundlesJSONIsOneLineAndExitTwo(levels: Int) throws {
        let dir = try TemporaryFile("unused", contents: "")
        let bundle = dir.directory.appendingPathComponent("bundle.json").path
        let captured = try runBounded(["capture", "--input", HostileInput.healthy.path, "-w", bundle])
        #expect(captured.status == 0, "\(captured.stderr)")
        var text = try String(contentsOfFile: bundle, encoding: .utf8)
        let close = try #require(text.lastIndex(of: "}"))
        text.replaceSubrange(close..., with: ", \"extra\": " + String(repeating: "[", count: levels) + String(repeating: "]", count: levels) + "}")
        try text.write(toFile: bundle, atomically: false, encoding: .utf8)
        let r = try runBounded(["verify", "--bundle", bundle], seconds: 120, memoryMiB: 2048)
        expectOneLineError(r, containing: [bundle, "nested more than 256 levels deep", "IPTAUDIT_MAX_NESTING"])
    }

    @Test func tenThousandPortsAreExpectedAndAHundredThousandHitTheListLimit() throws {
        let key = "traffic.sidecar.istio.io/excludeOutboundPorts"
        let ten = try TemporaryFile("pod.yaml", contents: HostileInput.annotatedPod(key, (1...10_000).map(String.init).joined(separator: ",")))
        let ok = try runBounded(["expect", "--pod", ten.path], seconds: 120)
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("--dport 10000 -j RETURN"))
        let ports = (0..<100_000).map { String($0 % 65535 + 1) }.joined(separator: ",")
        let hundred = try TemporaryFile("pod.yaml", contents: HostileInput.annotatedPod(key, ports))
        let r = try runBounded(["expect", "--pod", hundred.path], seconds: 60)
        expectOneLineError(r, containing: [key, "100000 items", "IPTAUDIT_MAX_LIST_ITEMS"])
        let cidrs = (0..<100_000).map { "10.\($0 / 256 % 256).\($0 % 256).0/24" }.joined(separator: ",")
        let ranges = try TemporaryFile("pod.yaml", contents: HostileInput.annotatedPod("traffic.sidecar.istio.io/excludeOutboundIPRanges", cidrs))
        expectOneLineError(try runBounded(["expect", "--pod", ranges.path], seconds: 60), containing: ["100000 items"])
        // One argument may hold 128 KiB (MAX_ARG_STRLEN): 20,000 ports.
        let flag = (1...20_000).map(String.init).joined(separator: ",")
        let args = try runBounded(["expect", "--istio-args", "-p 15001 -z 15006 -u 1337 -m REDIRECT -i * -o \(flag)"], seconds: 60)
        #expect(args.status == 64, "a bad --istio-args is a usage error")
        #expect(args.stderr.contains("20000 items") && args.stderr.contains("IPTAUDIT_MAX_LIST_ITEMS"))
    }

    /// A table whose paths multiply (scripts/gen-varied-rules.py: 300 rules of mixed matches, MARKs and returning
    /// jumps take about a million walk steps) stops at the walk-step bound with one line and exit 2, and no
    /// report; the healthy pod's rules verify under the same bound; a bound that is not a number is a usage error.
    @Test func aTableWhosePathsMultiplyStopsAtTheWalkStepBound() throws {
        let varied = try runCommand(["python3", Fixtures.repositoryPath("scripts/gen-varied-rules.py"), "--rules", "300"])
        try #require(varied.status == 0, "\(varied.stderr)")
        let rules = try TemporaryFile("varied.rst", contents: varied.stdout)
        let combined = try runCommand(["python3", Fixtures.repositoryPath("benchmarks/combine-save.py"), HostileInput.healthy.path, rules.path])
        try #require(combined.status == 0, "\(combined.stderr)")
        let file = try TemporaryFile("varied.save", contents: combined.stdout)
        let bound = ["IPTAUDIT_MAX_WALK_STEPS": "200000"]
        for format in ["text", "json"] {
            let r = try runBounded(["verify", "--input", file.path, "--format", format], environment: bound)
            expectOneLineError(r, containing: [file.path, "verification stopped", "walking the rules took more than 200000 steps",
                                               "IPTAUDIT_MAX_WALK_STEPS"])
            #expect(r.stdout.isEmpty, "a report from a walk that stopped part way: \(r.stdout.prefix(300))")
        }
        let healthy = try runBounded(["verify", "--input", HostileInput.healthy.path], environment: bound)
        #expect(healthy.status == 0, "\(healthy.stderr)")
        expectOneLineError(try runBounded(["verify", "--input", file.path], environment: ["IPTAUDIT_MAX_WALK_STEPS": "0"]), status: 64,
                           containing: ["IPTAUDIT_MAX_WALK_STEPS=0", "positive whole number"])
    }

    @Test func aMillionRuleDumpIsALimitErrorInBoundedMemory() throws {
        let file = try TemporaryFile("rules.save", contents: HostileInput.manyRules(1_000_000))
        let r = try runBounded(["verify", "--input", file.path], seconds: 180, memoryMiB: 1024)
        // One line only: no progress line either, since stderr is a pipe here.
        expectOneLineError(r, containing: [file.path, "more than 500000 rules", "IPTAUDIT_MAX_RULES"])
    }

    @Test func inputsPastTheByteLimitAreRefusedFromFilesAndPipes() throws {
        let pod = try String(contentsOf: HostileInput.pod, encoding: .utf8)
        let file = try TemporaryFile("pod.yaml", contents: pod)
        let env = ["IPTAUDIT_MAX_MANIFEST_BYTES": "1000", "IPTAUDIT_MAX_INPUT_BYTES": "1000"]
        expectOneLineError(try runBounded(["expect", "--pod", file.path], environment: env),
                           containing: [file.path, "over the limit of 1000", "IPTAUDIT_MAX_MANIFEST_BYTES"])
        expectOneLineError(try runBounded(["expect", "--pod", "-"], environment: env, stdin: pod),
                           containing: ["gave more than 1000 bytes", "IPTAUDIT_MAX_MANIFEST_BYTES"])
        expectOneLineError(try runBounded(["show", "--input", HostileInput.healthy.path], environment: env),
                           containing: ["over the limit of 1000", "IPTAUDIT_MAX_INPUT_BYTES"])
        expectOneLineError(try runBounded(["show", "--input", "/dev/zero"]), containing: ["/dev/zero", "is a device"])
        expectOneLineError(try runBounded(["show"], environment: ["IPTAUDIT_MAX_RULES": "many"]), status: 64,
                           containing: ["IPTAUDIT_MAX_RULES=many", "positive whole number"])
    }

    @Test func aFIFOWithNoWriterNeitherHangsNetnsNorInput() throws {
        let dir = try TemporaryFile("unused", contents: "")
        let fifo = dir.directory.appendingPathComponent("fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        expectOneLineError(try runBounded(["show", "--netns", fifo], seconds: 60), containing: [fifo, "not a namespace file"])
        expectOneLineError(try runBounded(["show", "--input", fifo], seconds: 60, environment: ["IPTAUDIT_MAX_INPUT_WAIT": "1"]),
                           containing: [fifo, "no data and no end of file for 1 s"])
        // A FIFO whose writer comes later is read, as `--input <(iptables-save)` is.
        let writer = try Process.run(URL(fileURLWithPath: "/bin/sh"), arguments: ["-c", "sleep 1; cat \"$0\" > \"$1\"", HostileInput.healthy.path, fifo])
        let r = try runBounded(["show", "--input", fifo, "--format", "save"], seconds: 60)
        writer.waitUntilExit()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("-A ISTIO_OUTPUT"))
    }
}
