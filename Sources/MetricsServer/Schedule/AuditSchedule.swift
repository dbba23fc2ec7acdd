/// Runs the audit now and then every `interval` (start to start), never two at once: an audit that outlives its
/// timeout is counted as failed, and the next one starts only after it has really ended.
struct AuditSchedule: Sendable {
    var interval: Duration
    var timeout: Duration
    var audit: MetricsServer.Audit
    var state: ScrapeState
    var events: MetricsServer.EventHandler

    func run() async {
        let clock = ContinuousClock()
        var overrunning: Task<String, any Error>?
        while !Task.isCancelled {
            if let previous = overrunning {
                // Bounded only by cancellation: a stuck audit stops the schedule, and /healthz goes stale.
                guard await result(of: previous, within: .seconds(86_400 * 365)) != nil else { return }
                overrunning = nil
            }
            let started = clock.now
            let task = Task { try await audit() }
            switch await result(of: task, within: timeout) {
            case .success(let exposition)?:
                state.recordSuccess(exposition, at: clock.now)
            case .failure(let error)?:
                let reason = "the audit failed: \(String(describing: error))"
                state.recordFailure(reason)
                events(.auditFailed(reason))
            case nil:
                if Task.isCancelled { task.cancel(); return }
                task.cancel()
                overrunning = task
                let reason = "the audit took longer than \(DurationText.format(timeout)) and was abandoned"
                state.recordFailure(reason)
                events(.auditFailed(reason))
            }
            try? await clock.sleep(until: started + interval)
        }
    }
}
