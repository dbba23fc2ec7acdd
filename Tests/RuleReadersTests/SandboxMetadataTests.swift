import Foundation
@testable import RuleReaders
import Testing

/// Pod names from containerd's and CRI-O's sandbox bundles, matched by the inode of the network namespace path
/// their OCI config names (here: ordinary files stand in for the namespace files; only the inode is compared).
@Suite struct SandboxMetadataTests {
    @Test func bundlesOfBothRuntimesNameTheirPods() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("iptaudit-sandbox-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let containerd = root.appendingPathComponent("k8s.io"), crio = root.appendingPathComponent("overlay-containers")
        func netns(_ name: String) throws -> (String, UInt64) {
            let file = root.appendingPathComponent(name)
            try "".write(to: file, atomically: true, encoding: .utf8)
            let inode = try #require((try FileManager.default.attributesOfItem(atPath: file.path)[.systemFileNumber] as? NSNumber)?.uint64Value)
            return (file.path, inode)
        }
        func bundle(_ directory: URL, _ annotations: [String: String], netns path: String?) throws {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            var namespaces: [[String: String]] = [["type": "pid"]]
            if let path { namespaces.append(["type": "network", "path": path]) }
            let config: [String: Any] = ["ociVersion": "1.1.0", "annotations": annotations, "linux": ["namespaces": namespaces]]
            try JSONSerialization.data(withJSONObject: config).write(to: directory.appendingPathComponent("config.json"))
        }
        let (a, aInode) = try netns("cni-a"), (b, bInode) = try netns("cni-b"), (c, _) = try netns("cni-c")
        try bundle(containerd.appendingPathComponent("1111"), ["io.kubernetes.cri.container-type": "sandbox",
            "io.kubernetes.cri.sandbox-name": "web-0", "io.kubernetes.cri.sandbox-namespace": "shop"], netns: a)
        try bundle(crio.appendingPathComponent("2222/userdata"), ["io.kubernetes.pod.name": "db-0", "io.kubernetes.pod.namespace": "data"], netns: b)
        // Not a pod (no name), a sandbox without a network path, and a broken file: passed over.
        try bundle(containerd.appendingPathComponent("3333"), ["org.opencontainers.image.ref.name": "x"], netns: c)
        try bundle(containerd.appendingPathComponent("4444"), ["io.kubernetes.cri.sandbox-name": "host-net"], netns: nil)
        try FileManager.default.createDirectory(at: containerd.appendingPathComponent("5555"), withIntermediateDirectories: true)
        try "{not json".write(to: containerd.appendingPathComponent("5555/config.json"), atomically: true, encoding: .utf8)

        let found = SandboxMetadata.identities(bundleDirectories: [containerd.path, crio.path, root.appendingPathComponent("absent").path])
        #expect(found.count == 2)
        #expect(found[aInode].map { "\($0.namespace)/\($0.name)" } == "shop/web-0")
        #expect(found[bInode].map { "\($0.namespace)/\($0.name)" } == "data/db-0")
        #expect(found[bInode]?.source == crio.appendingPathComponent("2222/userdata/config.json").path)
    }
}
