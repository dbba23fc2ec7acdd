import Foundation
@testable import RuleReaders
import Testing

/// The pieces of `OutputFile` and `Capabilities` a CLI test cannot reach directly.
@Suite("OutputFile and Capabilities")
struct OutputFileTests {
    @Test(arguments: [("bundle.json", "."), ("dir/bundle.json", "dir"), ("/bundle.json", "/"), ("/a/b/c.json", "/a/b")])
    func theTemporaryFileGoesInTheTargetsDirectory(_ path: String, _ directory: String) {
        #expect(OutputFile.directoryName(path) == directory)
    }

    @Test func aRegularFileIsReplacedAndKeepsNoOtherName() throws {
        let dir = NSTemporaryDirectory() + "iptaudit-of-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/out"
        // A second name for the old file must keep the old bytes: the name is replaced, not the file written into.
        try "old".write(toFile: path, atomically: false, encoding: .utf8)
        #expect(link(path, dir + "/other") == 0)
        try OutputFile.replace(path, with: Array("new".utf8))
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "new")
        #expect(try String(contentsOfFile: dir + "/other", encoding: .utf8) == "old")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir)) == ["out", "other"])
    }

    @Test func aMissingDirectoryIsAFailureNamingIt() throws {
        let missing = NSTemporaryDirectory() + "iptaudit-none-\(UInt32.random(in: 0...UInt32.max))/out"
        #expect(throws: OutputFile.Failure.self) { try OutputFile.replace(missing, with: [1]) }
    }

    @Test func effectiveCapabilitiesAreReadFromCapEff() throws {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t0000000000003000\nCapBnd:\t000001ffffffffff\n"
        let caps = try #require(Capabilities.parse(status))
        #expect(caps.holds(Capabilities.netAdmin) && caps.holds(Capabilities.netRaw))
        #expect(!caps.holds(21))
        #expect(Capabilities.parse("Name:\tx\n") == nil)
        // This process's own line parses too.
        #expect(Capabilities.current() != nil)
    }
}
