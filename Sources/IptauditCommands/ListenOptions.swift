import ArgumentParser
import Dispatch
import Glibc
import MetricsServer

/// `--listen ADDR:PORT` and its interval: keep running, re-audit on the interval and serve the result on
/// `/metrics` and `/healthz` (docs/running-in-a-cluster.md). A command adopts it with an `@OptionGroup` and, when
/// `address` is set, calls `serve(audit:)` with a closure rendering one audit as Prometheus exposition text.
struct ListenOptions: ParsableArguments {
    @Option(name: .customLong("listen"),
            help: ArgumentHelp("Keep running: audit every --interval and serve /metrics and /healthz on this address (0.0.0.0:9180, [::]:9180; port 0 picks a free one).", valueName: "addr:port"),
            transform: { text in
                do throws(ListenAddressError) { return try ListenAddress(parsing: text) } catch { throw ValidationError(error.description) }
            })
    var address: ListenAddress?
    @Option(help: ArgumentHelp("With --listen: time from the start of one audit to the start of the next (60s, 5m, 1h).", valueName: "duration"))
    var interval: AuditDuration?
    /// Every minute unless `--interval` says otherwise.
    var every: Duration { interval?.duration ?? .seconds(60) }
    @Option(help: ArgumentHelp("With --listen: an audit running longer counts as failed (default: the interval, at most 5m).", valueName: "duration"))
    var auditTimeout: AuditDuration?

    /// The counter the server appends to every exposition (docs/running-in-a-cluster.md names it).
    static let failureCounter = MetricName("iptaudit_audit_failures_total")!
    /// `/healthz` fails after this many intervals without a successful audit.
    static let staleIntervals = 3

    func validate() throws {
        if let interval, interval.duration < .seconds(1) || interval.duration > .seconds(86_400) {
            throw ValidationError("--interval must be between 1s and 24h, got \(DurationText.format(interval.duration))")
        }
        if let auditTimeout, auditTimeout.duration < .milliseconds(100) || auditTimeout.duration > .seconds(86_400) {
            throw ValidationError("--audit-timeout must be between 100ms and 24h, got \(DurationText.format(auditTimeout.duration))")
        }
        if address == nil && interval != nil { throw ValidationError("--interval needs --listen") }
        if address == nil && auditTimeout != nil { throw ValidationError("--audit-timeout needs --listen") }
    }

    var configuration: MetricsServer.Configuration? {
        guard let address else { return nil }
        let timeout = auditTimeout?.duration ?? min(every, .seconds(300))
        return MetricsServer.Configuration(
            listen: address, interval: every, auditTimeout: timeout,
            staleAfter: every * Self.staleIntervals + timeout, failureCounter: Self.failureCounter)
    }

    /// Serves until SIGTERM or SIGINT (`signals`), then returns (exit 0). Prints where it listens and each failed
    /// audit on stderr; a socket that cannot be bound is exit 2.
    func serve(stoppingOn signals: [Int32] = [SIGTERM, SIGINT], audit: @escaping MetricsServer.Audit) throws {
        guard let configuration else { return }
        let outcome = ServeOutcome()
        let finished = DispatchSemaphore(value: 0)
        // High priority: called from a plain thread, the task would otherwise rank below everything else on the
        // shared executor (seen in the test suite, where blocking tests kept it waiting for minutes).
        Task(priority: .high) {
            defer { finished.signal() }
            do throws(MetricsServerError) {
                let server = try await MetricsServer.start(configuration, events: { event in
                    switch event {
                    case .auditFailed(let reason): printError("iptaudit: \(reason); /metrics keeps the last good audit")
                    }
                }, audit: audit)
                printError("iptaudit: serving /metrics and /healthz on \(server.address), auditing every \(DurationText.format(configuration.interval))")
                let signal = await server.run(untilSignal: signals)
                printError("iptaudit: stopped on signal \(signal)")
            } catch {
                outcome.error = error
            }
        }
        finished.wait()
        if let error = outcome.error {
            printError("iptaudit: \(error.description)")
            throw ExitCodes.unreadable
        }
    }
}

/// Written by the serving task before it signals the semaphore, read after the wait: the semaphore orders the two.
private final class ServeOutcome: @unchecked Sendable {
    var error: MetricsServerError?
}

/// A duration option's value (`60s`, `5m`, `1h`, `500ms`, bare seconds).
struct AuditDuration: ExpressibleByArgument, Sendable {
    var duration: Duration
    init(_ duration: Duration) { self.duration = duration }
    init?(argument: String) {
        guard let duration = DurationText.parse(argument) else { return nil }
        self.duration = duration
    }
    var defaultValueDescription: String { DurationText.format(duration) }
}
