import Foundation

/// Paths of the fixtures every test target shares (`Tests/Fixtures`).
public enum Fixtures {
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")
    /// The repository's root (for `examples/`, `docs/`, `scripts/`).
    public static let repository: URL = root.deletingLastPathComponent().deletingLastPathComponent()
    public static func repositoryPath(_ relative: String) -> String { repository.appendingPathComponent(relative).path }
    /// Istio's golden rule sets, with `cases.json` and the live `iptables-save` dumps (see its README).
    public static let istio = root.appendingPathComponent("istio")
    public static let loadGolden = istio.appendingPathComponent("load-golden.sh")

    public static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }
    public static func text(_ relative: String) throws -> String { try String(contentsOf: url(relative), encoding: .utf8) }

    /// Files under a fixture directory whose names end with `suffix`, sorted.
    public static func files(under relative: String, suffix: String) -> [URL] {
        let dir = url(relative)
        guard let e = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil) else { return [] }
        return e.compactMap { $0 as? URL }.filter { $0.lastPathComponent.hasSuffix(suffix) }
            .sorted { $0.path < $1.path }
    }
}

/// Result of a command run by a test.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs a command synchronously and captures its output. Tests use it to drive iptables and `ip netns`.
@discardableResult
public func runCommand(_ argv: [String], stdin: String? = nil, environment: [String: String]? = nil) throws -> CommandResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = argv
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment ?? [:] { env[k] = v }
    p.environment = env
    let out = Pipe(), err = Pipe(), inp = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = inp
    try p.run()
    if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
    try inp.fileHandleForWriting.close()
    // Read both pipes concurrently so a chatty command cannot block on a full pipe.
    nonisolated(unsafe) var errData = Data()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        errData = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    p.waitUntilExit()
    return CommandResult(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

/// Private network namespaces for integration tests (`ip netns add`), removed on deinit.
///
/// Tests that need one are enabled when namespaces work here, or when `IPTAUDIT_REQUIRE_NETNS=1`
/// (as in CI), in which case they run and fail loudly instead of skipping.
public final class TestNamespace: @unchecked Sendable {
    public let name: String
    public var path: String { "/run/netns/\(name)" }
    /// A private xtables lock, so parallel tests never contend for (or create) /run/xtables.lock.
    public let lockFile: String

    public init() throws {
        name = "iptaudit-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        lockFile = NSTemporaryDirectory() + "/\(name).lock"
        let r = try runCommand(["ip", "netns", "add", name])
        guard r.status == 0 else { throw TestNamespaceError.cannotCreate(r.stderr) }
    }

    deinit {
        _ = try? runCommand(["ip", "netns", "delete", name])
        try? FileManager.default.removeItem(atPath: lockFile)
    }

    /// Runs a command inside the namespace.
    @discardableResult
    public func run(_ argv: [String], stdin: String? = nil) throws -> CommandResult {
        try runCommand(["ip", "netns", "exec", name] + argv, stdin: stdin, environment: ["XTABLES_LOCKFILE": lockFile])
    }

    /// Runs a command inside the namespace and throws unless it exits 0.
    @discardableResult
    public func mustRun(_ argv: [String], stdin: String? = nil) throws -> String {
        let r = try run(argv, stdin: stdin)
        guard r.status == 0 else { throw TestNamespaceError.commandFailed(argv.joined(separator: " "), r.status, r.stderr) }
        return r.stdout
    }

    /// Whether tests needing a namespace should run: namespaces work, or CI demands them.
    public static let shouldRun: Bool = required || available
    public static let required: Bool = ProcessInfo.processInfo.environment["IPTAUDIT_REQUIRE_NETNS"] == "1"
    public static let available: Bool = {
        guard geteuid() == 0, let ns = try? TestNamespace() else { return false }
        _ = ns
        return true
    }()
    public static let skipReason = "needs root and `ip netns add` (run as root, or set IPTAUDIT_REQUIRE_NETNS=1 to make this a failure)"
}

public enum TestNamespaceError: Error, CustomStringConvertible {
    case cannotCreate(String)
    case commandFailed(String, Int32, String)
    public var description: String {
        switch self {
        case .cannotCreate(let e): "cannot create a network namespace: \(e)"
        case .commandFailed(let c, let s, let e): "`\(c)` exited \(s): \(e)"
        }
    }
}

/// Strips the `# Generated by` / `# Completed on` comment lines of iptables-save output.
public func withoutSaveComments(_ text: String) -> String {
    text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("#") }.joined(separator: "\n")
}
