import IstioCapture
import NetfilterModel

/// How a pod on the node takes part in the mesh, as `iptaudit node` classifies it.
public enum PodMeshMode: String, Sendable, Hashable, Codable, CaseIterable {
    /// Istio's sidecar rules (istio-init or istio-cni).
    case sidecar
    /// istio-cni's in-pod rules for ztunnel.
    case ambient
    /// No Istio rule and nothing else says the pod is meshed: not judged.
    case notMeshed = "not-meshed"
    /// An istio-proxy process or Istio's annotations say the pod is meshed, but no table holds Istio's rules:
    /// every connection bypasses the mesh (a pod started before istio-cni was ready, rules wiped).
    case meshedNoRules = "meshed-no-rules"
    /// The namespace could not be read or judged (the failure says why).
    case unknown
}

/// The outcome for one pod.
public enum PodVerdict: String, Sendable, Hashable, Codable, CaseIterable {
    /// No error finding.
    case proven
    /// Findings of error severity.
    case failed
    /// Not meshed: nothing to prove.
    case notMeshed = "not-meshed"
    /// The namespace could not be read or judged, or its check ran past the per-pod timeout.
    case error
}

/// What, besides its rules, says a pod is meshed.
public enum MeshEvidence: Sendable, Hashable {
    case none
    /// An istio-proxy process, or the injector's `sidecar.istio.io/status` annotation; the text says which.
    case sidecar(String)
    /// Ambient's `ambient.istio.io/redirection: enabled` annotation.
    case ambient(String)

    public var description: String? {
        switch self {
        case .none: nil
        case .sidecar(let s), .ambient(let s): s
        }
    }
}

/// One network namespace of the node, identified and judged exactly as `iptaudit verify` judges it alone.
public struct PodAudit: Sendable {
    /// The namespace file that was read (`/proc/PID/ns/net` or `/run/netns/NAME`) and its inode.
    public var netns: String
    public var inode: UInt64
    public var boundNames: [String] = []
    /// The process whose view (resolv.conf, /etc/group, and when it is the proxy, its environment and
    /// `/etc/istio/pod`) was used: `verify --pid PID` reads the same.
    public var pid: Int32?
    public var proxyPID: Int32?
    public var proxyUID: UInt32?
    /// Kubernetes namespace and name, when something said (the `--pods` list, the proxy's environment).
    public var podNamespace: String?
    public var podName: String?
    public var podIPs: [String] = []
    /// Where the name and the configuration came from (`--pods`, `istio-proxy environment`).
    public var identitySource: String?
    public var configurationSource: String?
    public var mode: PodMeshMode = .unknown
    public var evidence: MeshEvidence = .none
    /// `verify`'s source line, its report and the rules it read (nil when not judged).
    public var source: String = ""
    public var ruleset: Ruleset?
    public var report: VerificationReport?
    /// Why the namespace could not be judged.
    public var failure: String?
    /// What `verify` would have printed on stderr for this namespace (warnings, the reason for a failure).
    public var notes: [String] = []
    public var seconds: Double = 0

    public init(netns: String, inode: UInt64) {
        self.netns = netns
        self.inode = inode
    }

    public var verdict: PodVerdict {
        if failure != nil { return .error }
        if mode == .notMeshed { return .notMeshed }
        return report?.ok == false ? .failed : (report == nil ? .error : .proven)
    }

    /// `namespace/name` when known, else the namespace file (and its `ip netns` names).
    public var displayName: String {
        if let podName, !podName.isEmpty { return (podNamespace.map { $0.isEmpty ? "" : $0 + "/" } ?? "") + podName }
        return boundNames.isEmpty ? netns : netns + " (" + boundNames.joined(separator: ", ") + ")"
    }

    public var errorCount: Int { (report?.findings.filter { $0.severity == .error }.count ?? 0) }
    public var warningCount: Int { (report?.findings.filter { $0.severity == .warning }.count ?? 0) }

    /// Whether this pod makes the audit fail: error findings on a meshed pod, or a namespace not judged.
    public var hasError: Bool { verdict == .failed || verdict == .error }

    /// The rules decide (a sidecar's or ambient's chains); with none, any other sign of the mesh makes the pod
    /// meshed-but-no-rules, and nothing at all not meshed.
    public static func classify(rules: IstioDataPlane.Mode, evidence: MeshEvidence) -> PodMeshMode {
        switch rules {
        case .sidecar: .sidecar
        case .ambient: .ambient
        case .none: evidence == .none ? .notMeshed : .meshedNoRules
        }
    }
}

/// A whole node's audit: every namespace but the host's, and those that could not even be looked at.
public struct NodeAudit: Sendable {
    public var pods: [PodAudit]
    /// Namespace entries the walk could not look at (path, reason); each counts as unreadable.
    public var unreadable: [(path: String, reason: String)]
    public var seconds: Double
    /// When the audit finished, in seconds since the epoch (the exposition's `iptaudit_last_audit_timestamp_seconds`).
    public var finishedAt: Double?

    public init(pods: [PodAudit], unreadable: [(path: String, reason: String)], seconds: Double, finishedAt: Double? = nil) {
        self.pods = pods
        self.unreadable = unreadable
        self.seconds = seconds
        self.finishedAt = finishedAt
    }

    public var hasError: Bool { pods.contains(where: \.hasError) }
    /// Namespaces not judged: walk entries refused plus pods whose read or check failed.
    public var unreadableCount: Int { unreadable.count + pods.filter { $0.failure != nil }.count }
}
