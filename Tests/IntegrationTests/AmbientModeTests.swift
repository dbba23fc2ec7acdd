import Foundation
import Testing
import TestSupport

/// Ambient's mode conflicts and its native nftables form through the CLI, on a real kernel: a pod annotated for
/// ambient with no rules, ambient rules beside a sidecar's leftovers in another backend, and defects in the
/// `inet istio-ambient-*` tables caught with their exact kind.
@Suite("Ambient: mode conflicts and native nftables defects, live")
struct AmbientModeTests {
    static func findings(_ r: CommandResult) throws -> [(kind: String, severity: String, obligation: String)] {
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stderr)")
        return ((doc["findings"] as? [[String: Any]]) ?? []).map {
            ($0["kind"] as? String ?? "", $0["severity"] as? String ?? "", $0["obligation"] as? String ?? "")
        }
    }

    static func manifest() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ambient-pod-\(UUID().uuidString).yaml")
        try "apiVersion: v1\nkind: Pod\nmetadata:\n  name: reviews\n  annotations:\n    ambient.istio.io/redirection: enabled\nspec:\n  containers:\n  - name: reviews\n    image: reviews:1\n"
            .write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// A sidecar pod's manifest with ambient's rules in its namespace, and `--ambient` over a sidecar's rules: a
    /// mode conflict either way, not a report of every obligation broken.
    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip))
    func configuredForTheOtherDataPlane() throws {
        let ns = try TestNamespace()
        try ns.mustRun(["ip", "link", "set", "lo", "up"])
        try ns.mustRun(["iptables-legacy-restore"], stdin: try Fixtures.text("istio/master/live-save/ambient-iptables/default.ipv4.save"))
        let asSidecar = try Binary.run(["verify", "--netns", ns.path, "--no-ipv6", "--pod", Fixtures.repositoryPath("examples/pod.yaml"), "--format", "json"])
        #expect(asSidecar.status == 1)
        #expect(try Self.findings(asSidecar).contains { $0.kind == "mode-conflict" && $0.severity == "error" })
        let sidecar = try TestNamespace()
        try sidecar.mustRun(["iptables-legacy-restore"], stdin: try Fixtures.text("istio/master/live-save/cni-sidecar-iptables/basic.ipv4.save"))
        let asAmbient = try Binary.run(["verify", "--netns", sidecar.path, "--no-ipv6", "--ambient", "--format", "json"])
        #expect(asAmbient.status == 1)
        let found = try Self.findings(asAmbient)
        #expect(found.contains { $0.kind == "mode-conflict" && $0.obligation == "data-plane-mode" }, "\(found)")
    }

    /// Started before the node agent was ready: nothing in the namespace, every packet bypasses ztunnel.
    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip))
    func annotatedPodWithoutRules() throws {
        let ns = try TestNamespace()
        try ns.mustRun(["ip", "link", "set", "lo", "up"])
        let pod = try Self.manifest()
        defer { try? FileManager.default.removeItem(at: pod) }
        let r = try Binary.run(["verify", "--netns", ns.path, "--pod", pod.path, "--format", "json"])
        #expect(r.status == 1)
        let f = try Self.findings(r)
        #expect(f.contains { $0.kind == "missing-redirect" && $0.severity == "error" && $0.obligation == "data-plane-mode" })
        #expect(r.stderr.contains("ambient mode but no table"))
    }

    /// Ambient in legacy iptables, a sidecar's ISTIO_REDIRECT left in iptables-nft: the split is an error (the
    /// reader shows one backend per family, so the leftovers' data plane is named by the backend-split finding).
    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip))
    func ambientBesideSidecarLeftovers() throws {
        let ns = try TestNamespace()
        try ns.mustRun(["ip", "link", "set", "lo", "up"])
        try ns.mustRun(["iptables-legacy-restore"], stdin: try Fixtures.text("istio/master/live-save/ambient-iptables/default.ipv4.save"))
        try ns.mustRun(["iptables-nft-restore"], stdin: "*nat\n:ISTIO_REDIRECT - [0:0]\n-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001\nCOMMIT\n")
        let r = try Binary.run(["verify", "--netns", ns.path, "--no-ipv6", "--format", "json"])
        #expect(r.status == 1)
        let kinds = Set(try Self.findings(r).filter { $0.severity == "error" }.map(\.kind))
        #expect(kinds.contains("backend-split"), "\(kinds)")
    }

    /// istio-cni's nftables rules (1.28+) with one defect each, read live: the exact kind.
    @Test(.enabled(if: TestNamespace.shouldRun, netnsSkip), arguments: [
        ("mark exemption removed", "mark and 0xfff != 0x539 counter redirect to :15001", "counter redirect to :15001", "owner-match-gap"),
        ("connmark restore removed", "ct mark and 0xfff == 0x111 counter meta mark set ct mark", "ct mark and 0xfff == 0x111 counter", "return-path"),
        ("15006 to 15007", "redirect to :15006", "redirect to :15007", "wrong-port"),
        ("probe ACCEPT removed", "meta l4proto tcp ip saddr 169.254.7.127 counter accept", "meta l4proto tcp ip saddr 169.254.7.127 counter", "exclusion-leak"),
    ])
    func nftablesDefects(_ name: String, _ original: String, _ replacement: String, _ kind: String) throws {
        let ns = try TestNamespace()
        try ns.mustRun(["ip", "link", "set", "lo", "up"])
        let golden = try Fixtures.text("istio/master/ambient-nftables/default.golden")
        #expect(golden.contains(original))
        try ns.mustRun(["ip", "-4", "rule", "add", "fwmark", "0x111/0xfff", "lookup", "100", "pref", "32764"])
        try ns.mustRun(["ip", "-4", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100"])
        let healthy = try Binary.runIn(ns, golden: golden)
        #expect(healthy.status == 0, "\(healthy.stdout)")
        // Without a version the newest modelled shape is assumed (and said), and the healthy rules still pass.
        let unversioned = try Binary.run(["verify", "--netns", ns.path, "--no-ipv6"])
        #expect(unversioned.status == 0, "\(unversioned.stdout)")
        #expect(unversioned.stdout.contains("(assumed: no --istio-version"))
        try ns.mustRun(["nft", "flush", "ruleset"])
        let broken = try Binary.runIn(ns, golden: golden.replacingOccurrences(of: original, with: replacement))
        #expect(broken.status == 1)
        let errors = try Self.findings(broken).filter { $0.severity == "error" }
        #expect(errors.map(\.kind).contains(kind), "\(name): \(errors)")
        #expect(Set(errors.map(\.kind)) == [kind], "\(name): only the planted defect: \(errors)")
    }
}

extension Binary {
    /// Loads an nft script into the namespace and verifies it live as ambient (1.29), JSON.
    static func runIn(_ ns: TestNamespace, golden: String) throws -> CommandResult {
        try ns.mustRun(["nft", "-f", "-"], stdin: golden)
        return try run(["verify", "--netns", ns.path, "--no-ipv6", "--istio-version", "1.29", "--format", "json"])
    }
}
