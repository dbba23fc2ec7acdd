import CaptureVerifier
import NetfilterModel

/// `verify -o github`: one GitHub Actions workflow command per finding (`::error file=…,line=…,title=…::message`),
/// which the runner turns into annotations on the file and line the rule was read from. A finding without a file
/// (a live read) is annotated on the run. The last line is the verdict, as plain text for the log.
public enum GitHubAnnotations {
    public static func render(_ report: VerificationReport, source: String) -> String {
        var out = ""
        for f in report.findings {
            var properties: [String] = []
            if let origin = f.ruleOrigin {
                properties.append("file=" + escapeProperty(origin.file))
                properties.append("line=\(origin.line)")
            }
            let place = f.location.isEmpty ? "" : " at \(f.location)"
            properties.append("title=" + escapeProperty("iptaudit \(f.kind) (\(f.family.rawValue))\(place)"))
            out += "::\(command(f.severity)) \(properties.joined(separator: ","))::\(escapeData(VerificationSARIF.message(f)))\n"
        }
        let errors = report.findings.filter { $0.severity == .error }.count
        let warnings = report.findings.filter { $0.severity == .warning }.count
        out += report.ok
            ? "iptaudit: capture proven for \(source) (\(warnings) warning\(warnings == 1 ? "" : "s"))\n"
            : "iptaudit: capture NOT proven for \(source): \(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")\n"
        return out
    }

    static func command(_ s: Severity) -> String {
        switch s {
        case .error: "error"
        case .warning: "warning"
        case .info: "notice"
        }
    }

    /// The runner's escaping of a command's message (actions/toolkit `escapeData`).
    static func escapeData(_ s: String) -> String {
        s.replacing("%", with: "%25").replacing("\r", with: "%0D").replacing("\n", with: "%0A")
    }

    /// The runner's escaping of a property value (actions/toolkit `escapeProperty`).
    static func escapeProperty(_ s: String) -> String {
        escapeData(s).replacing(":", with: "%3A").replacing(",", with: "%2C")
    }
}
