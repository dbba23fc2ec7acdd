import IstioCapture
import NetfilterModel

/// Turns a namespace's sockets into connections with the evidence of what happened to each, by pairing the
/// application's sockets with the proxy's:
///
/// - outbound: REDIRECT rewrites the destination, so the proxy's accepted socket is local `127.0.0.1:15001`
///   (`::1`, or `:15053` for DNS) with the application's source address and port as its peer, while the
///   application's own socket still shows the original destination;
/// - inbound: the application's accepted socket has the proxy's forward as its peer (from 127.0.0.6 / ::6, or the
///   pod's address: a socket of the proxy's UID with the two endpoints swapped), or the remote client itself.
///
/// Pure: the sockets come from `RuleReaders.SocketTables`, the proxy's identities from the configuration.
struct SocketPairing {
    let sockets: [ObservedSocket]
    let localAddresses: Set<IPAddress>
    let proxyUIDs: Set<UInt32>

    init(sockets: [ObservedSocket], localAddresses: [IPAddress], configuration: CaptureConfiguration) {
        self.sockets = sockets
        self.localAddresses = Set(localAddresses)
        var uids = Set(configuration.proxyUIDs)
        if let u = configuration.proxyRunAsUser { uids.insert(u) }
        proxyUIDs = uids
    }

    struct Pair {
        var direction: ObservedConnection.Direction
        var socket: ObservedSocket
        var proxySocket: ObservedSocket?
        var evidence: ObservedConnection.Evidence
        var packet: Packet
    }

    func pairs() -> [Pair] {
        let listeners = sockets.filter { $0.transport == .tcp && $0.state == .listen }
        func accepted(_ s: ObservedSocket) -> Bool {
            listeners.contains { l in l.local.port == s.local.port && (l.local.isUnspecified || l.local.address == s.local.address) }
        }
        // Sockets that hold a connection a process still owns (TIME_WAIT and orphans have no owner to judge).
        let live = sockets.filter { s in
            s.inode != 0 && s.state != .listen && !s.remote.isUnspecified
                && (s.transport == .udp || [.established, .synSent, .synReceived, .closeWait].contains(s.state))
        }
        var proxyAccepted: [SocketEndpoint: ObservedSocket] = [:]
        var byEndpoints: [[SocketEndpoint]: ObservedSocket] = [:]
        for s in live {
            byEndpoints[[s.local, s.remote]] = s
            if s.transport == .tcp, proxyUIDs.contains(s.uid), accepted(s) { proxyAccepted[s.remote] = s }
        }
        var used = Set<ObservedSocket>()
        var out: [Pair] = []
        for s in live where !proxyUIDs.contains(s.uid) {
            let isLocal = { (a: IPAddress) in localAddresses.contains(a) || SocketEndpoint(a, 0).isLoopback }
            if s.transport == .tcp, accepted(s) {
                let peer = byEndpoints[[s.remote, s.local]]
                let evidence: ObservedConnection.Evidence
                if let p = peer, proxyUIDs.contains(p.uid) {
                    evidence = .throughProxy
                    used.insert(p)
                } else if s.remote.address == IstioNames.inboundPassthroughSource(s.family) {
                    evidence = .throughProxy
                } else if peer != nil || isLocal(s.remote.address) {
                    evidence = .local
                } else {
                    evidence = .direct
                }
                // A connection from inside the pod was decided at its client's OUTPUT (nat does not run again on
                // `lo`); one through Envoy stands for the client's connection from the network, which its forward hides.
                let packet = evidence == .local
                    ? Packet(family: s.family, protocolNumber: s.protocolNumber, source: s.remote.address, destination: s.local.address,
                             sourcePort: s.remote.port, destinationPort: s.local.port, outInterface: "lo",
                             uid: peer?.uid ?? s.uid, gid: peer?.uid ?? s.uid)
                    : Packet(family: s.family, protocolNumber: s.protocolNumber, source: s.remote.address, destination: s.local.address,
                             sourcePort: s.remote.port, destinationPort: s.local.port, inInterface: Self.podInterface)
                out.append(Pair(direction: .inbound, socket: s, proxySocket: peer.flatMap { proxyUIDs.contains($0.uid) ? $0 : nil },
                                evidence: evidence, packet: packet))
            } else {
                let proxy = s.transport == .tcp ? proxyAccepted[s.local] : nil
                if let proxy { used.insert(proxy) }
                let toLocal = isLocal(s.remote.address)
                let evidence: ObservedConnection.Evidence = s.transport == .udp ? .unobservable
                    : proxy != nil ? .throughProxy : toLocal ? .local : .direct
                let packet = Packet(family: s.family, protocolNumber: s.protocolNumber, source: s.local.address, destination: s.remote.address,
                                    sourcePort: s.local.port, destinationPort: s.remote.port,
                                    outInterface: toLocal ? "lo" : Self.podInterface, uid: s.uid, gid: s.uid)
                out.append(Pair(direction: .outbound, socket: s, proxySocket: proxy, evidence: evidence, packet: packet))
            }
        }
        // The proxy's own connections that are not the other end of an application's.
        for s in live where proxyUIDs.contains(s.uid) && !used.contains(s) {
            let inbound = s.transport == .tcp && accepted(s)
            let packet = inbound
                ? Packet(family: s.family, protocolNumber: s.protocolNumber, source: s.remote.address, destination: s.local.address,
                         sourcePort: s.remote.port, destinationPort: s.local.port, inInterface: Self.podInterface)
                : Packet(family: s.family, protocolNumber: s.protocolNumber, source: s.local.address, destination: s.remote.address,
                         sourcePort: s.local.port, destinationPort: s.remote.port,
                         outInterface: localAddresses.contains(s.remote.address) || s.remote.isLoopback ? "lo" : Self.podInterface,
                         uid: s.uid, gid: s.uid)
            out.append(Pair(direction: inbound ? .inbound : .outbound, socket: s, proxySocket: nil, evidence: .proxy, packet: packet))
        }
        return out
    }

    /// The interface a pod's traffic to and from the network uses; the socket tables do not name it.
    static let podInterface = "eth0"
}
