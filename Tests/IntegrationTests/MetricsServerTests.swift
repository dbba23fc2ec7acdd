import Foundation
import Glibc
import MetricsServer
import Testing
import TestSupport

/// The `--listen` server in-process on loopback: what /metrics and /healthz answer before, between and after
/// audits, when an audit fails or overruns, the HTTP errors, and stopping on a signal. Every wait is bounded.
@Suite struct MetricsServerTests {
    static let counter = MetricName("iptaudit_audit_failures_total")!

    static func configuration(_ listen: String = "127.0.0.1:0", interval: Duration = .milliseconds(200),
                              timeout: Duration = .seconds(3600), staleAfter: Duration = .seconds(7200)) throws -> MetricsServer.Configuration {
        MetricsServer.Configuration(listen: try ListenAddress(parsing: listen), interval: interval, auditTimeout: timeout,
                                    staleAfter: staleAfter, failureCounter: counter)
    }

    static func get(_ server: MetricsServer, _ target: String, method: String = "GET", version: String = "HTTP/1.1") throws -> HTTPReply {
        try HTTPProbe.request(method, target, host: server.address.host, port: server.address.port, version: version)
    }

    /// Waits until `/healthz` answers 200.
    static func healthy(_ server: MetricsServer) async throws {
        _ = try await waitFor("/healthz to answer 200") {
            let r = try get(server, "/healthz")
            return (r.status == 200 ? r : nil, "\(r.status) \(r.body)")
        }
    }

    @Test func endpointsAnswerFromTheLatestAudit() async throws {
        let gate = Gate()
        let broken = Locked<Set<String>>(["shop/cart-0"])
        let server = try await MetricsServer.start(try Self.configuration()) {
            await gate.pass()
            return NodeExposition.text(broken: broken.get())
        }
        defer { Task { await server.stop() } }
        #expect(server.address.port != 0)

        // The first audit is held: nothing true to serve yet.
        let starting = try Self.get(server, "/healthz")
        #expect(starting.status == 503)
        #expect(starting.body == "starting: the first audit has not finished\n")
        #expect(try Self.get(server, "/metrics").status == 503)

        gate.open()
        try await Self.healthy(server)
        let metrics = try Self.get(server, "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        #expect(metrics.headers["content-length"] == String(metrics.body.utf8.count))
        #expect(metrics.body.hasPrefix(NodeExposition.text(broken: ["shop/cart-0"])))
        #expect(metrics.body.hasSuffix("# TYPE iptaudit_audit_failures_total counter\niptaudit_audit_failures_total 0\n"))
        #expect(metrics.body.contains("iptaudit_pod_capture_ok{namespace=\"shop\",pod=\"cart-0\",mode=\"sidecar\"} 0\n"))

        // A later audit's exposition replaces the earlier one.
        broken.set(["default/web-2"])
        let changed = try await waitFor("/metrics to show web-2 broken") {
            let r = try Self.get(server, "/metrics")
            return (r.body.contains("pod=\"web-2\",mode=\"sidecar\"} 0") ? r : nil, r.body)
        }
        #expect(changed.body.contains("iptaudit_pod_capture_ok{namespace=\"shop\",pod=\"cart-0\",mode=\"sidecar\"} 1\n"))

        // Query strings are ignored, HEAD is GET without a body, HTTP/1.0 is answered.
        #expect(try Self.get(server, "/metrics?name[]=iptaudit_pods").status == 200)
        let head = try Self.get(server, "/metrics", method: "HEAD")
        #expect(head.status == 200 && head.body.isEmpty && Int(head.headers["content-length"] ?? "") ?? 0 > 0)
        let old = try Self.get(server, "/healthz", version: "HTTP/1.0")
        #expect(old.status == 200 && old.body.hasPrefix("ok: last successful audit "))

        for path in ["/", "/metricsx", "/healthz/extra", "/api/v1/query"] {
            let r = try Self.get(server, path)
            #expect(r.status == 404, "\(path)")
        }
        for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
            let r = try Self.get(server, "/metrics", method: method)
            #expect(r.status == 405, "\(method)")
            #expect(r.headers["allow"] == "GET, HEAD")
        }
    }

