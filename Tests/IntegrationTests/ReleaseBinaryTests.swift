import CorpusSupport
import Foundation
import Testing
import TestSupport

/// Issue 12's acceptance for the binary that ships: the release build (static Swift runtime, `IPTAUDIT_RELEASE_BIN`)
/// with the toolchain hidden — a tmpfs over /opt/swift in a private mount namespace — prints byte for byte what the
/// development build prints on every sidecar case of the corpus.
@Suite struct ReleaseBinaryTests {
    static let toolchain = "/opt/swift"

    /// One `verify --format json` per sidecar case: its live `iptables-legacy-save` dumps as `--input`, its
    /// istio-iptables flags, environment and runtime inputs as options.
    static func verifyArguments(_ c: CorpusCase) -> [String]? {
        let dumps = ["ipv4", "ipv6"].map { Fixtures.url("istio/\(c.ref)/live-save/\(c.kind)/\(c.golden).\($0).save").path }
            .filter { FileManager.default.fileExists(atPath: $0) }
        guard !dumps.isEmpty else { return nil }
        var args = ["verify", "--format", "json", "--istio-version", "\(c.version)",
                    "--istio-args", (["istio-iptables"] + c.flags).map(shellQuoted).joined(separator: " "),
                    "--dns-servers", (c.dnsServersIPv4 + c.dnsServersIPv6).joined(separator: ","),
                    c.ipv6 ? "--ipv6" : "--no-ipv6"]
        for (k, v) in c.env.sorted(by: { $0.key < $1.key }) { args += ["--istio-env", "\(k)=\(v)"] }
        for d in dumps { args += ["--input", d] }
        return args
    }

