import NIOConcurrencyHelpers

/// What the endpoints answer from: the last good exposition, when audits finished, and how many failed. Written by
/// the audit loop, read by the event loop for every request, so it sits behind a lock rather than an actor hop.
public struct ScrapeSnapshot: Sendable {
    /// The exposition of the last audit that succeeded.
    public var exposition: String?
    public var lastSuccess: ContinuousClock.Instant?
    public var auditsFinished = 0
    public var failures = 0
    public var lastFailure: String?

    public init() {}
}

/// The lock around the snapshot, shared by the schedule and the HTTP handlers.
final class ScrapeState: Sendable {
    private let box = NIOLockedValueBox(ScrapeSnapshot())

    var snapshot: ScrapeSnapshot { box.withLockedValue { $0 } }

    func recordSuccess(_ exposition: String, at instant: ContinuousClock.Instant) {
        box.withLockedValue {
            $0.exposition = exposition
            $0.lastSuccess = instant
            $0.auditsFinished += 1
        }
    }

    func recordFailure(_ reason: String) {
        box.withLockedValue {
            $0.failures += 1
            $0.lastFailure = reason
            $0.auditsFinished += 1
        }
    }
}