    @Test func aFailingAuditKeepsTheLastGoodExpositionAndCountsTheFailure() async throws {
        let calls = Locked(0)
        let events = Locked<[MetricsServer.Event]>([])
        let server = try await MetricsServer.start(try Self.configuration(interval: .milliseconds(100), staleAfter: .seconds(1)),
                                                   events: { e in events.update { $0.append(e) } }) {
            let n = calls.update { $0 += 1; return $0 }
            if n > 1 { throw AuditBroke(number: n) }
            return NodeExposition.text(broken: ["shop/pay-1"])
        }
        defer { Task { await server.stop() } }
        let failing = try await waitFor("the failure counter to reach 3") {
            let r = try Self.get(server, "/metrics")
            let count = r.body.split(separator: "\n").first { $0.hasPrefix("iptaudit_audit_failures_total ") }.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
            return (count >= 3 ? r : nil, r.body)
        }
        #expect(failing.status == 200)
        #expect(failing.body.hasPrefix(NodeExposition.text(broken: ["shop/pay-1"])), "the last good exposition is still served")
        // No successful audit for longer than staleAfter: /healthz says so, with the last failure.
        let stale = try await waitFor("/healthz to turn 503") {
            let r = try Self.get(server, "/healthz")
            return (r.status == 503 ? r : nil, "\(r.status) \(r.body)")
        }
        #expect(stale.body.hasPrefix("unhealthy: the last successful audit was "))
        #expect(stale.body.contains("; last failure: the audit failed: audit ") && stale.body.hasSuffix(" broke\n"), "\(stale.body)")
        #expect(stale.body.split(separator: "\n").count == 1)
        #expect(events.get().contains(.auditFailed("the audit failed: audit 2 broke")))
    }

    @Test func anOverrunningAuditIsAbandonedAndNeverOverlapsTheNext() async throws {
        let gate = Gate()
        let started = Locked(0), running = Locked(0), mostAtOnce = Locked(0)
        let server = try await MetricsServer.start(try Self.configuration(interval: .milliseconds(50), timeout: .milliseconds(100))) {
            let n = started.update { $0 += 1; return $0 }
            let now = running.update { $0 += 1; return $0 }
            mostAtOnce.update { $0 = max($0, now) }
            defer { running.update { $0 -= 1 } }
            if n == 1 { await gate.pass() }   // ignores cancellation, as a stuck read would
            return NodeExposition.text(broken: [])
        }
        defer { Task { await server.stop() } }
        let timedOut = try await waitFor("the first audit to be abandoned") {
            let r = try Self.get(server, "/metrics")
            return (r.body.contains("iptaudit_audit_failures_total 1\n") ? r : nil, "\(r.status) \(r.body)")
        }
        #expect(timedOut.status == 200, "a failed first audit still serves the counter")
        #expect(!timedOut.body.contains("iptaudit_pod_capture_ok"), "no exposition before a successful audit")
        let unhealthy = try Self.get(server, "/healthz")
        #expect(unhealthy.status == 503)
        #expect(unhealthy.body == "unhealthy: no audit has succeeded (1 failed); last failure: the audit took longer than 100ms and was abandoned\n")
        // Ten intervals later the stuck audit still holds the schedule: no second audit has started.
        try await Task.sleep(for: .milliseconds(500))
        #expect(started.get() == 1)
        gate.open()
        try await Self.healthy(server)
        #expect(started.get() >= 2)
        #expect(mostAtOnce.get() == 1)
    }

    @Test func servesOnIPv6Loopback() async throws {
        let inet6 = (try? String(contentsOfFile: "/proc/net/if_inet6", encoding: .utf8)) ?? ""
        try #require(inet6.contains("00000000000000000000000000000001"), "this host has no ::1")
        let server = try await MetricsServer.start(try Self.configuration("[::1]:0")) { NodeExposition.text(broken: []) }
        defer { Task { await server.stop() } }
        #expect(server.address.description == "[::1]:\(server.address.port)")
        try await Self.healthy(server)
        #expect(try Self.get(server, "/metrics").status == 200)
    }

