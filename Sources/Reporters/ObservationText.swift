import CaptureVerifier
import NetfilterModel

/// The human report of `iptaudit observe`: each connection with its evidence and verdict, then the findings
/// explained as `verify` explains them (witness, the walk the rules give it, fix), and, on a privileged run,
/// the rule proof's findings beside them.
public enum ObservationText {
    public static func render(_ report: ObservationReport, ruleset: Ruleset?, source: String,
                              style: VerificationText.Style = .init(color: false)) -> String {
        let v = report.verification
        var out: [String] = []
        out.append(style.bold("iptaudit observe") + " — \(source)" + (report.samples > 1 ? " (\(report.samples) samples)" : ""))
        for line in v.configuration { out.append("  " + line) }
        out.append("  rules: " + (ruleset == nil ? "not readable here; connections judged by the rules for this configuration"
            : "read; connections judged by the rules for this configuration and by the live rules"))
        out.append("")

        out.append(style.bold("Connections"))
        if report.connections.isEmpty { out.append("  (none)") }
        let width = ObservedConnection.Classification.allCases.map(\.rawValue.count).max() ?? 0
        for c in report.connections {
            let label = c.classification.rawValue.padding(width)
            let painted = c.classification == .bypassingUnexpected || c.classification == .capturedUnexpected
                ? style.paint(label, "1;31") : label
            out.append("  \(painted)  \(c.direction == .outbound ? "out" : "in ") \(c.text)")
            out.append("  \(String(repeating: " ", count: width))      " + evidence(c))
            if let e = c.expected, c.evidence != .proxy { out.append("  \(String(repeating: " ", count: width))      expected: " + e.disposition.summary) }
            if let l = c.live, c.evidence != .proxy { out.append("  \(String(repeating: " ", count: width))      live rules: " + l.disposition.summary) }
        }
        out.append("")

        let numbered = Array(v.findings.enumerated())
        if !numbered.isEmpty {
            if let ruleset { out += VerificationText.listing(numbered, ruleset: ruleset, style: style) }
            out.append(style.bold("Findings"))
            out.append("")
            for (i, f) in numbered { out += VerificationText.explain(f, number: i + 1, style: style) }
        }

        let errors = v.findings.filter { $0.severity == .error }.count
        let warnings = v.findings.filter { $0.severity == .warning }.count
        let judged = report.connections.filter { $0.evidence != .proxy }.count
        if v.ok {
            out.append(style.ok("No connection contradicts capture") + ": \(judged) connection\(judged == 1 ? "" : "s") judged"
                + (warnings > 0 ? ", \(warnings) warning\(warnings == 1 ? "" : "s")" : "") + ".")
            for o in v.obligations where o.status == .passed {
                for p in o.proven { out.append("  ✓ " + p) }
            }
        } else {
            out.append(style.paint("Capture contradicted", "1;31") + ": \(errors) error\(errors == 1 ? "" : "s"), "
                + "\(warnings) warning\(warnings == 1 ? "" : "s"); \(judged) connection\(judged == 1 ? "" : "s") judged.")
        }
        return out.joined(separator: "\n") + "\n"
    }

    /// What the sockets show, in a few words.
    static func evidence(_ c: ObservedConnection) -> String {
        switch c.evidence {
        case .throughProxy:
            if let p = c.proxySocket {
                return c.direction == .outbound ? "through the proxy: its socket \(p.local) has this connection's source as peer"
                    : "through the proxy: the peer is its socket (UID \(p.uid))"
            }
            return "through the proxy: the peer is Envoy's forward address"
        case .direct: return c.direction == .outbound ? "direct: no proxy socket holds the other end" : "direct: the peer is the client itself"
        case .local: return "inside the pod: both ends are its own"
        case .proxy: return "the proxy's own connection"
        case .unobservable: return "UDP: a redirected datagram leaves no socket to see"
        }
    }
}

extension String {
    /// Left-aligned in `width` columns.
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
