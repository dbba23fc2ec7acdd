import Glibc
import NetfilterModel

/// Runs jobs on at most `width` threads, each with a deadline. A job still running at its deadline is given up
/// on: its result is `timedOut(index)`, and a fresh thread takes its place so the rest keep their pace; the
/// stuck thread finishes (or not) on its own and its late result is dropped. One job's failure is its own
/// result: nothing a job does stops the others.
///
/// Threads rather than Swift concurrency: a job blocks (setns threads, netlink, a helper's pipes), and the
/// cooperative pool has one thread per core, so a stuck job there would starve the watchdog too. A new thread
/// has no task-local values, so each job runs with the caller's `InputLimits` set again.
final class BoundedWork<Result: Sendable>: @unchecked Sendable {
    private let job: @Sendable (Int) -> Result
    private let timedOut: @Sendable (Int) -> Result
    private let count: Int
    private let timeout: Double
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    // Guarded by `mutex`.
    private var next = 0
    private var done = 0
    private var results: [Result?]
    private var running: [Int: Double] = [:]

    private init(count: Int, timeout: Double, job: @escaping @Sendable (Int) -> Result, timedOut: @escaping @Sendable (Int) -> Result) {
        self.count = count
        self.timeout = timeout
        self.job = job
        self.timedOut = timedOut
        results = Array(repeating: nil, count: count)
        pthread_mutex_init(&mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(&condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    /// The results in job order. Blocks until every job has a result (its own, or `timedOut`).
    static func run(count: Int, width: Int, timeout: Double, _ job: @escaping @Sendable (Int) -> Result,
                    timedOut: @escaping @Sendable (Int) -> Result) -> [Result] {
        guard count > 0 else { return [] }
        let limits = InputLimits.current
        let work = BoundedWork(count: count, timeout: timeout, job: { index in InputLimits.$current.withValue(limits) { job(index) } },
                               timedOut: timedOut)
        for _ in 0..<min(max(width, 1), count) { work.startWorker() }
        return work.collect()
    }

    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    private func startWorker() {
        let context = Unmanaged.passRetained(WorkerEntry { self.workerLoop() })
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            Unmanaged<WorkerEntry>.fromOpaque(raw).takeRetainedValue().run()
            return nil
        }, context.toOpaque())
        if rc != 0 {
            context.release()
            // No thread: run the next job here, on the caller's (the watchdog's) time.
            workerLoop(once: true)
        } else {
            pthread_detach(thread)
        }
    }

    private func workerLoop(once: Bool = false) {
        while true {
            pthread_mutex_lock(&mutex)
            guard next < count else { pthread_mutex_unlock(&mutex); return }
            let index = next
            next += 1
            running[index] = Self.now() + timeout
            pthread_mutex_unlock(&mutex)
            let result = job(index)
            pthread_mutex_lock(&mutex)
            let abandoned = running.removeValue(forKey: index) == nil
            if !abandoned {
                results[index] = result
                done += 1
                pthread_cond_broadcast(&condition)
            }
            pthread_mutex_unlock(&mutex)
            // A thread given up on stops here: its replacement is already running.
            if abandoned || once { return }
        }
    }

    private func collect() -> [Result] {
        pthread_mutex_lock(&mutex)
        while done < count {
            let now = Self.now()
            var replacements = 0
            for (index, deadline) in running where deadline <= now {
                running[index] = nil
                results[index] = timedOut(index)
                done += 1
                replacements += 1
            }
            if replacements > 0 {
                pthread_mutex_unlock(&mutex)
                for _ in 0..<replacements { startWorker() }
                pthread_mutex_lock(&mutex)
                continue
            }
            guard done < count else { break }
            let wake = running.values.min() ?? (now + 1)
            var until = timespec(tv_sec: Int(wake), tv_nsec: Int((wake - Double(Int(wake))) * 1e9))
            pthread_cond_timedwait(&condition, &mutex, &until)
        }
        let out = results.map { $0! }
        pthread_mutex_unlock(&mutex)
        return out
    }
}

/// A thread body without generic context, for the C entry point.
private final class WorkerEntry: @unchecked Sendable {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}
