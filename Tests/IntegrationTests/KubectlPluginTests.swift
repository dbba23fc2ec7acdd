import Foundation
import Testing
import TestSupport

/// `plugins/kubectl-iptaudit` against a fake `kubectl` first on PATH: it records every call's argv, serves
/// examples/pod.yaml to `get pod`, and for `debug` keeps the stdin it was handed and runs the debug build with the
/// arguments after `--` on it, as the debug container would. So the tests see the exact commands the plugin runs,
/// the manifest it passes on, and iptaudit's own verdict and exit status coming back through it.
@Suite struct KubectlPluginTests {
    static let plugin = Fixtures.repositoryPath("plugins/kubectl-iptaudit")
    static let manifest = Fixtures.repositoryPath("examples/pod.yaml")
    static let fake = #"""
    #!/usr/bin/env bash
    set -euo pipefail
    { for a in "$@"; do printf '%s\037' "$a"; done; printf '\n'; } >> "$FAKE_DIR/calls"
    while [[ $# -gt 0 ]]; do case "$1" in --namespace|--context) shift 2 ;; *) break ;; esac; done
    case "$1" in
      get) cat "$FAKE_MANIFEST" ;;
      debug)
        cat > "$FAKE_DIR/stdin"
        while [[ "$1" != -- ]]; do shift; done
        shift 2  # `--` and the image's `iptaudit`
        exec "$FAKE_IPTAUDIT" "$@" < "$FAKE_DIR/stdin" ;;
      *) exit 99 ;;
    esac
    """#

    struct Run {
        var result: CommandResult
        var calls: [[String]]
        var stdin: String?
    }

    static func run(_ args: [String], environment: [String: String] = [:]) throws -> Run {
        let dir = NSTemporaryDirectory() + "iptaudit-plugin-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: "\(dir)/bin", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try fake.write(toFile: "\(dir)/bin/kubectl", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: "\(dir)/bin/kubectl")
        let path = "\(dir)/bin:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        var env = ["PATH": path, "FAKE_DIR": dir, "FAKE_MANIFEST": manifest, "FAKE_IPTAUDIT": Binary.path, "IPTAUDIT_IMAGE": ""]
        env.merge(environment) { $1 }
        let result = try runCommand(["bash", plugin] + args, environment: env)
        let calls = ((try? String(contentsOfFile: "\(dir)/calls", encoding: .utf8)) ?? "").split(separator: "\n").map {
            $0.split(separator: "\u{1F}", omittingEmptySubsequences: false).dropLast().map(String.init)
        }
        return Run(result: result, calls: calls, stdin: try? String(contentsOfFile: "\(dir)/stdin", encoding: .utf8))
    }

    @Test(arguments: [("examples/healthy.save", Int32(0)), ("examples/broken.save", Int32(1))])
    func fetchesTheManifestAndRunsTheDebugRecipeWithItOnStdin(_ rules: String, _ status: Int32) throws {
        let input = Fixtures.repositoryPath(rules)
        let r = try Self.run(["-n", "shop", "reviews-7d9", "--image", "registry.example/iptaudit:1.0", "--", "--input", input])
        #expect(r.calls == [
            ["--namespace", "shop", "get", "pod", "reviews-7d9", "-o", "yaml"],
            ["--namespace", "shop", "debug", "reviews-7d9", "-i", "--quiet", "--profile=netadmin", "--target=istio-proxy",
             "--image=registry.example/iptaudit:1.0", "--", "iptaudit", "verify", "--pod", "-", "--input", input],
        ])
        #expect(r.stdin == (try String(contentsOfFile: Self.manifest, encoding: .utf8)))
        // iptaudit's report and exit status come back unchanged: what the binary says of the same pod and rules.
        let direct = try Binary.run(["verify", "--pod", Self.manifest, "--input", input])
        #expect(r.result.status == status && direct.status == status, "\(r.result.stderr)")
        #expect(r.result.stdout == direct.stdout)
        #expect(r.result.stderr == direct.stderr)
    }

    @Test func containerContextAndImageFromTheEnvironment() throws {
        let r = try Self.run(["--context=staging", "web-0", "-c", "sidecar", "--", "--format", "json", "--input",
                              Fixtures.repositoryPath("examples/healthy.save")],
                             environment: ["IPTAUDIT_IMAGE": "mirror.local/iptaudit:2"])
        #expect(r.result.status == 0, "\(r.result.stderr)")
        #expect(r.calls.map { Array($0.prefix(4)) } == [["--context", "staging", "get", "pod"], ["--context", "staging", "debug", "web-0"]])
        #expect(r.calls.last?.contains("--target=sidecar") == true && r.calls.last?.contains("--image=mirror.local/iptaudit:2") == true)
        #expect(r.result.stdout.hasPrefix("{"))
    }

    @Test(arguments: [[String](), ["pod-a"], ["pod-a", "pod-b", "--image", "i"], ["pod-a", "--image"], ["pod-a", "--image", "i", "--bogus"]])
    func usageErrorsExit64WithoutCallingKubectl(_ args: [String]) throws {
        let r = try Self.run(args)
        #expect(r.result.status == 64)
        #expect(r.result.stderr.hasPrefix("kubectl-iptaudit: ") && r.result.stderr.split(separator: "\n").count == 1, "\(r.result.stderr)")
        #expect(r.calls.isEmpty)
    }

    @Test func helpNamesTheRecipe() throws {
        let r = try Self.run(["--help"])
        #expect(r.result.status == 0)
        #expect(r.result.stdout.contains("kubectl iptaudit POD") && r.result.stdout.contains("--profile=netadmin"))
        #expect(r.calls.isEmpty)
    }

    /// shellcheck (Debian's package) on the plugin and the release scripts, where it is installed.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/shellcheck"), "shellcheck is not installed"))
    func shellcheckFindsNothing() throws {
        let files = ["plugins/kubectl-iptaudit", "scripts/release.sh", "scripts/image.sh", "scripts/image-rootfs.sh",
                     "scripts/measure-release.sh"].map(Fixtures.repositoryPath)
        let r = try runCommand(["shellcheck"] + files)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
    }
}
