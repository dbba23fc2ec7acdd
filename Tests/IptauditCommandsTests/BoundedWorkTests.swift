import Foundation
@testable import IptauditCommands
import NetfilterModel
import Testing

/// `node`'s worker threads: results in job order, never more than `width` jobs at once, and a job that never
/// returns is given up on at its deadline while every other job still gets its own result.
@Suite struct BoundedWorkTests {
    /// Counts jobs running at once, and holds the stuck job until the test lets it go.
    final class Probe: @unchecked Sendable {
        let lock = NSCondition()
        var running = 0
        var peak = 0
        var released = false
        func enter() { lock.lock(); running += 1; peak = max(peak, running); lock.unlock() }
        func leave() { lock.lock(); running -= 1; lock.unlock() }
        func waitForRelease() { lock.lock(); while !released { lock.wait() }; lock.unlock() }
        func release() { lock.lock(); released = true; lock.broadcast(); lock.unlock() }
    }

    @Test func resultsInOrderWithinTheWidth() {
        let probe = Probe()
        let out = BoundedWork<Int>.run(count: 40, width: 3, timeout: 600, { i in
            probe.enter()
            usleep(1000)
            probe.leave()
            return i * i
        }, timedOut: { _ in -1 })
        #expect(out == (0..<40).map { $0 * $0 })
        #expect(probe.peak <= 3 && probe.peak >= 1)
    }

    @Test func aStuckJobIsGivenUpOnAndTheOthersFinish() {
        let probe = Probe()
        defer { probe.release() }
        // Job 2 blocks until the test ends: only the deadline can end its wait.
        let out = BoundedWork<String>.run(count: 12, width: 2, timeout: 1, { i in
            if i == 2 { probe.waitForRelease() }
            return "done \(i)"
        }, timedOut: { i in "timed out \(i)" })
        #expect(out[2] == "timed out 2")
        #expect(out.enumerated().filter { $0.offset != 2 }.allSatisfy { $0.element == "done \($0.offset)" })
    }

    /// Input limits are task-local, which a new thread does not inherit: every job sees the caller's.
    @Test func everyJobRunsWithTheCallersInputLimits() {
        var limits = InputLimits()
        limits.rules = 17
        let seen = InputLimits.$current.withValue(limits) {
            BoundedWork<Int>.run(count: 8, width: 3, timeout: 600, { _ in InputLimits.current.rules }, timedOut: { _ in -1 })
        }
        #expect(seen == Array(repeating: 17, count: 8))
        #expect(BoundedWork<Int>.run(count: 2, width: 2, timeout: 600, { _ in InputLimits.current.rules }, timedOut: { _ in -1 })
                == Array(repeating: InputLimits().rules, count: 2))
    }

    @Test func noJobsNoThreads() {
        #expect(BoundedWork<Int>.run(count: 0, width: 4, timeout: 1, { $0 }, timedOut: { $0 }).isEmpty)
    }
}
