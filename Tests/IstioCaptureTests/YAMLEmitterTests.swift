import Foundation
@testable import IstioCapture
import Testing
import TestSupport

/// `-o yaml` writes JSON documents through libyaml's emitter: every string must read back as that string, every
/// number as that number, for a YAML 1.1 reader (PyYAML, with its sexagesimals and timestamps) and for go-yaml as
/// Kubernetes reads it (our own composer's `resolved`).
@Suite struct YAMLEmitterTests {
    static let tricky = ["no", "Off", "YES", "y", "~", "null", "", " ", "10:30", "1:20:30", "0x1F", "0o17", "017", "1e5", ".5", "-1",
                         "+1", "1_000", ".inf", "-.Inf", ".NaN", "2026-11-29", "2026-11-29T10:00:00Z", "- x", "a: b", "a #b", "#c",
                         "@x", "`x", "*x", "&x", "!x", "%x", "|x", ">x", "'q'", "\"q\"", "{x}", "[x]", "x,y", "?x", "=", "<<",
                         "line\nbreak", "tab\there", "é ü 世界", "\u{1B}[31m", "10.0.0.1", "fd00::1", "0x0", "15001",
                         "-A OUTPUT -p tcp -j RETURN", "ISTIO_OUTPUT", "/etc/istio/pod", "true", "False"]

    static func document() throws -> String {
        let object: [String: Any] = [
            "strings": tricky, "numbers": [0, 1, -1, 15001, 4294967295, 9007199254740993], "booleans": [true, false],
            "nothing": NSNull(), "empty": [String: Int](), "none": [Int](),
            "nested": ["no": "yes", "10:30": ["0x1F": [true]]],
        ]
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    @Test func pyYAMLReadsBackExactlyTheJSONDocument() throws {
        let json = try Self.document()
        let yaml = try YAMLEmitter.emit(YAMLComposer(maxDepth: 64, maxNodes: .max).composeAll(json))
        let dir = NSTemporaryDirectory() + "iptaudit-yaml-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try json.write(toFile: dir + "/doc.json", atomically: true, encoding: .utf8)
        try yaml.write(toFile: dir + "/doc.yaml", atomically: true, encoding: .utf8)
        let r = try runCommand(["/usr/bin/python3", "-c", """
            import json, sys, yaml
            j = json.load(open(sys.argv[1])); y = yaml.safe_load(open(sys.argv[2]))
            a, b = json.dumps(j, sort_keys=True), json.dumps(y, sort_keys=True)
            if a != b:
                for x, z in zip(j.get("strings", []), y.get("strings", [])):
                    if x != z: print("string", repr(x), "read back as", repr(z))
                sys.exit(1)
            print("equal")
            """, dir + "/doc.json", dir + "/doc.yaml"])
        #expect(r.status == 0 && r.stdout == "equal\n", "\(r.stdout)\(r.stderr)\n\(yaml)")
    }

    @Test func goYAMLReadingAgreesAsKubernetesWouldReadIt() throws {
        let yaml = try YAMLEmitter.emit(YAMLComposer().composeAll(try Self.document()))
        let reread = try #require(try YAMLComposer().composeAll(yaml).first)
        let strings = try #require(reread.content.mappingValue("strings")?.sequence)
        #expect(strings.map(\.resolved) == Self.tricky.map { .string($0) })
        let numbers = try #require(reread.content.mappingValue("numbers")?.sequence)
        #expect(numbers.map(\.resolved) == [.int(0), .int(1), .int(-1), .int(15001), .int(4294967295), .int(9007199254740993)])
        #expect(!yaml.hasPrefix("{") && yaml.contains("\nnumbers:\n"))
    }

    @Test func unambiguousStringsArePlain() {
        for plain in ["ISTIO_OUTPUT", "nat", "/etc/istio", "policy ACCEPT", "eth0"] { #expect(YAMLEmitter.isUnambiguousString(plain), "\(plain)") }
        for quoted in ["no", "On", "null", "10:30", "0x1F", "1e5", "", "2026-11-29", "-A OUTPUT", "~"] { #expect(!YAMLEmitter.isUnambiguousString(quoted), "\(quoted)") }
    }
}

private extension YAMLNode.Content {
    func mappingValue(_ key: String) -> YAMLNode? {
        guard case .mapping(let pairs) = self else { return nil }
        return pairs.first { $0.key.text == key }?.value
    }
}
