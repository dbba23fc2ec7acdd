import IstioCapture
import NetfilterModel

/// The packet classes the obligations quantify over, built from the configuration (docs/capture-model.md §13 notation:
/// P/G proxy ids, L loopback CIDR, X `-x`, I `-i`, Q `-q`, O `-o`, E `-c`, K `-k`).
extension FamilyContext {
    /// (4) What outbound capture must catch: application TCP, passing the owner-group filter, not out `lo`
    /// (unless a loopback range is included) or an excluded interface, dport not in O, destination not in L or
    /// X, and destination in I (or I is `*`) or dport in Q. DNS the agent takes instead is left out.
    var outboundCaptureClass: PacketSet {
        guard includeCIDRs.map({ !$0.isEmpty }) ?? true || !config.outboundPortsInclude.isEmpty else { return PacketSet() }
        var b = capturedGroups(application(localNew)).with(.l4Protocol, tcp)
            .without(.outInterface, out(config.excludeInterfaces))
            .without(.destinationPort, ports(config.outboundPortsExclude))
            .without(.destination, destinations([loopback] + excludeCIDRs))
        if !includesLoopback { b = b.without(.outInterface, out(lo)) }
        var set: PacketSet
        if let inc = includeCIDRs {
            set = PacketSet([b.with(.destination, destinations(inc))])
                .union(PacketSet([b.with(.destinationPort, ports(config.outboundPortsInclude))]))
        } else {
            set = PacketSet([b])
        }
        // Envoy's forwards from 127.0.0.6 over lo always return, whoever owns them.
        set = set.subtracting(space.universe.with(.outInterface, out(lo)).with(.source, sources([passthroughSource])))
        return set.subtracting(dnsBound(space.universe)).subtracting(unroutable)
    }

    /// Packets to a loopback address (127.0.0.0/8, ::1) out an interface other than lo. Routing picks lo for
    /// them unless the socket is bound to a device (SO_BINDTODEVICE, `curl --interface eth0 127.0.0.1`), so the
    /// must-capture classes leave them out: otherwise a rule for 127/8 above Istio's jump would be shown as a gap
    /// by a packet only a device-bound socket sends (docs/capture-model.md §14). Other obligations keep
    /// them: a device-bound connection to 127.0.0.1 that Istio captures is still a leak.
    var unroutable: PacketSet {
        PacketSet([space.universe.with(.destination, destinations([loopbackNet])).without(.outInterface, out(lo))])
    }

    /// (13) DNS queries the agent must get: application TCP/UDP port 53 to a nameserver (any with capture-all),
    /// through the owner-group filter, not out an excluded interface.
    var dnsCaptureClass: PacketSet {
        dnsBound(capturedGroups(application(localNew)).without(.outInterface, out(config.excludeInterfaces)))
            .subtracting(space.universe.with(.outInterface, out(lo)).with(.source, sources([passthroughSource])))
            .subtracting(unroutable)
    }

    /// (9) The proxy calling its own pod (an app calling its own Service): TCP owned by the first proxy UID, out
    /// `lo`, to a non-loopback address, not from 127.0.0.6, port not the tunnel port (1.18+) nor 53 with DNS.
    var selfCallClass: PacketSet {
        guard let first = proxyUIDs.first else { return PacketSet() }
        return PacketSet([selfCallBox.with(.uid, uids([first]))])
    }

    /// The self-call conditions without the owner.
    var selfCallBox: PacketBox {
        var b = localNew.with(.l4Protocol, tcp).with(.outInterface, out(lo))
            .without(.source, sources([passthroughSource])).without(.destination, destinations([loopback]))
            .without(.destinationPort, ports(config.outboundPortsExclude))
        if atLeast(18) { b = b.without(.destinationPort, ports([config.inboundTunnelPort])) }
        if dnsOn { b = b.without(.destinationPort, ports([53])) }
        if tproxyMode {
            // TPROXY captures the self-call on the receive side, through mangle ISTIO_INBOUND, whose inbound port
            // selection (-b / -d) applies to it like to any inbound connection.
            switch config.inboundPortsInclude {
            case .all: b = b.without(.destinationPort, ports(config.inboundPortsExclude))
            case .some(let listed): b = b.with(.destinationPort, ports(listed))
            }
        }
        return b
    }

    /// Everything some obligation requires to be captured (a foreign rule pre-empting any of it is an error).
    var captureRequired: PacketSet {
        outboundCaptureClass.union(dnsCaptureClass).union(selfCallClass)
    }

    /// How a pipeline for locally generated traffic that may loop back over `lo` must be walked in this mode:
    /// TPROXY captures the proxy-to-self leg on the receive side.
    var loopbackPipeline: Pipeline { tproxyMode ? .localOutputThenLoopback : .localOutput }

    func list(_ ports: [UInt16]) -> String { ports.map(String.init).joined(separator: ",") }
    func list(_ cidrs: [AddressMatch]) -> String { cidrs.map(\.cidrText).joined(separator: ",") }
}
