import ArgumentParser
import Foundation
import Glibc
@testable import IptauditCommands
import MetricsServer
import Testing
import TestSupport

/// `--listen`, `--interval`, `--audit-timeout` as a command adopting `ListenOptions` parses them, and
/// `serve(audit:)` serving until its signal.
struct ListenOptionsTests {
    @Test func defaultsAndDerivedLimits() throws {
        #expect(try ListenOptions.parse([]).configuration == nil, "without --listen nothing is served")
        let c = try #require(try ListenOptions.parse(["--listen", "0.0.0.0:9180", "--interval", "60s"]).configuration)
        #expect(c.listen == ListenAddress(host: "0.0.0.0", port: 9180))
        #expect(c.interval == .seconds(60) && c.auditTimeout == .seconds(60) && c.staleAfter == .seconds(240))
        #expect(c.failureCounter.name == "iptaudit_audit_failures_total")
        let long = try #require(try ListenOptions.parse(["--listen", "[::]:9180", "--interval", "1h"]).configuration)
        #expect(long.auditTimeout == .seconds(300), "the default timeout is the interval, at most 5m")
        let plain = try #require(try ListenOptions.parse(["--listen", "127.0.0.1:0"]).configuration)
        #expect(plain.interval == .seconds(60) && plain.auditTimeout == .seconds(60), "every minute unless --interval says otherwise")
        let explicit = try #require(try ListenOptions.parse(["--listen", "127.0.0.1:0", "--interval", "10", "--audit-timeout", "2500ms"]).configuration)
        #expect(explicit.interval == .seconds(10) && explicit.auditTimeout == .milliseconds(2500) && explicit.staleAfter == .milliseconds(32_500))
    }

    @Test(arguments: [
        (["--listen", "localhost:9180"], "expected ADDR:PORT with a numeric IPv4 address or a bracketed IPv6 one"),
        (["--listen", "0.0.0.0:9180", "--interval", "0s"], "--interval must be between 1s and 24h, got 0s"),
        (["--listen", "0.0.0.0:9180", "--interval", "2d"], "The value '2d' is invalid for '--interval <duration>'"),
        (["--listen", "0.0.0.0:9180", "--audit-timeout", "10ms"], "--audit-timeout must be between 100ms and 24h, got 10ms"),
        (["--audit-timeout", "5s"], "--audit-timeout needs --listen"),
        (["--interval", "5s"], "--interval needs --listen"),
    ])
    func badValuesAreOneClearLine(_ arguments: [String], _ message: String) {
        do {
            _ = try ListenOptions.parse(arguments)
            Issue.record("\(arguments) parsed")
        } catch {
            #expect(ListenOptions.message(for: error).contains(message), "\(ListenOptions.message(for: error))")
            #expect(ListenOptions.exitCode(for: error) == ExitCode(64))
        }
    }

    @Test func serveAnswersUntilItsSignal() async throws {
        signal(SIGUSR1, SIG_IGN)   // a signal sent before serve's own handling is in place is dropped, not fatal
        let port = try HTTPProbe.freePort()
        // An audit timeout far beyond any wait, so a busy test machine cannot turn the first audit into a failure.
        let options = try ListenOptions.parse(["--listen", "127.0.0.1:\(port)", "--interval", "1s", "--audit-timeout", "1h"])
        let returned = Locked<String?>(nil)
        let thread = Thread {
            do {
                try options.serve(stoppingOn: [SIGUSR1]) { "# TYPE demo gauge\ndemo 1\n" }
                returned.set("ok")
            } catch { returned.set("\(error)") }
        }
        thread.start()
        let metrics: HTTPReply = try await waitFor("serve to answer /metrics on port \(port)") {
            if let early = returned.get() { throw HTTPProbe.Failure(description: "serve returned before answering: \(early)") }
            let r = try? HTTPProbe.request("GET", "/metrics", port: port)
            return (r?.status == 200 ? r : nil, r.map { "\($0.status) \($0.body)" } ?? "no answer")
        }
        #expect(metrics.body == "# TYPE demo gauge\ndemo 1\n# HELP iptaudit_audit_failures_total Audits that failed or timed out since the server started; /metrics keeps the last good audit's values.\n# TYPE iptaudit_audit_failures_total counter\niptaudit_audit_failures_total 0\n")
        let outcome = try await waitFor("serve to return on SIGUSR1", limit: .seconds(30), every: .milliseconds(200)) {
            if let r = returned.get() { return (r, "") }
            kill(getpid(), SIGUSR1)
            return (nil, "still serving")
        }
        #expect(outcome == "ok")
    }
}
