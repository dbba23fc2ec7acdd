import CaptureVerifier
import NetfilterModel

/// `iptaudit node`'s table: one line per namespace (pod, mode, backend, verdict, errors, warnings, first finding),
/// then a summary line.
public enum NodeText {
    public static func render(_ audit: NodeAudit) -> String {
        var rows: [[String]] = [["POD", "MODE", "BACKEND", "VERDICT", "ERRORS", "WARNINGS", "FIRST FINDING"]]
        for pod in audit.pods {
            rows.append([MessageText.excerpt(pod.displayName), pod.mode.rawValue, NodeReport.backend(pod), pod.verdict.rawValue,
                         String(pod.errorCount), String(pod.warningCount), NodeReport.firstFinding(pod)])
        }
        let widths = (0..<6).map { c in rows.map { $0[c].count }.max() ?? 0 }
        var out = ""
        for row in rows {
            var line = ""
            for c in 0..<6 { line += row[c] + String(repeating: " ", count: widths[c] - row[c].count + 2) }
            out += MessageText.line(line + row[6]) + "\n"
        }
        for entry in audit.unreadable {
            out += MessageText.line("unreadable: \(entry.path): \(entry.reason)") + "\n"
        }
        let modes = PodMeshMode.allCases.map { m in "\(audit.pods.filter { $0.mode == m }.count) \(m.rawValue)" }
        let failed = audit.pods.filter { $0.verdict == .failed }.count
        out += "\(audit.pods.count) namespaces: " + modes.joined(separator: ", ")
            + "; \(failed) failed, \(audit.unreadableCount) not judged; \(NodeReport.seconds(audit.seconds)) s\n"
        return out
    }
}

enum NodeReport {
    /// The rule stores holding the pod's rules: `legacy`, `nft` (iptables-nft), `nftables` (native tables), joined
    /// with `+`, and ` (split)` when one family's rules are in both iptables stores; `-` when none holds a rule.
    /// Not the store a family was read from: a family without rules is read from one too.
    static func backend(_ pod: PodAudit) -> String {
        guard let ruleset = pod.ruleset else { return "-" }
        var stores = Set(ruleset.populatedBackends.values.flatMap { $0 }.map(\.rawValue))
        if ruleset.nativeTables.contains(where: { $0.chains.contains { !$0.rules.isEmpty } }) { stores.insert("nftables") }
        guard !stores.isEmpty else { return "-" }
        let split = ruleset.populatedBackends.values.contains { Set($0).count > 1 }
        return stores.sorted().joined(separator: "+") + (split ? " (split)" : "")
    }

    static func firstFinding(_ pod: PodAudit) -> String {
        if let failure = pod.failure { return failure }
        if pod.mode == .notMeshed { return "-" }
        guard let first = pod.report?.findings.first else { return "-" }
        return "\(first.kind.rawValue): \(first.message)"
    }

    static func seconds(_ s: Double) -> String {
        let ms = Int((s * 1000).rounded())
        let frac = String(ms % 1000)
        return "\(ms / 1000)." + String(repeating: "0", count: 3 - frac.count) + frac
    }
}

/// `iptaudit node --output json`: one object per namespace, with `verify --format json`'s whole document (the same
/// finding objects) under `verification` (docs/json-schema.md).
public enum NodeJSON {
    public static let schemaVersion = 1

    public static func render(_ audit: NodeAudit) -> String {
        RulesetJSON.encode(Document(audit))
    }

    struct Document: Encodable {
        var schemaVersion = NodeJSON.schemaVersion
        var kind = "node"
        var ok: Bool
        var durationSeconds: Double
        var summary: Summary
        var pods: [Pod]
        var unreadable: [Unreadable]
        init(_ a: NodeAudit) {
            ok = !a.hasError
            durationSeconds = a.seconds
            var modes: [String: Int] = [:]
            for m in PodMeshMode.allCases { modes[m.rawValue] = a.pods.filter { $0.mode == m }.count }
            summary = Summary(namespaces: a.pods.count, modes: modes,
                              failed: a.pods.filter { $0.verdict == .failed }.count, unreadable: a.unreadableCount)
            pods = a.pods.map(Pod.init)
            unreadable = a.unreadable.map { Unreadable(path: $0.path, reason: $0.reason) }
        }
    }

    struct Summary: Encodable {
        var namespaces: Int
        var modes: [String: Int]
        var failed: Int
        var unreadable: Int
    }

    struct Unreadable: Encodable {
        var path: String
        var reason: String
    }

    struct Pod: Encodable {
        var netns: String
        var inode: UInt64
        var netnsNames: [String]
        var pid: Int32?
        var proxyPid: Int32?
        var proxyUid: UInt32?
        var namespace: String?
        var name: String?
        var podIPs: [String]
        var identitySource: String?
        var configurationSource: String?
        var mode: String
        var meshEvidence: String?
        var verdict: String
        var errors: Int
        var warnings: Int
        var failure: String?
        var notes: [String]
        var durationSeconds: Double
        var verification: VerificationJSON.Document?
        init(_ p: PodAudit) {
            netns = p.netns
            inode = p.inode
            netnsNames = p.boundNames
            pid = p.pid
            proxyPid = p.proxyPID
            proxyUid = p.proxyUID
            namespace = p.podNamespace
            name = p.podName
            podIPs = p.podIPs
            identitySource = p.identitySource
            configurationSource = p.configurationSource
            mode = p.mode.rawValue
            meshEvidence = p.evidence.description
            verdict = p.verdict.rawValue
            errors = p.errorCount
            warnings = p.warningCount
            failure = p.failure
            notes = p.notes
            durationSeconds = p.seconds
            verification = p.report.map { VerificationJSON.Document($0, ruleset: p.ruleset ?? Ruleset(tables: []), source: p.source) }
        }
    }
}

/// `iptaudit node --output junit`: one `<testsuite>` per namespace; a judged pod's is `verify`'s (one testcase per
/// obligation), a not-meshed pod's one skipped testcase, an unjudged one's one testcase with an `<error>`.
public enum NodeJUnit {
    public static func render(_ audit: NodeAudit) -> String {
        var tests = 0, failures = 0, errors = 0
        var body = ""
        for pod in audit.pods {
            let name = "iptaudit node: \(pod.displayName) [\(pod.mode.rawValue)]"
            if let report = pod.report, pod.failure == nil {
                tests += report.obligations.count
                failures += report.obligations.filter { $0.status == .failed }.count
                body += VerificationJUnit.suite(report, name: name)
                continue
            }
            let e = VerificationJUnit.escape
            tests += 1
            body += #"  <testsuite name="\#(e(name))" tests="1" failures="0" errors="\#(pod.failure == nil ? 0 : 1)" skipped="\#(pod.failure == nil ? 1 : 0)">"# + "\n"
            body += #"    <testcase classname="iptaudit.node" name="\#(e(pod.netns))">"# + "\n"
            if let failure = pod.failure {
                errors += 1
                body += #"      <error type="unreadable" message="\#(e(failure))">"# + e(pod.notes.joined(separator: "\n")) + "</error>\n"
            } else {
                body += #"      <skipped message="not meshed: no Istio rule and no istio-proxy process or Istio annotation"/>"# + "\n"
            }
            body += "    </testcase>\n  </testsuite>\n"
        }
        var xml = #"<?xml version="1.0" encoding="UTF-8"?>"# + "\n"
        xml += #"<testsuites name="iptaudit node" tests="\#(tests)" failures="\#(failures)" errors="\#(errors)">"# + "\n"
        return xml + body + "</testsuites>\n"
    }
}
