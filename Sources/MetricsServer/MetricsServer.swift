import Dispatch
import Glibc
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// Serves an audit's Prometheus exposition on `/metrics` and its freshness on `/healthz`, re-running the audit on
/// an interval. Knows HTTP and time, nothing of what is audited: the audit is a closure returning exposition text.
public final class MetricsServer: Sendable {
    /// One audit: the exposition text of its result, or an error (then the last good exposition is kept).
    public typealias Audit = @Sendable () async throws -> String
    public typealias EventHandler = @Sendable (Event) -> Void

    public enum Event: Sendable, Equatable {
        case auditFailed(String)
    }

    public struct Configuration: Sendable {
        public var listen: ListenAddress
        /// Start to start.
        public var interval: Duration
        /// An audit running longer counts as failed; the next starts only after it ends.
        public var auditTimeout: Duration
        /// `/healthz` answers 503 once the last successful audit is older than this.
        public var staleAfter: Duration
        /// The counter of failed audits appended to every exposition.
        public var failureCounter: MetricName

        public init(listen: ListenAddress, interval: Duration, auditTimeout: Duration, staleAfter: Duration, failureCounter: MetricName) {
            self.listen = listen
            self.interval = interval
            self.auditTimeout = auditTimeout
            self.staleAfter = staleAfter
            self.failureCounter = failureCounter
        }
    }

    /// The address really bound (port 0 replaced by the kernel's choice).
    public let address: ListenAddress
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let schedule: Task<Void, Never>
    private let state: ScrapeState

    /// Binds, then starts the first audit; returns once the socket listens.
    public static func start(_ configuration: Configuration, events: @escaping EventHandler = { _ in },
                             audit: @escaping Audit) async throws(MetricsServerError) -> MetricsServer {
        let state = ScrapeState()
        let routes = ScrapeRoutes(failureCounter: configuration.failureCounter, staleAfter: configuration.staleAfter)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    // Longer than a scrape interval, so a scraper's idle keep-alive connection is not closed under it.
                    try pipeline.addHandler(IdleStateHandler(readTimeout: .seconds(150)))
                    try pipeline.addHandler(IdleConnectionCloser())
                    try pipeline.configureHTTPServerPipeline(withErrorHandling: true)
                    try pipeline.addHandler(ScrapeHandler(routes: routes, state: state))
                }
            }
            .childChannelOption(.maxMessagesPerRead, value: 4)
        let channel: any Channel
        do {
            channel = try await bootstrap.bind(host: configuration.listen.host, port: configuration.listen.port).get()
        } catch {
            try? await group.shutdownGracefully()
            throw MetricsServerError(address: configuration.listen, reason: String(describing: error))
        }
        let bound = ListenAddress(host: configuration.listen.host, port: channel.localAddress?.port ?? configuration.listen.port)
        let schedule = AuditSchedule(interval: configuration.interval, timeout: configuration.auditTimeout,
                                     audit: audit, state: state, events: events)
        return MetricsServer(address: bound, group: group, channel: channel, schedule: Task { await schedule.run() }, state: state)
    }

    private init(address: ListenAddress, group: MultiThreadedEventLoopGroup, channel: any Channel, schedule: Task<Void, Never>, state: ScrapeState) {
        self.address = address
        self.group = group
        self.channel = channel
        self.schedule = schedule
        self.state = state
    }

    /// What the endpoints answer from now.
    public var snapshot: ScrapeSnapshot { state.snapshot }

    /// Stops auditing (an audit in flight is cancelled and not waited for), closes the listener and its connections.
    public func stop() async {
        schedule.cancel()
        try? await channel.close()
        try? await group.shutdownGracefully()
    }

    /// Serves until one of `signals` arrives (their default action is replaced for good), then stops; returns the signal.
    @discardableResult
    public func run(untilSignal signals: [Int32] = [SIGTERM, SIGINT]) async -> Int32 {
        let signal = await Self.firstSignal(of: signals)
        await stop()
        return signal
    }

    /// Waits for the first of `signals`, through dispatch's signal sources (the signals are ignored otherwise).
    static func firstSignal(of signals: [Int32]) async -> Int32 {
        let sources = NIOLockedValueBox<[any DispatchSourceSignal]>([])
        return await withCheckedContinuation { continuation in
            let once = NIOLockedValueBox(Optional(continuation))
            let queue = DispatchQueue(label: "iptaudit.metrics.signals")
            for number in signals {
                Glibc.signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
                source.setEventHandler {
                    guard let continuation = once.withLockedValue({ c in defer { c = nil }; return c }) else { return }
                    for s in sources.withLockedValue({ $0 }) { s.cancel() }
                    continuation.resume(returning: number)
                }
                sources.withLockedValue { $0.append(source) }
                source.resume()
            }
        }
    }
}

/// The socket could not be bound (address in use, not an address of this host, no permission).
public struct MetricsServerError: Error, Sendable, CustomStringConvertible {
    public var address: ListenAddress
    public var reason: String
    public var description: String { "cannot listen on \(address): \(reason)" }
}
