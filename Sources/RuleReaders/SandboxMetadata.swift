import FoundationEssentials
import Glibc
import NetfilterModel

/// A pod's name as its container runtime recorded it in the sandbox's OCI bundle.
public struct SandboxIdentity: Sendable, Hashable {
    public var namespace: String
    public var name: String
    /// The bundle's `config.json` it was read from.
    public var source: String
}

/// The container runtimes' sandbox bundles, matched to network namespaces by the inode of the namespace path in
/// their OCI `config.json` (`linux.namespaces[type=network].path`). containerd's CRI plugin annotates the sandbox
/// with `io.kubernetes.cri.sandbox-name` / `-namespace` (bundles under
/// `/run/containerd/io.containerd.runtime.v2.task/k8s.io/ID/`), CRI-O with `io.kubernetes.pod.name` /
/// `.namespace` (`/run/containers/storage/overlay-containers/ID/userdata/`). Reads files only.
public enum SandboxMetadata {
    public static let bundleDirectories = ["/run/containerd/io.containerd.runtime.v2.task/k8s.io",
                                           "/run/containers/storage/overlay-containers"]
    static let nameKeys = [("io.kubernetes.cri.sandbox-namespace", "io.kubernetes.cri.sandbox-name"),
                           ("io.kubernetes.pod.namespace", "io.kubernetes.pod.name")]

    /// Pod identities by network namespace inode; bundles that cannot be read or name no pod are passed over.
    public static func identities(bundleDirectories: [String] = bundleDirectories) -> [UInt64: SandboxIdentity] {
        var out: [UInt64: SandboxIdentity] = [:]
        for directory in bundleDirectories {
            for id in NodeNamespaces.directoryEntries(directory).sorted() {
                for config in ["\(directory)/\(id)/config.json", "\(directory)/\(id)/userdata/config.json"] {
                    guard let text = readSmallFile(config, limit: 4 << 20), let (inode, identity) = identity(configJSON: text, source: config),
                          out[inode] == nil else { continue }
                    out[inode] = identity
                }
            }
        }
        return out
    }

    /// One bundle's pod and the inode of its network namespace path; nil when either is missing.
    static func identity(configJSON text: String, source: String) -> (UInt64, SandboxIdentity)? {
        struct Config: Decodable {
            struct Linux: Decodable {
                struct Namespace: Decodable { var type: String; var path: String? }
                var namespaces: [Namespace]?
            }
            var annotations: [String: String]?
            var linux: Linux?
        }
        guard let config = try? JSONDecoder().decode(Config.self, from: Data(text.utf8)),
              let annotations = config.annotations,
              let (namespace, name) = nameKeys.lazy.compactMap({ keys in
                  annotations[keys.1].map { (annotations[keys.0] ?? "", $0) } }).first,
              let path = config.linux?.namespaces?.first(where: { $0.type == "network" })?.path,
              let inode = NetworkNamespace.inode(of: path) else { return nil }
        return (inode, SandboxIdentity(namespace: namespace, name: name, source: source))
    }
}
