/// What `iptaudit node` exposes for a node's pods, with the metric names docs/running-in-a-cluster.md documents
/// (and deploy/'s alerts use), so the tests serve and scrape the shape the node command renders.
struct FixturePod: Hashable, Sendable, Comparable {
    var namespace: String
    var pod: String
    var mode = "sidecar"
    var key: String { "\(namespace)/\(pod)" }
    static func < (a: Self, b: Self) -> Bool { a.key < b.key }
}

enum NodeExposition {
    static let pods: [FixturePod] = [
        FixturePod(namespace: "shop", pod: "cart-0"), FixturePod(namespace: "shop", pod: "pay-1"),
        FixturePod(namespace: "default", pod: "web-2"), FixturePod(namespace: "default", pod: "web-3", mode: "ambient"),
        FixturePod(namespace: "kube-system", pod: "coredns-4", mode: "none"),
    ]

    /// The exposition of one audit in which `broken` pods' capture failed (each with one error finding).
    static func text(pods: [FixturePod] = pods, broken: Set<String>, unreadable: Int = 0, duration: Double = 0.25,
                     timestamp: Double = 1_764_460_800) -> String {
        var lines = [
            "# HELP iptaudit_pod_capture_ok 1 when the pod's capture is proven, 0 when the audit found an error.",
            "# TYPE iptaudit_pod_capture_ok gauge",
        ]
        let meshed = pods.filter { $0.mode != "none" }
        for p in meshed {
            lines.append("iptaudit_pod_capture_ok{namespace=\"\(p.namespace)\",pod=\"\(p.pod)\",mode=\"\(p.mode)\"} \(broken.contains(p.key) ? 0 : 1)")
        }
        lines += [
            "# HELP iptaudit_pod_findings Findings of the pod's audit by kind and severity.",
            "# TYPE iptaudit_pod_findings gauge",
        ]
        for p in meshed where broken.contains(p.key) {
            lines.append("iptaudit_pod_findings{namespace=\"\(p.namespace)\",pod=\"\(p.pod)\",kind=\"bypass\",severity=\"error\"} 1")
        }
        lines += ["# HELP iptaudit_pods Pods audited on this node by data-plane mode.", "# TYPE iptaudit_pods gauge"]
        for mode in Set(pods.map(\.mode)).sorted() {
            lines.append("iptaudit_pods{mode=\"\(mode)\"} \(pods.filter { $0.mode == mode }.count)")
        }
        lines += [
            "# HELP iptaudit_audit_duration_seconds How long the last audit took.",
            "# TYPE iptaudit_audit_duration_seconds gauge",
            "iptaudit_audit_duration_seconds \(duration)",
            "# HELP iptaudit_namespaces_unreadable Network namespaces the last audit could not read.",
            "# TYPE iptaudit_namespaces_unreadable gauge",
            "iptaudit_namespaces_unreadable \(unreadable)",
            "# HELP iptaudit_last_audit_timestamp_seconds When the last audit finished, in seconds since the epoch.",
            "# TYPE iptaudit_last_audit_timestamp_seconds gauge",
            "iptaudit_last_audit_timestamp_seconds \(timestamp)",
        ]
        return lines.joined(separator: "\n") + "\n"
    }
}