    static func shellQuoted(_ word: String) -> String { "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// A shell script running `"$1"` once per argument vector, each run's stdout, stderr and status in `$2/N.*`.
    static func script(_ runs: [[String]]) -> String {
        runs.enumerated().map { i, args in
            "\"$1\" " + args.map(shellQuoted).joined(separator: " ") + " >\"$2/\(i).out\" 2>\"$2/\(i).err\"; echo $? >\"$2/\(i).status\""
        }.joined(separator: "\n") + "\n"
    }

    static func outputs(_ dir: String, count: Int) throws -> [String] {
        try (0..<count).map { i in
            try ["out", "err", "status"].map { try String(contentsOfFile: "\(dir)/\(i).\($0)", encoding: .utf8) }.joined(separator: "\u{0}")
        }
    }

    @Test(.enabled(if: TestNamespace.shouldRun && (ObserveConnectionTests.releaseBinary != nil || TestNamespace.required),
                   "needs root (a mount namespace) and IPTAUDIT_RELEASE_BIN, the release binary scripts/test.sh builds"),
          .timeLimit(.minutes(5)))
    func theReleaseBinaryWithoutTheToolchainPrintsWhatTheDebugBuildPrintsOnTheCorpus() throws {
        let release = try #require(ObserveConnectionTests.releaseBinary,
                                   "IPTAUDIT_RELEASE_BIN is not set: scripts/test.sh builds the release binary and names it there")
        try #require(FileManager.default.isExecutableFile(atPath: release), "IPTAUDIT_RELEASE_BIN=\(release) is not an executable")
        let cases = Corpus.cases.filter { $0.kind == "sidecar-iptables" }
        let runs = cases.compactMap(Self.verifyArguments)
        #expect(runs.count == cases.count, "a sidecar case without a live dump")
        #expect(runs.count > 80)
        let work = NSTemporaryDirectory() + "iptaudit-release-\(getpid())-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: work) }
        for dir in ["debug", "release", "hidden"] {
            try FileManager.default.createDirectory(atPath: "\(work)/\(dir)", withIntermediateDirectories: true)
        }
        try Self.script(runs).write(toFile: "\(work)/runs.sh", atomically: true, encoding: .utf8)

        let debug = try runCommand(["sh", "\(work)/runs.sh", Binary.path, "\(work)/debug"])
        try #require(debug.status == 0, "\(debug.stderr)")
        // The toolchain hidden in a private mount namespace: the debug build (Swift runtime from /opt/swift) cannot
        // start there — proof the hiding works — and the release build must print the same bytes as above.
        let hidden = try runCommand(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                     "mount -t tmpfs none \"$1\" && ls -A \"$1\" >\"$3/listing\" && "
                                         + "{ \"$4\" --help >/dev/null 2>&1; echo $? >\"$3/debug-status\"; } && sh \"$2/runs.sh\" \"$5\" \"$3\"",
                                     "sh", Self.toolchain, work, "\(work)/hidden", Binary.path, release])
        try #require(hidden.status == 0, "\(hidden.stderr)")
        #expect(try String(contentsOfFile: "\(work)/hidden/listing", encoding: .utf8).isEmpty, "/opt/swift is not hidden")
        #expect(try String(contentsOfFile: "\(work)/hidden/debug-status", encoding: .utf8) == "127\n",
                "the debug build started without /opt/swift: the toolchain was not hidden")

        let expected = try Self.outputs("\(work)/debug", count: runs.count)
        let actual = try Self.outputs("\(work)/hidden", count: runs.count)
        var verdicts = Set<String>()
        for (i, c) in cases.enumerated() where i < runs.count {
            #expect(actual[i] == expected[i], "\(c.testDescription): the release binary differs from the debug build")
            verdicts.insert(String(expected[i].split(separator: "\u{0}").last ?? ""))
        }
        // Every run came to a verdict: nothing failed to read (exit 2) or to parse (64).
        #expect(verdicts.isSubset(of: ["0\n", "1\n"]), "\(verdicts)")
        #expect(expected.allSatisfy { $0.hasPrefix("{") }, "a run printed no JSON report")
    }

    /// scripts/release.sh packages the release binary: a stripped copy named for the version and architecture, a
    /// checksum `sha256sum -c` accepts, the same program (same help), and `ldd` naming glibc's files only.
    @Test(.enabled(if: ObserveConnectionTests.releaseBinary != nil || TestNamespace.required,
                   "needs IPTAUDIT_RELEASE_BIN, the release binary scripts/test.sh builds"))
    func releaseScriptWritesAStrippedBinaryAndItsChecksum() throws {
        let release = try #require(ObserveConnectionTests.releaseBinary, "IPTAUDIT_RELEASE_BIN is not set")
        let dist = NSTemporaryDirectory() + "iptaudit-dist-\(getpid())-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dist) }
        let r = try runCommand(["bash", Fixtures.repositoryPath("scripts/release.sh")],
                               environment: ["IPTAUDIT_RELEASE_BIN": release, "IPTAUDIT_VERSION": "9.9.9-test", "IPTAUDIT_DIST": dist])
        try #require(r.status == 0, "\(r.stderr)")
        let arch = try runCommand(["uname", "-m"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let name = "iptaudit-9.9.9-test-linux-\(arch)"
        // The man page comes along when the build generated it (scripts/test.sh does, and exports its path).
        let manpage = ProcessInfo.processInfo.environment["IPTAUDIT_MANPAGE"]
        #expect(try FileManager.default.contentsOfDirectory(atPath: dist).sorted()
                == ([name, name + ".sha256", "completions"] + (manpage != nil ? ["iptaudit.1"] : [])).sorted())
        #expect(try FileManager.default.contentsOfDirectory(atPath: dist + "/completions").sorted() == ["_iptaudit", "iptaudit.bash", "iptaudit.fish"])
        #expect(try runCommand(["bash", "-n", dist + "/completions/iptaudit.bash"]).status == 0)
        if let manpage { #expect(FileManager.default.contentsEqual(atPath: manpage, andPath: dist + "/iptaudit.1")) }
        let check = try runCommand(["sh", "-c", "cd \"$1\" && sha256sum -c \"$2.sha256\"", "sh", dist, name])
        #expect(check.status == 0 && check.stdout == "\(name): OK\n", "\(check.stdout)\(check.stderr)")
        let unstripped = try FileManager.default.attributesOfItem(atPath: release)[.size] as? Int ?? 0
        let stripped = try FileManager.default.attributesOfItem(atPath: "\(dist)/\(name)")[.size] as? Int ?? 0
        #expect(stripped > 0 && stripped < unstripped / 2, "stripping should remove most of the symbol tables")
        #expect(r.stdout.contains("size: \(unstripped) bytes unstripped, \(stripped) bytes stripped"), "\(r.stdout)")
        let help = try runCommand(["\(dist)/\(name)", "verify", "--help"])
        let originalHelp = try runCommand([release, "verify", "--help"])
        #expect(help.status == 0 && help.stdout == originalHelp.stdout)
        let ldd = try runCommand(["ldd", "\(dist)/\(name)"])
        let objects = ldd.stdout.split(separator: "\n").compactMap { $0.split(separator: " ").first.map { $0.trimmingCharacters(in: .whitespaces) } }
        #expect(Set(objects).subtracting(["linux-vdso.so.1"]).allSatisfy { ["libc.so.6", "libm.so.6"].contains($0) || $0.hasSuffix("/ld-linux-x86-64.so.2") || $0.hasPrefix("ld-linux") },
                "\(ldd.stdout)")
    }

    /// The shipped binary starts under glibc 2.35 (Ubuntu 22.04, the base of many proxy images it is copied into):
    /// every symbol version it asks of glibc is 2.35 or older, and it needs no packed relocations (DT_RELR, 2.36).
    /// gold linked in a reference to 2.36's `arc4random` from an archive member nothing calls; lld does not.
    @Test(.enabled(if: ObserveConnectionTests.releaseBinary != nil || TestNamespace.required,
                   "needs IPTAUDIT_RELEASE_BIN, the release binary scripts/test.sh builds"))
    func theReleaseBinaryAsksNoMoreOfGlibcThan2_35() throws {
        let release = try #require(ObserveConnectionTests.releaseBinary, "IPTAUDIT_RELEASE_BIN is not set")
        let r = try runCommand(["objdump", "-p", release])
        try #require(r.status == 0, "\(r.stderr)")
        let words = r.stdout.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).filter { $0.hasPrefix("GLIBC_") }
        let versions = words.compactMap { word -> [Int]? in
            let parts = word.dropFirst("GLIBC_".count).split(separator: ".").map { Int($0) }
            return parts.allSatisfy { $0 != nil } ? parts.map { $0! } : nil
        }
        #expect(!versions.isEmpty, "objdump -p listed no glibc version: \(r.stdout.prefix(2000))")
        let newest = versions.max { $0.lexicographicallyPrecedes($1) } ?? []
        #expect(!([2, 35].lexicographicallyPrecedes(newest)), "the binary needs GLIBC_\(newest.map(String.init).joined(separator: "."))")
        // GLIBC_ABI_DT_RELR (packed relocations) or GLIBC_PRIVATE would each tie it to a newer or the same glibc.
        #expect(!words.contains { $0.dropFirst("GLIBC_".count).first?.isNumber != true }, "a named glibc requirement: \(Set(words))")
    }
}

