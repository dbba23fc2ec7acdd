import CaptureVerifier

/// `verify --format junit`: one testcase per obligation, so passes are visible too; a failed obligation's
/// findings go into its `<failure>`, warnings into `<system-out>`, not-applicable ones are `<skipped>`.
public enum VerificationJUnit {
    /// `command` names the suite: `verify`, or `observe` (whose report is the same value).
    public static func render(_ report: VerificationReport, source: String, command: String = "verify") -> String {
        let failures = report.obligations.filter { $0.status == .failed }.count
        var xml = #"<?xml version="1.0" encoding="UTF-8"?>"# + "\n"
        xml += #"<testsuites name="iptaudit" tests="\#(report.obligations.count)" failures="\#(failures)" errors="0">"# + "\n"
        xml += suite(report, name: "iptaudit \(command): \(source)")
        xml += "</testsuites>\n"
        return xml
    }

    /// One `<testsuite>` element (indented two spaces): `verify`'s document, and one pod of `node`'s.
    static func suite(_ report: VerificationReport, name: String) -> String {
        let failures = report.obligations.filter { $0.status == .failed }.count
        let skipped = report.obligations.filter { $0.status == .notApplicable }.count
        var xml = #"  <testsuite name="\#(escape(name))" tests="\#(report.obligations.count)" failures="\#(failures)" errors="0" skipped="\#(skipped)">"# + "\n"
        xml += "    <properties>\n"
        for (i, line) in report.configuration.enumerated() {
            xml += #"      <property name="configuration.\#(i + 1)" value="\#(escape(line))"/>"# + "\n"
        }
        xml += "    </properties>\n"
        for o in report.obligations {
            xml += #"    <testcase classname="iptaudit.capture" name="\#(escape(o.id.rawValue)): \#(escape(o.title))">"# + "\n"
            switch o.status {
            case .notApplicable:
                xml += #"      <skipped message="\#(escape(o.notes.first ?? "not applicable"))"/>"# + "\n"
            case .failed:
                let errors = o.findings.filter { $0.severity == .error }
                let first = errors.first.map { "\($0.kind): \($0.message)" } ?? "failed"
                xml += #"      <failure type="\#(escape(errors.first?.kind.rawValue ?? "failure"))" message="\#(escape(first))">"#
                xml += escape(errors.map(details).joined(separator: "\n\n")) + "</failure>\n"
            case .passed:
                break
            }
            let other = o.findings.filter { $0.severity != .error }
            if !other.isEmpty || !o.proven.isEmpty {
                let text = (o.proven.map { "proven: " + $0 } + other.map(details)).joined(separator: "\n")
                xml += "      <system-out>" + escape(text) + "</system-out>\n"
            }
            xml += "    </testcase>\n"
        }
        xml += "  </testsuite>\n"
        return xml
    }

    static func details(_ f: Finding) -> String {
        var lines = ["\(f.severity.rawValue) \(f.kind) (\(f.family)) at \(f.location)", f.message]
        if let r = f.ruleText { lines.append("rule: " + r + (f.ruleOrigin.map { " (\($0))" } ?? "")) }
        if let w = f.witness { lines.append("witness: " + w.text + " -> " + w.verdict.description) }
        if !f.path.isEmpty { lines.append("path: " + f.path.map(\.description).joined(separator: " → ")) }
        if let fix = f.fix { lines.append("fix: " + fix) }
        return lines.joined(separator: "\n")
    }

    /// XML attribute/text escaping; control characters other than tab/newline are not allowed in XML 1.0.
    static func escape(_ s: String) -> String {
        var out = ""
        for ch in s.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\n", "\t": out.unicodeScalars.append(ch)
            default:
                if ch.value < 0x20 { out += "?" } else { out.unicodeScalars.append(ch) }
            }
        }
        return out
    }
}
