import NIOConcurrencyHelpers

/// Waits for a task's result, but at most `timeout` and not past the waiter's cancellation: nil then, and the task
/// is left to finish (an audit need not honour cancellation; the schedule waits for it before starting another).
func result<T: Sendable>(of task: Task<T, any Error>, within timeout: Duration) async -> Result<T, any Error>? {
    let race = Race<Result<T, any Error>?>()
    return await withTaskCancellationHandler {
        await withCheckedContinuation { continuation in
            race.arm(continuation)
            let timer = Task {
                try? await Task.sleep(for: timeout)
                race.finish(nil)
            }
            Task {
                let outcome = await task.result
                // Finish before cancelling the timer: a cancelled timer wakes and finishes with nil, and if it ran
                // first a successful audit was reported as abandoned (seen once in CI under load).
                race.finish(outcome)
                timer.cancel()
            }
        }
    } onCancel: {
        race.finish(nil)
    }
}

/// The first of several finishers resumes the continuation; one that comes before the continuation is armed is kept.
private final class Race<T: Sendable>: Sendable {
    private enum State { case waiting, armed(CheckedContinuation<T, Never>), finished(T), resumed }
    private let state = NIOLockedValueBox<State>(.waiting)

    func arm(_ continuation: CheckedContinuation<T, Never>) {
        let early: T? = state.withLockedValue {
            if case .finished(let value) = $0 { $0 = .resumed; return value }
            $0 = .armed(continuation)
            return nil
        }
        if let early { continuation.resume(returning: early) }
    }

    func finish(_ value: T) {
        let continuation: CheckedContinuation<T, Never>? = state.withLockedValue {
            switch $0 {
            case .waiting: $0 = .finished(value); return nil
            case .armed(let c): $0 = .resumed; return c
            case .finished, .resumed: return nil
            }
        }
        continuation?.resume(returning: value)
    }
}
