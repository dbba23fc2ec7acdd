import Foundation
import NetfilterModel
import Testing
import TestSupport

/// Errors that echo input are one line of bounded length with control and bidi characters escaped, whichever
/// reader or parser produced them (issue 10).
@Suite("error messages are one bounded line")
struct OneLineMessageTests {
    /// Control, escape-sequence and bidi-override characters, and a long run, in one value.
    static let hostile = "\u{1B}[2J\u{7}\r\u{202E}evil\u{2066}\u{85}\t" + String(repeating: "Z", count: 20_000)

    static func expectOneBoundedLine(_ r: CommandResult, status: Int32, _ what: String) {
        #expect(r.status == status, "\(what): \(r.status) \(r.stderr.debugDescription)")
        let errorLines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("iptaudit:") || $0.hasPrefix("Error:") }
        #expect(errorLines.count == 1, "\(what): \(r.stderr.debugDescription)")
        for line in r.stderr.split(separator: "\n") {
            #expect(line.unicodeScalars.count <= MessageText.lineLimit, "\(what): a line of \(line.unicodeScalars.count)")
            #expect(!line.unicodeScalars.contains(where: MessageText.needsEscape), "\(what): \(line.debugDescription)")
        }
    }

    static func file(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "iptaudit-msg-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    @Test func aMalformedDumpLine() throws {
        let path = try Self.file("*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -p tcp --dport \(Self.hostile) -j ACCEPT\nCOMMIT\n")
        defer { unlink(path) }
        Self.expectOneBoundedLine(try Binary.run(["show", "--input", path]), status: 2, "dump")
    }

    @Test func aBadAnnotationInAManifest() throws {
        let manifest = """
            apiVersion: v1
            kind: Pod
            metadata:
              name: p
              annotations:
                traffic.sidecar.istio.io/includeInboundPorts: "80,\(Self.hostile.unicodeScalars.map { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) ? String(format: "\\u%04X", $0.value) : String($0) }.joined())"
            spec:
              containers:
              - name: istio-proxy
                image: docker.io/istio/proxyv2:1.26.8
            """
        let path = try Self.file(manifest)
        defer { unlink(path) }
        Self.expectOneBoundedLine(try Binary.run(["expect", "--pod", path]), status: 2, "manifest")
    }

    @Test func aYAMLSyntaxError() throws {
        let path = try Self.file("a: [\(Self.hostile)\n  b: {\n")
        defer { unlink(path) }
        Self.expectOneBoundedLine(try Binary.run(["expect", "--pod", path]), status: 2, "yaml")
    }

    /// A validation error from a command (istio-iptables arguments given on the command line): exit 64.
    @Test func aBadIstioArgument() throws {
        Self.expectOneBoundedLine(try Binary.run(["expect", "--istio-args", "--bogus-\(Self.hostile)"]), status: 64, "--istio-args")
    }

    /// swift-argument-parser's own parse errors echo the option too.
    @Test func anUnknownOption() throws {
        Self.expectOneBoundedLine(try Binary.run(["show", "--x\(Self.hostile)"]), status: 64, "unknown option")
    }

    /// A bundle that is not JSON, named by a hostile file name.
    @Test func aHostileFileName() throws {
        let dir = NSTemporaryDirectory() + "iptaudit-msg-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/\u{1B}[31m\u{202E}\n" + String(repeating: "n", count: 200)
        try "not json".write(toFile: path, atomically: false, encoding: .utf8)
        Self.expectOneBoundedLine(try Binary.run(["verify", "--bundle", path]), status: 2, "bundle name")
    }
}
