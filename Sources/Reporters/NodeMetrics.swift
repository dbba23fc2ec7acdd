import CaptureVerifier
import NetfilterModel

/// `iptaudit node --output prometheus`: the audit in Prometheus' text exposition format (version 0.0.4), for a
/// node-exporter textfile or an HTTP `/metrics`. A pure function of the audit, so a server renders the last
/// audit without redoing it. Every metric is a gauge of the last audit; docs/running-in-a-cluster.md says what
/// each means.
public enum NodeMetrics {
    /// The content type to serve it with.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public static func render(_ audit: NodeAudit) -> String {
        var out = ""
        func family(_ name: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) gauge\n"
        }
        func sample(_ name: String, _ labels: [(String, String)], _ value: String) {
            let text = labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",")
            out += name + (labels.isEmpty ? "" : "{" + text + "}") + " " + value + "\n"
        }
        let judged = audit.pods.filter { $0.mode != .notMeshed }

        family("iptaudit_pod_capture_ok", "1 when the meshed pod's capture is proven (no error finding), 0 when it has error findings or could not be judged; not-meshed pods are left out.")
        for pod in judged {
            sample("iptaudit_pod_capture_ok", labels(pod), pod.verdict == .proven ? "1" : "0")
        }
        family("iptaudit_pod_findings", "Findings of the pod's verification, by kind and severity (only non-zero counts).")
        for pod in judged {
            guard let report = pod.report else { continue }
            var counts: [String: [String: Int]] = [:]
            for f in report.findings { counts[f.kind.rawValue, default: [:]][f.severity.rawValue, default: 0] += 1 }
            for kind in counts.keys.sorted() {
                for severity in counts[kind]!.keys.sorted() {
                    sample("iptaudit_pod_findings", labels(pod) + [("kind", kind), ("severity", severity)], String(counts[kind]![severity]!))
                }
            }
        }
        family("iptaudit_pods", "Network namespaces on the node (the host's left out), by mode.")
        for mode in PodMeshMode.allCases {
            sample("iptaudit_pods", [("mode", mode.rawValue)], String(audit.pods.filter { $0.mode == mode }.count))
        }
        family("iptaudit_namespaces_unreadable", "Network namespaces that could not be read or judged in the last audit.")
        sample("iptaudit_namespaces_unreadable", [], String(audit.unreadableCount))
        family("iptaudit_audit_duration_seconds", "Wall-clock time of the last audit.")
        sample("iptaudit_audit_duration_seconds", [], NodeReport.seconds(audit.seconds))
        family("iptaudit_audit_ok", "1 when no meshed pod has an error finding and every namespace was judged.")
        sample("iptaudit_audit_ok", [], audit.hasError || audit.unreadableCount > 0 ? "0" : "1")
        if let finished = audit.finishedAt {
            family("iptaudit_last_audit_timestamp_seconds", "When the last audit finished, in seconds since the epoch.")
            sample("iptaudit_last_audit_timestamp_seconds", [], NodeReport.seconds(finished))
        }
        return out
    }

    /// The pod's labels: Kubernetes namespace and name (empty when not known), mode, and the network namespace's
    /// inode, which tells apart pods of unknown name.
    static func labels(_ pod: PodAudit) -> [(String, String)] {
        [("namespace", pod.podNamespace ?? ""), ("pod", pod.podName ?? ""), ("mode", pod.mode.rawValue), ("netns", String(pod.inode))]
    }

    /// Label values escape backslash, double quote and line feed (the exposition format's three).
    static func escape(_ value: String) -> String {
        var out = ""
        for ch in value.unicodeScalars {
            switch ch {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }
}
