import IstioCapture
import NetfilterModel

/// One connection of the pod seen in its socket tables, what the sockets show happened to it, and what the rules
/// (expected for the configuration, and the live ones when readable) do with its first packet.
public struct ObservedConnection: Hashable, Sendable, Codable {
    public enum Direction: String, Hashable, Sendable, Codable {
        /// The application connected out (its socket has no listener behind it).
        case outbound
        /// The application accepted it on a listening port.
        case inbound
    }

    /// What the sockets show.
    public enum Evidence: String, Hashable, Sendable, Codable {
        /// Envoy (or the DNS proxy) holds the other end: its accepted socket's peer is the application's source
        /// address and port (outbound), or the application's peer is Envoy's forward (inbound).
        case throughProxy = "through-proxy"
        /// No proxy socket: the connection went straight to its destination (or came straight from its client).
        case direct
        /// Both ends are the pod's own (routed over `lo`), neither of them the proxy.
        case local
        /// The proxy's own socket (UID 1337): not captured by design.
        case proxy
        /// A UDP socket: a redirected datagram leaves no socket behind, so the tables cannot tell.
        case unobservable
    }

    /// The verdict on the connection: evidence compared with what the rules for the configuration do.
    public enum Classification: String, Hashable, Sendable, Codable, CaseIterable {
        case captured
        /// Not through the proxy, and the configuration says so (an excluded port, range, UID or inbound port).
        case bypassingExpected = "bypassing-expected"
        /// Not through the proxy although the rules for the configuration capture it: a finding.
        case bypassingUnexpected = "bypassing-unexpected"
        /// Through the proxy although the configuration excludes it: a finding.
        case capturedUnexpected = "captured-unexpected"
        /// The proxy's own connection.
        case proxy = "envoy"
        /// Application traffic inside the pod, not captured as the rules intend.
        case loopback
        /// UDP: judged by the rules alone.
        case unobserved
    }

    public var direction: Direction
    /// The application's socket (for the proxy's own connections, the proxy's).
    public var socket: ObservedSocket
    /// The proxy's socket that shows the capture, when there is one.
    public var proxySocket: ObservedSocket?
    public var evidence: Evidence
    /// The connection's first packet as the rules see it (the GID is not in the socket tables: taken as the UID).
    public var packet: Packet
    /// Where the rules for the configuration send that packet, and the walk.
    public var expected: RuleFate?
    /// Where the live rules send it (a privileged run).
    public var live: RuleFate?
    public var classification: Classification

    /// The tables its first packet met: a locally generated one (it has an owner) OUTPUT and back in on `lo`.
    public var pipeline: Pipeline { packet.uid != nil ? .localOutputThenLoopback : .inbound }

    /// `TCP 10.0.0.1:40000 → 10.0.0.2:80 (UID 1000)`.
    public var text: String {
        "\(socket.transport.rawValue.uppercased()) \(socket.local) → \(socket.remote) (UID \(socket.uid))"
    }
}

/// What a rule set does with one packet: the netfilter outcome, in words, and the walk.
public struct RuleFate: Hashable, Sendable, Codable {
    public var disposition: Disposition
    public var verdict: Verdict
    public var path: [TraceStep]
    /// The packet reaches the listener that observation looks for (Envoy's outbound or inbound, or the DNS proxy).
    public var toProxy: Bool
}
