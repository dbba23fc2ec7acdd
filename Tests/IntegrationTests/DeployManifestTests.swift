import Foundation
import Testing
import TestSupport

/// deploy/ validates (scripts/validate-deploy.py: Kubernetes' schemas through kubernetes-validate, the operator
/// kinds' schemas, `promtool check rules`, the least-privilege contract), and each kind of breakage is caught.
@Suite struct DeployManifestTests {
    static let script = Fixtures.repositoryPath("scripts/validate-deploy.py")

    /// `scripts/install-deps.sh --cluster` installs both; without them these tests skip, saying so.
    static let kubernetesValidate = (try? runCommand(["python3", "-c", "import kubernetes_validate, yaml, jsonschema"]))?.status == 0
    static let promtool = FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool")
    static let needsValidator = Comment(rawValue: "needs PyPI's kubernetes-validate for python3 (scripts/install-deps.sh --cluster installs it)")
    static let needsPromtool = Comment(rawValue: "needs kubernetes-validate and promtool (scripts/install-deps.sh --cluster installs them)")

    static func validate(_ directory: String) throws -> CommandResult {
        try runCommand(["timeout", "-s", "KILL", "120", "python3", script, directory])
    }

    @Test(.enabled(if: kubernetesValidate && promtool, needsPromtool))
    func deployValidates() throws {
        let r = try Self.validate(Fixtures.repositoryPath("deploy"))
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.hasPrefix("ok: 5 resources valid (DaemonSet, Namespace, PodMonitor, PrometheusRule, Service)"), "\(r.stdout)")
    }

    /// One edit of one file, and the line the validator must print for it.
    @Test(.enabled(if: kubernetesValidate, needsValidator), arguments: [
        ("daemonset.yaml", "containerPort: 9180", "containerPort: nine-one-eight-zero", "DaemonSet iptaudit-node: spec/template/spec/containers/0/ports/0/containerPort"),
        ("daemonset.yaml", "      hostPID: true", "      hostPid: true", "DaemonSet iptaudit-node: spec/template/spec: Additional properties are not allowed ('hostPid'"),
        ("daemonset.yaml", "                - SYS_PTRACE", "                - SYS_PTRACE\n                - SYS_MODULE", "capabilities.add must be exactly"),
        ("daemonset.yaml", "      automountServiceAccountToken: false", "      automountServiceAccountToken: true", "automountServiceAccountToken must be false"),
        ("service.yaml", "  clusterIP: None", "  clusterIP: None\n  clusterIPs: None", "Service iptaudit-node: spec/clusterIPs"),
        ("podmonitor.yaml", "  podMetricsEndpoints:", "  podMetricEndpoints:", "PodMonitor iptaudit-node: spec: Additional properties are not allowed ('podMetricEndpoints'"),
        ("podmonitor.yaml", "      app.kubernetes.io/component: node-auditor", "      app.kubernetes.io/component: node-agent", "PodMonitor iptaudit-node: its selector {'app.kubernetes.io/name': 'iptaudit', 'app.kubernetes.io/component': 'node-agent'} does not select"),
        ("podmonitor.yaml", "      interval: 60s", "      interval: 1 minute", "PodMonitor iptaudit-node: spec/podMetricsEndpoints/0/interval"),
        ("prometheusrule.yaml", "expr: iptaudit_namespaces_unreadable > 0", "expr: iptaudit_namespace_unreadable > 0", "uses iptaudit_namespace_unreadable, which iptaudit does not serve"),
        ("prometheusrule.yaml", "          for: 5m", "          for: five minutes", "PrometheusRule iptaudit: spec/groups/0/rules/0/for"),
    ])
    func aBrokenManifestIsRefused(_ file: String, _ original: String, _ replacement: String, _ expected: String) throws {
        try Self.refuses(file, original, replacement, expected)
    }

    @Test(.enabled(if: kubernetesValidate && promtool, needsPromtool))
    func aBrokenAlertExpressionFailsPromtool() throws {
        try Self.refuses("prometheusrule.yaml", "expr: iptaudit_pod_capture_ok == 0", "expr: iptaudit_pod_capture_ok == 0)",
                         "PrometheusRule iptaudit: promtool check rules: ")
    }

    static func refuses(_ file: String, _ original: String, _ replacement: String, _ expected: String) throws {
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("iptaudit-deploy-\(UUID().uuidString)")
        try FileManager.default.copyItem(atPath: Fixtures.repositoryPath("deploy"), toPath: copy.path)
        defer { try? FileManager.default.removeItem(at: copy) }
        let target = copy.appendingPathComponent(file)
        let text = try String(contentsOf: target, encoding: .utf8)
        try #require(text.components(separatedBy: original).count == 2, "\(file) must hold `\(original)` once")
        try text.replacingOccurrences(of: original, with: replacement).write(to: target, atomically: true, encoding: .utf8)
        let r = try Self.validate(copy.path)
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("\(file): "), "\(r.stdout)")
        #expect(r.stdout.contains(expected), "\(r.stdout)\(r.stderr)")
    }
}
