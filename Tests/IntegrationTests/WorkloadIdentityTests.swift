import Foundation
import Testing
import TestSupport

/// Issue 9 item 1: a container that runs as the proxy's identity has all its traffic exempt, however exactly
/// the rules match the configuration. The README's example pod, edited as such pods are in the wild: the app
/// image run as 1337, OpenShift giving the app and the proxy the same UID from the namespace's range, and an
/// init container run as 1337 on purpose (Istio's documented workaround). Through `--input` and live.
@Suite("Workload identities from the manifest")
struct WorkloadIdentityTests {
    static let pod = (try? String(contentsOfFile: Fixtures.repositoryPath("examples/pod.yaml"), encoding: .utf8)) ?? ""

    /// The example pod with `hello` running as `uid:gid`, and (OpenShift) the proxy and istio-init's -u as `proxy`.
    static func manifest(app uid: UInt32, _ gid: UInt32, proxy: UInt32 = 1337, initAs1337: Bool = false) -> String {
        var y = pod.replacingOccurrences(of: "        resources: {}\n      initContainers:\n",
            with: "        resources: {}\n        securityContext:\n          runAsUser: \(uid)\n          runAsGroup: \(gid)\n      initContainers:\n")
        if proxy != 1337 {
            y = y.replacingOccurrences(of: "        - -u\n        - \"1337\"\n", with: "        - -u\n        - \"\(proxy)\"\n")
                .replacingOccurrences(of: "          runAsGroup: 1337\n          runAsNonRoot: true\n          runAsUser: 1337\n",
                                      with: "          runAsGroup: \(proxy)\n          runAsNonRoot: true\n          runAsUser: \(proxy)\n")
        }
        if initAs1337 {
            y = y.replacingOccurrences(of: "      initContainers:\n",
                with: "      initContainers:\n      - name: migrate\n        image: migrate:1\n        securityContext:\n          runAsUser: 1337\n", options: [], range: nil)
        }
        return y
    }

    func write(_ text: String, _ ext: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("workload-\(UUID().uuidString).\(ext)")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var uid: UInt32, gid: UInt32, proxy: UInt32 = 1337, initAs1337 = false
        var status: Int32
        var severity: String?
        var testDescription: String { name }
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)), arguments: [
        Case(name: "app with its own identity", uid: 1000, gid: 1000, status: 0, severity: nil),
        Case(name: "app image running as 1337", uid: 1337, gid: 1337, status: 1, severity: "error"),
        Case(name: "OpenShift: app and proxy share the namespace's UID", uid: 1000650000, gid: 1000650000, proxy: 1000650000, status: 1, severity: "error"),
        Case(name: "init container as 1337 on purpose", uid: 1000, gid: 1000, initAs1337: true, status: 0, severity: "info"),
    ])
    func sharedIdentity(_ c: Case) throws {
        let manifest = try write(Self.manifest(app: c.uid, c.gid, proxy: c.proxy, initAs1337: c.initAs1337), "yaml")
        defer { try? FileManager.default.removeItem(at: manifest) }
        #expect(Self.manifest(app: c.uid, c.gid, proxy: c.proxy, initAs1337: c.initAs1337) != Self.pod)
        // The rules are exactly what Istio installs for this manifest, so only the identity can be wrong.
        let expected = try Binary.run(["expect", "--pod", manifest.path, "--family", "ipv4"])
        try #require(expected.status == 0, "\(expected.stderr)")
        if c.proxy != 1337 { #expect(expected.stdout.contains("--uid-owner \(c.proxy)")) }
        let rules = try write(expected.stdout, "save")
        defer { try? FileManager.default.removeItem(at: rules) }
        let ns = try TestNamespace()
        try ns.mustRun(["iptables-legacy-restore"], stdin: expected.stdout)
        for source in [["--input", rules.path], ["--netns", ns.path, "--no-ipv6"]] {
            let r = try Binary.run(["verify", "--pod", manifest.path, "--format", "json"] + source)
            #expect(r.status == c.status, "\(c.name) \(source[0]): \(r.stdout.prefix(2000))")
            let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            let shared = ((doc["findings"] as? [[String: Any]]) ?? []).filter { $0["kind"] as? String == "shared-identity" }
            #expect(shared.map { $0["severity"] as? String } == (c.severity.map { [$0] } ?? []), "\(c.name): \(shared)")
            if let f = shared.first {
                let container = c.initAs1337 ? "migrate" : "hello"
                #expect((f["message"] as? String)?.contains("container \(container)'s") == true)
                #expect(((f["witness"] as? [String: Any])?["packet"] as? [String: Any])?["uid"] as? Int == Int(c.initAs1337 ? 1337 : c.uid))
            }
        }
    }
}
