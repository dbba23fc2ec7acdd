import Foundation
import Testing
import TestSupport

/// What the fuzz harness feeds and how: each reader behind the command that reads it.
enum FuzzTarget: String, CaseIterable, Sendable {
    case saveText = "save", manifest, bundle

    func arguments(_ path: String) -> [String] {
        switch self {
        case .saveText: ["show", "--input", path, "--format", "save"]
        case .manifest: ["expect", "--pod", path]
        case .bundle: ["verify", "--bundle", path]
        }
    }

    /// Seeds from the repository's corpus (bundles are made by the code from it), in a fixed order.
    func seeds(in scratch: URL) throws -> [[UInt8]] {
        let repo = Fixtures.repository
        func bytes(_ url: URL) throws -> [UInt8] { Array(try Data(contentsOf: url)) }
        switch self {
        case .saveText:
            var files = ["examples/healthy.save", "examples/broken.save", "examples/ambient.save", "examples/ambient-broken.save",
                         "Tests/Fixtures/extensions/ipv4.save", "Tests/Fixtures/extensions/ipv6.save"].map { repo.appendingPathComponent($0) }
            let goldens = FileManager.default.enumerator(at: Fixtures.istio, includingPropertiesForKeys: nil)?
                .compactMap { $0 as? URL }.filter { $0.lastPathComponent.hasSuffix(".golden") }
                .sorted { $0.path < $1.path } ?? []
            files += stride(from: 0, to: goldens.count, by: max(1, goldens.count / 12)).map { goldens[$0] }
            return try files.map(bytes)
        case .manifest:
            let injected = Fixtures.istio.appendingPathComponent("master/injected-workloads")
            let files = try FileManager.default.contentsOfDirectory(at: injected, includingPropertiesForKeys: nil)
                .sorted { $0.path < $1.path }
            return try ([repo.appendingPathComponent("examples/pod.yaml")] + files).map(bytes)
        case .bundle:
            var out: [[UInt8]] = []
            for (save, pod) in [("examples/healthy.save", "examples/pod.yaml"), ("examples/broken.save", nil)] {
                let path = scratch.appendingPathComponent("seed-\(out.count).json").path
                var args = ["capture", "--input", repo.appendingPathComponent(save).path, "-w", path]
                if let pod { args += ["--pod", repo.appendingPathComponent(pod).path] }
                let r = try runBounded(args, seconds: 120)
                guard r.status == 0 else { throw TestNamespaceError.commandFailed("iptaudit capture", r.status, r.stderr) }
                out.append(try bytes(URL(fileURLWithPath: path)))
            }
            return out
        }
    }
}

/// How one input ended: a status 0/1/2 is an answer; a signal is a crash; the kill-timeout is a hang.
enum FuzzVerdict: Equatable {
    case answered, crashed(Int32), hung

    init(status: Int32) {
        switch status {
        case 0, 1, 2: self = .answered
        case 124, 137: self = .hung  // timeout(1): the child outlived its kill-timeout
        default: self = .crashed(status)
        }
    }
}