    @Test func aTakenPortIsOneLineNamingTheAddress() async throws {
        let first = try await MetricsServer.start(try Self.configuration()) { "" }
        defer { Task { await first.stop() } }
        let taken = "127.0.0.1:\(first.address.port)"
        do {
            let second = try await MetricsServer.start(try Self.configuration(taken)) { "" }
            await second.stop()
            Issue.record("a second server bound \(taken)")
        } catch let error as MetricsServerError {
            #expect(error.description.hasPrefix("cannot listen on \(taken): "))
            #expect(error.description.contains("in use"), "\(error.description)")
            #expect(!error.description.contains("\n"))
        }
    }

    @Test func aSignalStopsTheServerAndClosesThePort() async throws {
        Glibc.signal(SIGUSR2, SIG_IGN)   // a signal sent before the server's own handling is in place is dropped, not fatal
        let server = try await MetricsServer.start(try Self.configuration()) { NodeExposition.text(broken: []) }
        let port = server.address.port
        let stopped = Locked<Int32?>(nil)
        Task { stopped.set(await server.run(untilSignal: [SIGUSR2])) }
        try await Self.healthy(server)
        let signal: Int32 = try await waitFor("the server to stop on SIGUSR2", limit: .seconds(30), every: .milliseconds(200)) {
            if let s = stopped.get() { return (s, "") }
            kill(getpid(), SIGUSR2)
            return (nil, "still serving")
        }
        #expect(signal == SIGUSR2)
        do {
            let fd = try HTTPProbe.connect(host: "127.0.0.1", port: port)
            close(fd)
            Issue.record("port \(port) still accepts connections after the stop")
        } catch let failure as HTTPProbe.ConnectFailure {
            #expect(failure.errno == ECONNREFUSED)
        }
    }

    @Test(arguments: [
        ("0.0.0.0:9180", "0.0.0.0", 9180), ("127.0.0.1:0", "127.0.0.1", 0), ("[::]:9180", "::", 9180), ("[::1]:65535", "::1", 65535),
    ])
    func listenAddressesParse(_ text: String, _ host: String, _ port: Int) throws {
        let a = try ListenAddress(parsing: text)
        #expect(a.host == host && a.port == port)
        #expect(a.description == text)
    }

    @Test(arguments: ["9180", ":9180", "localhost:9180", "0.0.0.0:", "0.0.0.0:65536", "0.0.0.0:-1", "0.0.0.0:+80", "::1:9180",
                      "[::1]9180", "[::1:9180", "[0.0.0.0]:80", "1.2.3:80", "0.0.0.0:9180 ", ""])
    func badListenAddressesAreRefused(_ text: String) {
        #expect(throws: ListenAddressError.self) { try ListenAddress(parsing: text) }
    }

    @Test func durationsParseWithUnits() {
        #expect(DurationText.parse("60s") == .seconds(60))
        #expect(DurationText.parse("5m") == .seconds(300))
        #expect(DurationText.parse("1h") == .seconds(3600))
        #expect(DurationText.parse("250ms") == .milliseconds(250))
        #expect(DurationText.parse("1.5") == .milliseconds(1500))
        for bad in ["", "s", "-5s", "5d", "1e3s", "5 s", "nan", "inf"] { #expect(DurationText.parse(bad) == nil, "\(bad)") }
        #expect(DurationText.format(.seconds(60)) == "60s")
        #expect(DurationText.format(.milliseconds(1500)) == "1500ms")
    }
}

struct AuditBroke: Error, CustomStringConvertible {
    var number: Int
    var description: String { "audit \(number) broke" }
}

/// Holds audits until the test opens it; waiting ignores cancellation, like a read stuck in the kernel.
final class Gate: @unchecked Sendable {
    private let lock = NSLock()
    private var isOpen = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func pass() async {
        await withCheckedContinuation { c in
            let ready = lock.withLock { () -> Bool in
                if isOpen { return true }
                waiting.append(c)
                return false
            }
            if ready { c.resume() }
        }
    }

    func open() {
        let resumed = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            isOpen = true
            defer { waiting = [] }
            return waiting
        }
        for c in resumed { c.resume() }
    }
}
