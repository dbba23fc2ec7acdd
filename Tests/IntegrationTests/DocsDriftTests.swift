import Foundation
import Testing
import TestSupport

/// docs/examples.md is what `scripts/doc-examples.sh` prints from real runs (the native nftables section runs live,
/// as root), and the README's excerpts are taken from it: a change of output that is not regenerated fails here.
@Suite struct DocsDriftTests {
    static let repository = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()

    @Test("docs/examples.md equals a fresh run of scripts/doc-examples.sh", .enabled(if: TestNamespace.shouldRun, netnsSkip))
    func examplesAreCurrent() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("iptaudit-examples-\(getpid()).md")
        defer { try? FileManager.default.removeItem(at: out) }
        let r = try runCommand(["env", "IPTAUDIT_BIN=\(Binary.path)", "DOC_OUT=\(out.path)", "bash",
                                Self.repository.appendingPathComponent("scripts/doc-examples.sh").path])
        try #require(r.status == 0, "\(r.stderr)")
        let fresh = try String(contentsOf: out, encoding: .utf8)
        let committed = try String(contentsOf: Self.repository.appendingPathComponent("docs/examples.md"), encoding: .utf8)
        let a = fresh.split(separator: "\n", omittingEmptySubsequences: false)
        let b = committed.split(separator: "\n", omittingEmptySubsequences: false)
        let first = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }
        #expect(fresh == committed, "docs/examples.md drifted (run scripts/doc-examples.sh); first difference at line \((first?.offset ?? min(a.count, b.count)) + 1): \(first.map { "\($0.element.1) → \($0.element.0)" } ?? "length \(b.count) → \(a.count)")")
    }

    @Test("every line of the README's command examples appears in docs/examples.md")
    func readmeExcerptsComeFromExamples() throws {
        let readme = try String(contentsOf: Self.repository.appendingPathComponent("README.md"), encoding: .utf8)
        let examples = Set(try String(contentsOf: Self.repository.appendingPathComponent("docs/examples.md"), encoding: .utf8)
            .split(separator: "\n").map(String.init))
        // Blocks that start with `$ iptaudit` are output excerpts; "..." marks lines left out.
        var block: [String]?
        var blocks: [[String]] = []
        for line in readme.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("```") {
                if let b = block { blocks.append(b); block = nil } else { block = [] }
                continue
            }
            block?.append(line)
        }
        let excerpts = blocks.filter { $0.first?.hasPrefix("$ iptaudit") == true }
        #expect(excerpts.count >= 4)
        for b in excerpts {
            for line in b where line != "..." && !line.isEmpty {
                #expect(examples.contains(line), "README line not in docs/examples.md: \(line)")
            }
        }
    }
}