/// The seeded mutation fuzzer (docs/robustness.md). Every input runs in a child process of the built binary
/// under a kill-timeout and an address-space limit: a crash or a hang ends the child, never the suite, and the
/// input is kept for a regression fixture. `IPTAUDIT_FUZZ_ITERATIONS` and `IPTAUDIT_FUZZ_SEED` run it longer or
/// differently (`scripts/fuzz.sh`); CI runs the fixed budget below.
@Suite(.serialized) struct FuzzTests {
    static let environment = ProcessInfo.processInfo.environment
    static let iterations = environment["IPTAUDIT_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 300
    static let seed = environment["IPTAUDIT_FUZZ_SEED"].flatMap(UInt64.init) ?? 10
    /// Far above any answer (the slowest mutated input takes a few seconds): only a hang reaches it.
    static let killSeconds = 60

    @Test func mutatedCorpusInputsNeverCrashOrHang() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("iptaudit-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        var seeds: [FuzzTarget: [[UInt8]]] = [:]
        for target in FuzzTarget.allCases { seeds[target] = try target.seeds(in: scratch) }

        // Inputs are drawn first, in order, so the run is the same whatever the scheduling below.
        var rng = SplitMix64(seed: Self.seed)
        var inputs: [(target: FuzzTarget, path: String)] = []
        for i in 0..<Self.iterations {
            let target = FuzzTarget.allCases[i % FuzzTarget.allCases.count]
            var bytes = seeds[target]!.randomElement(using: &rng)!
            for _ in 0..<Int.random(in: 1...3, using: &rng) { bytes = Mutation.allCases.randomElement(using: &rng)!.apply(bytes, &rng) }
            let path = scratch.appendingPathComponent("\(i)-\(target.rawValue)").path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            inputs.append((target, path))
        }

        let start = Date()
        let verdicts = Verdicts(count: inputs.count)
        let drawn = inputs
        DispatchQueue.concurrentPerform(iterations: drawn.count) { i in
            let r = try? runBounded(drawn[i].target.arguments(drawn[i].path), seconds: Self.killSeconds, memoryMiB: 4096)
            verdicts.set(i, r.map { FuzzVerdict(status: $0.status) } ?? .crashed(-1))
        }
        let elapsed = Date().timeIntervalSince(start)

        let kept = FileManager.default.temporaryDirectory.appendingPathComponent("iptaudit-fuzz-findings")
        var crashes = 0, hangs = 0
        for (i, verdict) in verdicts.all.enumerated() where verdict != .answered {
            if verdict == .hung { hangs += 1 } else { crashes += 1 }
            try? FileManager.default.createDirectory(at: kept, withIntermediateDirectories: true)
            let copy = kept.appendingPathComponent(URL(fileURLWithPath: inputs[i].path).lastPathComponent)
            try? FileManager.default.removeItem(at: copy)
            try? FileManager.default.copyItem(atPath: inputs[i].path, toPath: copy.path)
            Issue.record("\(verdict) on \(inputs[i].target.arguments(copy.path).joined(separator: " ")) (seed \(Self.seed), input \(i)); keep it under Tests/Fixtures/fuzz/\(inputs[i].target.rawValue)/ once fixed")
        }
        print("fuzz: \(inputs.count) inputs (seed \(Self.seed)) in \(String(format: "%.1f", elapsed)) s: \(crashes) crashes, \(hangs) hangs")
    }

    /// Inputs that once crashed or hung, kept by target (Tests/Fixtures/fuzz/<target>/), replayed every run.
    static var regressionFixtures: [(FuzzTarget, String)] {
        FuzzTarget.allCases.flatMap { target in
            let dir = Fixtures.root.appendingPathComponent("fuzz/\(target.rawValue)")
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            return names.sorted().map { (target, dir.appendingPathComponent($0).path) }
        }
    }

    @Test(arguments: regressionFixtures.map { "\($0.0.rawValue)/\(URL(fileURLWithPath: $0.1).lastPathComponent)" })
    func keptFindingsStayFixed(_ name: String) throws {
        let (target, path) = try #require(Self.regressionFixtures.first { "\($0.0.rawValue)/\(URL(fileURLWithPath: $0.1).lastPathComponent)" == name })
        let r = try runBounded(target.arguments(path), seconds: Self.killSeconds, memoryMiB: 4096)
        #expect(FuzzVerdict(status: r.status) == .answered, "status \(r.status): \(r.stderr.prefix(500))")
    }
}

/// Verdicts written from concurrent children.
final class Verdicts: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [FuzzVerdict]
    init(count: Int) { values = Array(repeating: .answered, count: count) }
    func set(_ i: Int, _ v: FuzzVerdict) { lock.withLock { values[i] = v } }
    var all: [FuzzVerdict] { lock.withLock { values } }
}
