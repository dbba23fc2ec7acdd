import CaptureVerifier
import Foundation
import IstioCapture
import NetfilterModel
import Reporters
import RuleReaders
import Testing
import TestSupport

/// The three renderings of a verification report, checked by real consumers where one exists:
/// JUnit by python3-junitparser, JSON against the documented JSON Schema (docs/verify-report.schema.json).
@Suite struct VerificationReportTests {
    static let repo = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()

    /// The README's example pod: healthy as Istio installs it, and broken (a foreign RETURN above ISTIO_OUTPUT,
    /// the proxy GID exemption deleted).
    static func example(_ name: String) throws -> (VerificationReport, Ruleset) {
        let text = try String(contentsOf: repo.appendingPathComponent("examples/\(name).save"), encoding: .utf8)
        let pod = try String(contentsOf: repo.appendingPathComponent("examples/pod.yaml"), encoding: .utf8)
        let tables = try SaveTextParser(fileName: name).parse(text)
        let ruleset = Ruleset(tables: tables, backends: [.ipv4: .text])
        var config = try PodManifest(yaml: pod).captureConfiguration()
        if name.hasPrefix("ambient") {
            // istio-cni's in-pod rules for an ambient pod (1.29): ambient's obligations and kinds.
            config = CaptureConfiguration()
            config.istioVersion = IstioVersion(1, 29, 0)
            config.ambient = AmbientSettings()
        }
        return (verify(ruleset, configuration: config), ruleset)
    }

    static func python(_ script: String, _ args: [String]) throws -> CommandResult {
        try runCommand(["/usr/bin/python3", "-c", script] + args)
    }

    static func temp(_ text: String, _ ext: String) throws -> String {
        let path = NSTemporaryDirectory() + "/iptaudit-report-\(UUID().uuidString).\(ext)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func brokenExampleHasTheTwoPlantedDefects() throws {
        let (report, _) = try Self.example("broken")
        #expect(!report.ok)
        #expect(Set(report.errors.map(\.kind)) == [.foreignRule, .ownerMatchGap])
        let (healthy, _) = try Self.example("healthy")
        #expect(healthy.ok && healthy.errors.isEmpty)
    }

    @Test(arguments: ["healthy", "broken"])
    func junitIsAcceptedByJunitparser(_ name: String) throws {
        let (report, _) = try Self.example(name)
        let file = try Self.temp(VerificationJUnit.render(report, source: "examples/\(name).save"), "xml")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let script = """
            import sys, junitparser
            xml = junitparser.JUnitXml.fromfile(sys.argv[1])
            cases = [c for s in xml for c in s]
            failed = [c for c in cases if any(isinstance(r, junitparser.Failure) for r in c.result)]
            skipped = [c for c in cases if any(isinstance(r, junitparser.Skipped) for r in c.result)]
            print(len(cases), len(failed), len(skipped), ",".join(sorted({r.type for c in failed for r in c.result})), sep="|")
            """
        let r = try Self.python(script, [file])
        #expect(r.status == 0, "\(r.stderr)")
        let fields = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "|", omittingEmptySubsequences: false)
        #expect(fields.count == 4)
        #expect(Int(fields[0]) == report.obligations.count)
        #expect(Int(fields[1]) == report.obligations.filter { $0.status == .failed }.count)
        #expect(Int(fields[2]) == report.obligations.filter { $0.status == .notApplicable }.count)
        if name == "broken" {
            #expect(fields[3].split(separator: ",").map(String.init).sorted() == ["foreign-rule", "owner-match-gap"])
        } else {
            #expect(fields[1] == "0")
        }
    }

    @Test(arguments: ["healthy", "broken", "ambient", "ambient-broken"])
    func jsonMatchesTheDocumentedSchema(_ name: String) throws {
        let (report, ruleset) = try Self.example(name)
        let json = VerificationJSON.render(report, ruleset: ruleset, source: "examples/\(name).save")
        let file = try Self.temp(json, "json")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let schema = Self.repo.appendingPathComponent("docs/verify-report.schema.json").path
        let script = """
            import json, sys, jsonschema
            jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))
            print("valid")
            """
        let r = try Self.python(script, [file, schema])
        #expect(r.status == 0 && r.stdout.contains("valid"), "\(r.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(doc["ok"] as? Bool == report.ok)
        #expect((doc["findings"] as? [Any])?.count == report.findings.count)
        #expect((doc["walks"] as? [Any])?.count == report.walks.count && !report.walks.isEmpty)
    }

    /// A finding at a native nftables rule names its kernel handle (`ruleHandle`); the schema knows the field.
    @Test func aNativeRulesHandleMatchesTheDocumentedSchema() throws {
        var (report, ruleset) = try Self.example("broken")
        try #require(!report.findings.isEmpty)
        report.findings[0].ruleHandle = 7
        let json = VerificationJSON.render(report, ruleset: ruleset, source: "examples/broken.save")
        #expect(json.contains("\"ruleHandle\":7") || json.contains("\"ruleHandle\" : 7"))
        let file = try Self.temp(json, "json")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let schema = Self.repo.appendingPathComponent("docs/verify-report.schema.json").path
        let r = try Self.python("import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))); print('valid')", [file, schema])
        #expect(r.status == 0 && r.stdout.contains("valid"), "\(r.stderr)")
    }

    @Test func schemaRejectsADocumentMissingAField() throws {
        // The validator really validates: a report without `ok` is refused.
        let (report, ruleset) = try Self.example("healthy")
        var doc = try #require(try JSONSerialization.jsonObject(with: Data(VerificationJSON.render(report, ruleset: ruleset, source: "x").utf8)) as? [String: Any])
        doc["ok"] = nil
        let file = try Self.temp(String(decoding: try JSONSerialization.data(withJSONObject: doc), as: UTF8.self), "json")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let schema = Self.repo.appendingPathComponent("docs/verify-report.schema.json").path
        let r = try Self.python("import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))", [file, schema])
        #expect(r.status != 0)
    }

    @Test func textReportMarksTheDecidingRulesAndExplainsEachFinding() throws {
        let (report, ruleset) = try Self.example("broken")
        let text = VerificationText.render(report, ruleset: ruleset, source: "examples/broken.save")
        #expect(text.contains("-A OUTPUT -p tcp -m tcp --dport 5432 -j RETURN   ◀ [1] foreign-rule"))
        #expect(text.contains("witness: TCP from UID 1000 to 10.0.0.2:5432 out eth0"))
        #expect(text.contains("path:    nat OUTPUT → nat OUTPUT#1 RETURN"))
        #expect(text.contains("Capture NOT proven"))
        #expect(!text.contains("\u{1B}["), "no colour unless asked")
        #expect(VerificationText.render(report, ruleset: ruleset, source: "x", style: .init(color: true)).contains("\u{1B}[1;31m"))
        let (healthy, healthyRules) = try Self.example("healthy")
        let clean = VerificationText.render(healthy, ruleset: healthyRules, source: "examples/healthy.save")
        #expect(clean.contains("Capture proven"))
        #expect(!clean.contains("Findings"))
    }
}
