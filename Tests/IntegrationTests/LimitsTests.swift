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
}

@Suite struct LimitsTests {
    @Test func aFiftyThousandDeepJumpChainIsAFindingNotACrash() throws {
        let file = try TemporaryFile("chain.save", contents: try HostileInput.deepJumpChain(50_000))
        let r = try runBounded(["verify", "--input", file.path])
        #expect(r.status == 1, "\(r.stderr.prefix(2000))")
        #expect(r.stdout.contains("nested more than 64 deep"))
    }
}
