import Synchronization

/// A bound on the work of one verification, in walk steps: a rule applied to one box of packets. Rules whose matches cut the packets many ways and whose
/// branches do not end (MARKs, jumps that return) multiply their paths with every few rules (docs/benchmarks.md,
/// the varied shape): without a bound such a table is verified for hours, which to the user is a hang. Every
/// walk of a run takes its steps from the budget the command binds (`IPTAUDIT_MAX_WALK_STEPS`); past it the walks stop and the run is
/// void (the command says so and exits 2). Unbound (tests, `trace`), nothing is counted.
public final class WalkBudget: Sendable {
    public let limit: Int
    private let taken = Atomic<Int>(0)

    public init(limit: Int) { self.limit = limit }

    /// Work taken (a rule step, weighed by the packet boxes it splits); false once the budget is spent.
    func take(_ amount: Int) -> Bool { taken.add(amount, ordering: .relaxed).newValue <= limit }

    /// Work taken so far.
    public var spent: Int { taken.load(ordering: .relaxed) }

    /// Whether some walk stopped for want of budget, leaving the run's outcomes incomplete.
    public var isExhausted: Bool { spent > limit }

    /// The budget of the run in progress.
    @TaskLocal public static var current: WalkBudget?
}
