import CaptureVerifier
import NetfilterModel

/// `verify -o sarif`: SARIF 2.1.0 for code scanning. One reporting descriptor per finding kind (its help is the
/// kind's summary and docs section), one result per finding: at the rule's file and line when the rules were read
/// from `--input` text, always at the rule's logical place (`ipv4 nat OUTPUT#1`), with witness, path and fix in the
/// message. The findings are the report's, in its order, so SARIF agrees with the JSON and JUnit of the same run.
///
/// GitHub code scanning refuses a result without a file: a finding with no rule line of its own (a bundle's or a
/// live read's rules, a finding about the configuration) is placed at line 1 of `artifact`, the file the rules came
/// from, when there is one (`--bundle`, a single `--input`). A live read has none: its results carry the logical
/// location only, which other SARIF consumers accept.
public enum VerificationSARIF {
    public static let schemaURI = "https://json.schemastore.org/sarif-2.1.0.json"

    public static func render(_ report: VerificationReport, source: String, toolVersion: String, artifact: String? = nil) -> String {
        let kinds = FindingKind.all + report.findings.map(\.kind).filter { !FindingKind.all.contains($0) }
        let index = Dictionary(uniqueKeysWithValues: kinds.enumerated().map { ($1, $0) })
        let rules = kinds.map { kind in
            ReportingDescriptor(
                id: kind.rawValue,
                name: kind.rawValue.split(separator: "-").map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined(),
                shortDescription: Text(text: kind.summary),
                help: Text(text: "\(kind.summary) See \(kind.documentation)."),
                properties: .init(documentation: kind.documentation))
        }
        let results = report.findings.map { f in
            Result(ruleId: f.kind.rawValue, ruleIndex: index[f.kind]!, level: level(f.severity), message: Text(text: message(f)),
                   locations: location(f, artifact: artifact).map { [$0] }, partialFingerprints: ["iptaudit/v1": fingerprint(f)],
                   properties: .init(family: f.family.rawValue, obligation: f.obligation.rawValue, severity: f.severity.rawValue,
                                     witness: f.witness?.text, path: f.path.map(\.description), fix: f.fix, rule: f.ruleText))
        }
        let run = Run(tool: Tool(driver: Driver(name: "iptaudit", version: toolVersion, rules: rules)),
                      invocations: [Invocation(executionSuccessful: true)],
                      results: results, properties: .init(source: source, ok: report.ok))
        return RulesetJSON.encode(Log(schema: schemaURI, version: "2.1.0", runs: [run]))
    }

    static func level(_ s: Severity) -> String {
        switch s {
        case .error: "error"
        case .warning: "warning"
        case .info: "note"
        }
    }

    /// The finding's words, then what a reader needs to reproduce it: the packet, its path, the fix.
    static func message(_ f: Finding) -> String {
        var lines = [f.message]
        if let w = f.witness { lines.append("witness: \(w.text)") }
        if !f.path.isEmpty { lines.append("path: " + f.path.map(\.description).joined(separator: " → ")) }
        if let fix = f.fix { lines.append("fix: \(fix)") }
        return lines.joined(separator: "\n")
    }

    static func location(_ f: Finding, artifact: String?) -> Location? {
        let logical = f.location.isEmpty ? nil : [LogicalLocation(name: f.location, fullyQualifiedName: "\(f.family.rawValue) \(f.location)")]
        let place = f.ruleOrigin.map { ($0.file, $0.line) } ?? artifact.map { ($0, 1) }
        let physical = place.map {
            PhysicalLocation(artifactLocation: ArtifactLocation(uri: uri(forPath: $0.0)), region: Region(startLine: $0.1))
        }
        guard physical != nil || logical != nil else { return nil }
        return Location(physicalLocation: physical, logicalLocations: logical)
    }

    /// What stays the same while the defect does: not the rule's position (a rule inserted above renumbers every
    /// rule below, and code scanning would close and reopen each alert), but its chain, its text and the packet.
    static func fingerprint(_ f: Finding) -> String {
        [f.kind.rawValue, f.family.rawValue, f.table?.rawValue ?? "", f.chain?.rawValue ?? "", f.ruleText ?? "",
         f.witness?.text ?? f.message, f.obligation.rawValue].joined(separator: "|")
    }

    /// A file name as a URI reference: relative paths stay relative (code scanning resolves them against the
    /// checkout), absolute ones become `file://` URIs; anything outside RFC 3986's unreserved set and `/` is
    /// percent-encoded.
    public static func uri(forPath path: String) -> String {
        var out = path.hasPrefix("/") ? "file://" : ""
        for byte in path.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"):
                out.unicodeScalars.append(UnicodeScalar(byte))
            default:
                let hex = Array("0123456789ABCDEF")
                out += "%" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 15)])
            }
        }
        return out
    }

    struct Log: Encodable {
        var schema: String
        var version: String
        var runs: [Run]
        enum CodingKeys: String, CodingKey { case schema = "$schema", version, runs }
    }

    struct Run: Encodable {
        var tool: Tool
        var invocations: [Invocation]
        var results: [Result]
        var properties: RunProperties
    }

    struct RunProperties: Encodable {
        var source: String
        var ok: Bool
    }

    struct Invocation: Encodable {
        var executionSuccessful: Bool
    }

    struct Tool: Encodable {
        var driver: Driver
    }

    struct Driver: Encodable {
        var name: String
        var version: String
        var rules: [ReportingDescriptor]
    }

    struct ReportingDescriptor: Encodable {
        var id: String
        var name: String
        var shortDescription: Text
        var help: Text
        var properties: DescriptorProperties
    }

    struct DescriptorProperties: Encodable {
        var documentation: String
    }

    struct Text: Encodable {
        var text: String
    }

    struct Result: Encodable {
        var ruleId: String
        var ruleIndex: Int
        var level: String
        var message: Text
        /// Absent for a finding about no rule and no file (a live read's missing rules, an observed connection):
        /// SARIF's location object says nothing when empty.
        var locations: [Location]?
        var partialFingerprints: [String: String]
        var properties: ResultProperties
    }

    struct ResultProperties: Encodable {
        var family: String
        var obligation: String
        var severity: String
        var witness: String?
        var path: [String]
        var fix: String?
        var rule: String?
    }

    struct Location: Encodable {
        var physicalLocation: PhysicalLocation?
        var logicalLocations: [LogicalLocation]?
    }

    struct PhysicalLocation: Encodable {
        var artifactLocation: ArtifactLocation
        var region: Region
    }

    struct ArtifactLocation: Encodable {
        var uri: String
    }

    struct Region: Encodable {
        var startLine: Int
    }

    struct LogicalLocation: Encodable {
        var name: String
        var fullyQualifiedName: String
    }
}
