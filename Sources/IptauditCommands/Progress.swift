import Dispatch
import Glibc

/// A periodic "still working" line on stderr for runs long enough to make a user wonder (a node's 100,000 rules
/// take tens of seconds to verify), only when stderr is a terminal: a pipe or a log file gets nothing.
final class ProgressLine: @unchecked Sendable {
    private let timer: DispatchSourceTimer?
    private let start = DispatchTime.now()
    private let lock = StageLock()
    private var stage: String

    /// Starts reporting `stage` after `delay` seconds, then every `interval` seconds, until `finish()`.
    init(_ stage: String, delay: Double = 2, interval: Double = 5,
         enabled: Bool = isatty(STDERR_FILENO) == 1) {
        self.stage = stage
        guard enabled else {
            timer = nil
            return
        }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
        self.timer = timer
        timer.schedule(deadline: .now() + delay, repeating: interval)
        timer.setEventHandler { [weak self] in self?.report() }
        timer.resume()
    }

    /// What the run is doing now, for the next line.
    func update(_ stage: String) { lock.with { self.stage = stage } }

    func finish() { timer?.cancel() }

    deinit { timer?.cancel() }

    private func report() {
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        let line = "iptaudit: \(lock.with { stage }) … \(Int(seconds)) s\n"
        _ = line.utf8CString.withUnsafeBufferPointer { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count - 1) }
    }
}

/// A pthread mutex around the stage text, which the timer's thread reads.
private final class StageLock: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func with<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }
}
