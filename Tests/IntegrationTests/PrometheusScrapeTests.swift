import Foundation
import Glibc
import MetricsServer
import Testing
import TestSupport

enum PrometheusTools {
    static let prometheus = "/usr/bin/prometheus"
    static let promtool = "/usr/bin/promtool"
    static let installed = [prometheus, promtool].allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }
}

/// A real Prometheus (Debian's `prometheus` package) on loopback scrapes the in-process server every second; its
/// HTTP API must answer `iptaudit_pod_capture_ok == 0` with exactly the pods the audit marked broken, before and
/// after the audit changes its mind. `promtool check metrics` lints what the server serves.
@Suite(.enabled(if: PrometheusTools.installed, Comment(rawValue: "needs Debian's prometheus package (scripts/install-deps.sh --cluster installs it)")))
struct PrometheusScrapeTests {
    static let prometheus = PrometheusTools.prometheus
    static let promtool = PrometheusTools.promtool

    @Test func promtoolAcceptsTheServedExposition() async throws {
        let server = try await MetricsServer.start(try MetricsServerTests.configuration()) {
            NodeExposition.text(broken: ["shop/cart-0", "default/web-3"], unreadable: 2)
        }
        defer { Task { await server.stop() } }
        try await MetricsServerTests.healthy(server)
        let body = try MetricsServerTests.get(server, "/metrics").body
        let check = try runCommand([Self.promtool, "check", "metrics"], stdin: body)
        #expect(check.status == 0, "promtool check metrics: \(check.stdout)\(check.stderr)\n\(body)")
        // The negative case: promtool does reject what a careless renderer would serve.
        let bad = try runCommand([Self.promtool, "check", "metrics"], stdin: body.replacingOccurrences(of: "# TYPE iptaudit_pods gauge\n", with: "# TYPE iptaudit_pods gauge\niptaudit_pods{mode=\"sidecar\"} x\n"))
        #expect(bad.status != 0)
    }

    @Test func prometheusQueryReturnsExactlyTheBrokenPods() async throws {
        let broken = Locked<Set<String>>(["shop/cart-0", "shop/pay-1"])
        let pods = Locked(NodeExposition.pods)
        let server = try await MetricsServer.start(try MetricsServerTests.configuration(interval: .milliseconds(500))) {
            NodeExposition.text(pods: pods.get(), broken: broken.get())
        }
        defer { Task { await server.stop() } }
        try await MetricsServerTests.healthy(server)

        let instance = try PrometheusInstance(scraping: server.address)
        defer { instance.stop() }
        _ = try await waitFor("Prometheus to become ready", limit: .seconds(90), every: .milliseconds(250)) {
            do {
                let r = try instance.get("/-/ready")
                return (r.status == 200 ? true : nil, "\(r.status) \(r.body)")
            } catch { return (nil, "\(error); prometheus log: \(instance.log())") }
        }
        #expect(try await Self.brokenPods(by: instance, equal: ["shop/cart-0", "shop/pay-1"]) == ["shop/cart-0", "shop/pay-1"])

        // cart-0 is repaired, pay-1 is gone from the node, web-2 breaks: the query follows the audit.
        pods.set(NodeExposition.pods.filter { $0.pod != "pay-1" })
        broken.set(["default/web-2"])
        #expect(try await Self.brokenPods(by: instance, equal: ["default/web-2"]) == ["default/web-2"])

        // Prometheus saw the target as up and read the failure counter the server appends.
        let up = try Self.query(instance, "up{job=\"iptaudit\"} == 1 and on() iptaudit_audit_failures_total == 0")
        #expect(up.count == 1)
        // Node-level series keep the auditor's target labels; per-pod series carry the audited pod's.
        let modes = try Self.query(instance, "iptaudit_pods")
        #expect(Set(modes.compactMap { $0["pod"] }) == ["iptaudit-node-x7k2p"])
        #expect(Set(modes.compactMap { $0["node"] }) == ["node-a"])
    }

    /// Polls the query until its pods equal `expected` (bounded), and returns what it last answered.
    static func brokenPods(by instance: PrometheusInstance, equal expected: Set<String>) async throws -> Set<String> {
        try await waitFor("`iptaudit_pod_capture_ok == 0` to return \(expected.sorted())", limit: .seconds(90), every: .milliseconds(500)) {
            let pods = Set(try query(instance, "iptaudit_pod_capture_ok == 0").map { "\($0["namespace"] ?? "?")/\($0["pod"] ?? "?")" })
            return (pods == expected ? pods : nil, "\(pods.sorted())")
        }
    }

    /// The label sets of an instant query's result vector.
    static func query(_ instance: PrometheusInstance, _ promql: String) throws -> [[String: String]] {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let r = try instance.get("/api/v1/query?query=" + promql.addingPercentEncoding(withAllowedCharacters: allowed)!)
        try #require(r.status == 200, "query \(promql): \(r.status) \(r.body)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any], "\(r.body)")
        try #require(json["status"] as? String == "success", "\(r.body)")
        let data = try #require(json["data"] as? [String: Any], "\(r.body)")
        let result = try #require(data["result"] as? [[String: Any]], "\(r.body)")
        return result.map { ($0["metric"] as? [String: String]) ?? [:] }
    }
}

/// `prometheus` run from its binary on a free loopback port with a private data directory and a config that
/// scrapes one target every second; stopped (SIGTERM, then SIGKILL after 10 s) and removed by `stop()`.
final class PrometheusInstance: @unchecked Sendable {
    let port: Int
    let directory: URL
    let process = Process()
    private let logFile: URL

    init(scraping target: ListenAddress) throws {
        port = try HTTPProbe.freePort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("iptaudit-prometheus-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("data"), withIntermediateDirectories: true)
        let config = """
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: iptaudit
                # As deploy/podmonitor.yaml: the auditor's own namespace and pod are target labels, and the
                # exposition's (the audited pod's) must win.
                honor_labels: true
                static_configs:
                  - targets: ['\(target)']
                    labels:
                      namespace: iptaudit
                      pod: iptaudit-node-x7k2p
                      node: node-a

            """
        try config.write(to: directory.appendingPathComponent("prometheus.yml"), atomically: true, encoding: .utf8)
        logFile = directory.appendingPathComponent("prometheus.log")
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: PrometheusScrapeTests.prometheus)
        process.arguments = [
            "--config.file=\(directory.appendingPathComponent("prometheus.yml").path)",
            "--storage.tsdb.path=\(directory.appendingPathComponent("data").path)",
            "--web.listen-address=127.0.0.1:\(port)",
            "--log.level=warn",
        ]
        let log = try FileHandle(forWritingTo: logFile)
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    func get(_ target: String) throws -> HTTPReply {
        // HTTP/1.0: Prometheus then answers without chunked encoding and closes the connection.
        try HTTPProbe.request("GET", target, port: port, version: "HTTP/1.0")
    }

    func log() -> String { (try? String(contentsOf: logFile, encoding: .utf8)).map { String($0.suffix(2000)) } ?? "" }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            let deadline = ContinuousClock.now + .seconds(10)
            while process.isRunning && ContinuousClock.now < deadline { usleep(50_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }
}
