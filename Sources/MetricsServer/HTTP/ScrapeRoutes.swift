/// The server's answer to one request, decided from the snapshot alone (no I/O), so routing and health are
/// plain functions.
struct ScrapeResponse: Equatable, Sendable {
    var status: Int
    var contentType: String
    var body: String
    var allow: String? = nil

    /// Prometheus' text exposition format, version 0.0.4.
    static let expositionType = "text/plain; version=0.0.4; charset=utf-8"
    static let textType = "text/plain; charset=utf-8"
}

/// `GET /metrics`, `GET /healthz`; 404 for any other path, 405 for any other method (HEAD is GET without a body).
struct ScrapeRoutes: Sendable {
    var failureCounter: MetricName
    /// /healthz fails once the last successful audit is older than this.
    var staleAfter: Duration

    func response(method: String, target: String, snapshot: ScrapeSnapshot, now: ContinuousClock.Instant) -> ScrapeResponse {
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target
        guard path == "/metrics" || path == "/healthz" else {
            return ScrapeResponse(status: 404, contentType: ScrapeResponse.textType, body: "not found: this server serves /metrics and /healthz\n")
        }
        guard method == "GET" || method == "HEAD" else {
            return ScrapeResponse(status: 405, contentType: ScrapeResponse.textType, body: "method not allowed: use GET\n", allow: "GET, HEAD")
        }
        return path == "/metrics" ? metrics(snapshot) : health(snapshot, now: now)
    }

    /// The last good exposition and the failure counter. Before any audit finished there is nothing true to say: 503.
    func metrics(_ snapshot: ScrapeSnapshot) -> ScrapeResponse {
        guard snapshot.auditsFinished > 0 else {
            return ScrapeResponse(status: 503, contentType: ScrapeResponse.textType, body: "no audit has finished yet\n")
        }
        var body = snapshot.exposition ?? ""
        if !body.isEmpty && !body.hasSuffix("\n") { body += "\n" }
        body += """
            # HELP \(failureCounter.name) Audits that failed or timed out since the server started; /metrics keeps the last good audit's values.
            # TYPE \(failureCounter.name) counter
            \(failureCounter.name) \(snapshot.failures)

            """
        return ScrapeResponse(status: 200, contentType: ScrapeResponse.expositionType, body: body)
    }

    /// 200 while a successful audit is recent enough, else 503; the body is one line saying why.
    func health(_ snapshot: ScrapeSnapshot, now: ContinuousClock.Instant) -> ScrapeResponse {
        let failed = snapshot.lastFailure.map { "; last failure: \($0)" } ?? ""
        guard let last = snapshot.lastSuccess else {
            let line = snapshot.failures == 0
                ? "starting: the first audit has not finished"
                : "unhealthy: no audit has succeeded (\(snapshot.failures) failed)\(failed)"
            return ScrapeResponse(status: 503, contentType: ScrapeResponse.textType, body: line + "\n")
        }
        let age = now - last
        guard age <= staleAfter else {
            let line = "unhealthy: the last successful audit was \(DurationText.format(Self.whole(age))) ago, more than \(DurationText.format(staleAfter))\(failed)"
            return ScrapeResponse(status: 503, contentType: ScrapeResponse.textType, body: line + "\n")
        }
        return ScrapeResponse(status: 200, contentType: ScrapeResponse.textType, body: "ok: last successful audit \(DurationText.format(Self.whole(age))) ago\n")
    }

    private static func whole(_ d: Duration) -> Duration { .milliseconds(d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000) }
}

/// A Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`), checked once so it can be printed as is.
public struct MetricName: Sendable, Hashable {
    public let name: String
    public init?(_ name: String) {
        guard let first = name.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first),
              name.utf8.allSatisfy({ $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ":")
                  || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0)
                  || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { return nil }
        self.name = name
    }
}
