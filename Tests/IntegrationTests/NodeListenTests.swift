import Foundation
import Glibc
import Testing
import TestSupport

/// `iptaudit node --listen` as the DaemonSet runs it: the binary keeps running, audits the node every interval and
/// serves the exposition on /metrics (with the server's failure counter and the audit's timestamp), /healthz says
/// it is healthy, a broken pod's namespace shows as `iptaudit_pod_capture_ok … 0`, a repair shows on the next
/// audit, and SIGTERM ends it with exit 0.
@Suite(.serialized) struct NodeListenTests {
    static let repo = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()

    static func captureOK(_ body: String, inode: UInt64) -> String? {
        body.split(separator: "\n").first { $0.hasPrefix("iptaudit_pod_capture_ok{") && $0.contains("netns=\"\(inode)\"") }
            .map { String($0.split(separator: " ").last ?? "") }
    }

    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func servesEachAuditOfTheNode() async throws {
        let ns = try TestNamespace()
        let broken = try String(contentsOf: Self.repo.appendingPathComponent("examples/broken.save"), encoding: .utf8)
        try ns.mustRun(["iptables-legacy-restore"], stdin: broken)
        var st = stat()
        try #require(stat(ns.path, &st) == 0)
        let inode = UInt64(st.st_ino)
        let port = try HTTPProbe.freePort()

        let process = Process()
        process.executableURL = URL(fileURLWithPath: Binary.path)
        // Audits every second, each allowed 5 minutes: a loaded machine slows an audit down, it does not fail it (the
        // default timeout, the interval, would count a 1 s audit on a busy CI runner as a failure).
        process.arguments = ["node", "--listen", "127.0.0.1:\(port)", "--interval", "1s", "--audit-timeout", "5m"]
        let stderr = Pipe()
        process.standardError = stderr
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() } }

        let first: HTTPReply = try await waitFor("/metrics to show the broken namespace \(inode)", limit: .seconds(120), every: .milliseconds(250)) {
            let reply = try? HTTPProbe.request("GET", "/metrics", port: port)
            return (reply.flatMap { $0.status == 200 && Self.captureOK($0.body, inode: inode) != nil ? $0 : nil }, reply?.body ?? "no answer")
        }
        #expect(Self.captureOK(first.body, inode: inode) == "0")
        #expect(first.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        for metric in ["iptaudit_pods{mode=\"sidecar\"}", "iptaudit_namespaces_unreadable ", "iptaudit_audit_duration_seconds ",
                       "iptaudit_last_audit_timestamp_seconds ", "iptaudit_audit_failures_total 0"] {
            #expect(first.body.contains("\n" + metric), Comment(rawValue: "\(metric) missing"))
        }
        #expect(first.body.contains("kind=\"foreign-rule\",severity=\"error\"") && first.body.contains("netns=\"\(inode)\",kind="))
        let health = try HTTPProbe.request("GET", "/healthz", port: port)
        #expect(health.status == 200, "\(health.body)")

        // Repaired in place: the next audit proves it.
        let healthy = try String(contentsOf: Self.repo.appendingPathComponent("examples/healthy.save"), encoding: .utf8)
        try ns.mustRun(["iptables-legacy-restore"], stdin: healthy)
        let _: Bool = try await waitFor("/metrics to show namespace \(inode) proven", limit: .seconds(120), every: .milliseconds(250)) {
            let reply = try? HTTPProbe.request("GET", "/metrics", port: port)
            return (reply.flatMap { Self.captureOK($0.body, inode: inode) == "1" ? true : nil }, reply?.body ?? "no answer")
        }

        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        let log = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0, "\(log)")
        #expect(log.contains("serving /metrics and /healthz on 127.0.0.1:\(port)") && log.contains("stopped on signal 15"), "\(log)")
    }

    /// `--pods FILE` is read again at every audit: a renamed pod is served under its new name, and a list that
    /// no longer parses fails that audit (the failure counter goes up, /metrics keeps the last good audit).
    @Test(.enabled(if: TestNamespace.shouldRun, Comment(rawValue: TestNamespace.skipReason)))
    func aPodListIsReadAgainAtEveryAudit() async throws {
        let ns = try TestNamespace()
        let healthy = try String(contentsOf: Self.repo.appendingPathComponent("examples/healthy.save"), encoding: .utf8)
        try ns.mustRun(["iptables-legacy-restore"], stdin: healthy)
        for command in [["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer"], ["ip", "addr", "add", "10.123.0.5/24", "dev", "eth0"],
                        ["ip", "link", "set", "eth0", "up"]] { try ns.mustRun(command) }
        let list = FileManager.default.temporaryDirectory.appendingPathComponent("pods-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: list) }
        func write(_ name: String) throws {
            try #"{"kind":"List","items":[{"kind":"Pod","metadata":{"name":"\#(name)","namespace":"shop"},"spec":{"containers":[{"name":"app"}]},"status":{"phase":"Running","podIP":"10.123.0.5"}}]}"#
                .write(to: list, atomically: true, encoding: .utf8)
        }
        try write("before")
        let port = try HTTPProbe.freePort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Binary.path)
        process.arguments = ["node", "--listen", "127.0.0.1:\(port)", "--interval", "1s", "--audit-timeout", "5m", "--pods", list.path]
        let stderr = Pipe()
        process.standardError = stderr
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() } }
        func served(_ what: String, _ test: @escaping @Sendable (String) -> Bool) async throws -> String {
            try await waitFor(what, limit: .seconds(120), every: .milliseconds(250)) {
                let reply = try? HTTPProbe.request("GET", "/metrics", port: port)
                return (reply.flatMap { $0.status == 200 && test($0.body) ? $0.body : nil }, reply?.body ?? "no answer")
            }
        }
        _ = try await served("the pod served as shop/before") { $0.contains(#"namespace="shop",pod="before""#) }
        try write("after")
        let renamed = try await served("the pod served as shop/after") { $0.contains(#"namespace="shop",pod="after""#) }
        #expect(!renamed.contains(#"pod="before""#))
        try "{ not a list".write(to: list, atomically: true, encoding: .utf8)
        let failed = try await served("an audit to fail on the broken list") { !$0.contains("iptaudit_audit_failures_total 0\n") }
        #expect(failed.contains(#"namespace="shop",pod="after""#), "/metrics keeps the last good audit")

        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        let log = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(log.contains("iptaudit: the audit failed: \(list.path): "), "\(log)")
    }

    @Test func listenServesOnlyTheExposition() throws {
        let r = try Binary.run(["node", "--listen", "127.0.0.1:0", "-o", "json"])
        #expect(r.status == 64 && r.stderr.contains("--listen serves the Prometheus exposition"), "\(r.stderr)")
    }
}
