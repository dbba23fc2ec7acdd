import IstioCapture
import NetfilterModel

// Ambient mode's obligations (docs/capture-model.md §11, §13 items 31-40): istio-cni's in-pod rules must send the
// pod's traffic to ztunnel, leave ztunnel's own traffic (packet mark 0x539/0xfff) alone and route replies on
// ztunnel-delivered connections back to it. The mark exemption plays the part the owner match plays for
// sidecars, so its gaps are owner-match-gap findings.

/// ztunnel's mark and the reply mark as reports print them (`0x539/0xfff`, `0x111/0xfff`).
private let ztunnelText = AmbientNames.markText(AmbientNames.ztunnelMark)
private let replyText = AmbientNames.markText(AmbientNames.replyMark)

extension Fix {
    static let ambient = "istio-cni's node agent installs these rules when the pod starts: restart the pod, and check the node "
        + "agent on its node (its istio-cni-node DaemonSet's log, in istio-system or wherever istio-cni is installed) if they come back wrong."
    static let ambientDNS = "DNS capture follows the node agent's ambient.dnsCapture and the pod's ambient.istio.io/dns-capture "
        + "annotation; if those are right, restart the pod so the node agent reinstalls its rules."
    static let ambientInbound = "Inbound capture is skipped only with ambient.istio.io/bypass-inbound-capture: \"true\"; "
        + "if the annotation is right, restart the pod so the node agent reinstalls its rules."
}

extension FamilyContext {
    var ambientSettings: AmbientSettings { config.ambient ?? AmbientSettings() }
    var ambientDNS: Bool { ambientSettings.redirectDNS(version) }
    /// ztunnel's sockets: mark 0x539 in the low 12 bits, whatever other components keep above them.
    var ztunnelMarks: AtomSet { space.atoms(.mark, marks: { $0 & AmbientNames.markMask == AmbientNames.ztunnelMark }) }
    var replyMarks: AtomSet { space.atoms(.mark, marks: { $0 & AmbientNames.markMask == AmbientNames.replyMark }) }
    /// The host-probe SNAT address of this family, as a host route.
    var probeSNAT: [AddressMatch] {
        guard let a = IPAddress(ambientSettings.probeSNAT(family)), a.family == family else { return [] }
        return [AddressMatch(address: a, prefixLength: family.addressBits)]
    }
    var virtualInterfaces: [String] { AmbientShape(version).virtualInterfaces ? ambientSettings.virtualInterfaces : [] }

    /// Application packets that open a connection: neither of ztunnel's marks in the low 12 bits (other bits may
    /// be anyone's), no connmark.
    var ambientLocalNew: PacketBox {
        localNew.setting(.mark, (ztunnelMarks | replyMarks).complement)
    }
    /// (31) What ztunnel's outbound listener must get: application TCP not out lo, not to loopback, not to the
    /// probe address, not DNS when DNS capture is on.
    var ambientOutboundClass: PacketBox {
        var b = ambientLocalNew.with(.l4Protocol, tcp).without(.outInterface, out(lo))
            .without(.destination, destinations([loopback] + probeSNAT))
        if ambientDNS { b = b.without(.destinationPort, ports([53])) }
        return b
    }
    /// A new inbound connection from the network, not on a virtual interface (those count as outbound).
    var ambientInboundNew: PacketBox {
        inboundNew.setting(.mark, (ztunnelMarks | replyMarks).complement).with(.l4Protocol, tcp)
            .without(.inInterface, into(virtualInterfaces))
    }

    func ztunnelPort(_ port: IstioPort) -> String { "\(AmbientNames.role(port)) (\(port.rawValue))" }
}

/// 31: application TCP leaving the pod reaches ztunnel's outbound listener.
enum AmbientOutbound: FamilyObligation {
    static let description = ObligationDescription(
        id: "ambient-outbound", title: "Outbound TCP is redirected to ztunnel (15001)", invariant: 31,
        quantifiesOver: ["every locally generated TCP packet opening a connection, without ztunnel's marks (0x539, 0x111 under 0xfff), "
            + "not out lo, not to the loopback address or the host-probe SNAT address, and not to port 53 when DNS capture is on"],
        kinds: [.missingRedirect, .wrongPort, .foreignRule],
        examples: [
            ExampleRules.example("ambient pod", ExampleRules.ambientPod, .passes),
            ExampleRules.example("15001 REDIRECT removed", ExampleRules.ambientPod, .fails(.missingRedirect, .error)) {
                $0.removingLine("-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001")
            },
            ExampleRules.example("15001 changed to 15002", ExampleRules.ambientPod, .fails(.wrongPort, .error)) {
                $0.replacingLine("-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001",
                                 with: "-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15002")
            },
            ExampleRules.example("mark exemption under a mask narrower than 0xfff", ExampleRules.ambientPod, .fails(.missingRedirect, .error)) {
                $0.replacingLine("-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001",
                                 with: "-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0x539 -j REDIRECT --to-ports 15001")
            },
            ExampleRules.example("foreign ACCEPT first in nat OUTPUT", ExampleRules.ambientPod, .fails(.foreignRule, .error)) {
                $0.inTable("nat") { $0.inserting("-A OUTPUT -p tcp -j ACCEPT", before: "-A OUTPUT -j ISTIO_OUTPUT") }
            },
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        var out = CheckOutput()
        let port = IstioPort.outbound.rawValue
        out.findings = ctx.check(PacketSet([ctx.ambientOutboundClass]), .localOutput, obligation: description.id) { o in
            if o.verdict.redirects(to: port) { return nil }
            if let other = o.verdict.capturePort {
                return Violation(kind: .wrongPort, severity: .error,
                                 problem: "is redirected to port \(other), not \(ctx.ztunnelPort(.outbound))", fix: Fix.ambient)
            }
            return Violation(kind: .missingRedirect, severity: .error,
                             problem: "is not redirected to \(ctx.ztunnelPort(.outbound)): it leaves the pod without mTLS or policy", fix: Fix.ambient)
        }
        out.proven.append("every application TCP connection not to \(ctx.list([ctx.loopback] + ctx.probeSNAT)), not out lo"
            + (ctx.ambientDNS ? ", not to port 53" : "") + ", reaches REDIRECT --to-ports \(port)")
        return out
    }
}

/// 32: ztunnel's own traffic (mark 0x539/0xfff) is never captured, or it would loop back into ztunnel.
enum AmbientZtunnelExempt: FamilyObligation {
    static let description = ObligationDescription(
        id: "ambient-ztunnel-exempt", title: "ztunnel's own traffic (mark 0x539/0xfff) is never captured", invariant: 32,
        quantifiesOver: ["every packet marked 0x539 in the low 12 bits (any bits above) opening a connection, locally generated or received over lo"],
        kinds: [.ownerMatchGap, .foreignRule],
        examples: [
            ExampleRules.example("ambient pod", ExampleRules.ambientPod, .passes),
            ExampleRules.example("mark exemption removed from the 15001 REDIRECT", ExampleRules.ambientPod, .fails(.ownerMatchGap, .error)) {
                $0.replacingLine("-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001",
                                 with: "-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -j REDIRECT --to-ports 15001")
            },
            ExampleRules.example("mark exemption with the full mask", ExampleRules.ambientPod, .fails(.ownerMatchGap, .error)) {
                $0.replacingLine("-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001",
                                 with: "-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539 -j REDIRECT --to-ports 15001")
            },
            ExampleRules.example("mark exemption under 0xffff", ExampleRules.ambientPod, .fails(.ownerMatchGap, .error)) {
                $0.replacingLine("-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001",
                                 with: "-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xffff -j REDIRECT --to-ports 15001")
            },
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        var out = CheckOutput()
        let marked = ctx.localNew.setting(.mark, ctx.ztunnelMarks)
        // A received packet carries a socket's mark only when it comes back over lo: ztunnel connecting to the
        // application by the pod's address.
        let received = ctx.unmarked.setting(.mark, ctx.ztunnelMarks).with(.outInterface, ctx.space.noInterface(.outInterface))
            .with(.inInterface, ctx.into(ctx.lo)).with(.ctState, ctx.space.atoms(states: [.new]))
            .without(.destination, ctx.destinations([ctx.loopbackNet]))
        for (cls, pipeline) in [(marked, Pipeline.localOutput), (received, .inbound)] {
            out.findings += ctx.check(PacketSet([cls]), pipeline, obligation: description.id, only: .captured) { o in
                guard let port = o.verdict.capturePort else { return nil }
                return Violation(kind: .ownerMatchGap, severity: .error,
                                 problem: "is ztunnel's own (mark \(ztunnelText)) but is redirected to port \(port): ztunnel's connections loop back into it",
                                 fix: "Every REDIRECT must carry `-m mark ! --mark \(ztunnelText)` (nft: `meta mark & 0xfff != 0x539`). " + Fix.ambient)
            }
        }
        out.proven.append("no packet marked \(ztunnelText), sent or received, is redirected")
        return out
    }
}

/// 33: inbound TCP reaches ztunnel's inbound plaintext listener, unless the pod bypasses inbound capture.
enum AmbientInbound: FamilyObligation {
    static let description = ObligationDescription(
        id: "ambient-inbound", title: "Inbound TCP is redirected to ztunnel (15006) unless inbound capture is bypassed", invariant: 33,
        quantifiesOver: ["every TCP packet opening a connection from the network (not lo, not a virtual interface), without ztunnel's marks, "
            + "not to a loopback address, not to port 15008, not from the host-probe SNAT address"],
        kinds: [.missingRedirect, .wrongPort, .unexpectedCapture, .foreignRule],
        examples: [
            ExampleRules.example("ambient pod", ExampleRules.ambientPod, .passes),
            ExampleRules.example("15006 REDIRECT removed", ExampleRules.ambientPod, .fails(.missingRedirect, .error)) {
                $0.removingLine("-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp -m tcp ! --dport 15008 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006")
            },
            ExampleRules.example("15006 changed to 15007", ExampleRules.ambientPod, .fails(.wrongPort, .error)) {
                $0.replacing("--to-ports 15006", with: "--to-ports 15007")
            },
            ExampleRules.example("ingress bypass", ExampleRules.ambientIngressPod, .passes),
            ExampleRules.example("inbound REDIRECT left in a bypassing pod", ExampleRules.ambientIngressPod, .fails(.unexpectedCapture, .error)) {
                $0.inTable("nat") {
                    $0.inserting("-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp -m tcp ! --dport 15008 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006",
                                 after: "-A PREROUTING -j ISTIO_PRERT")
                }
            },
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        var out = CheckOutput()
        let port = IstioPort.inbound.rawValue
        let cls = ctx.ambientInboundNew.without(.destinationPort, ctx.ports([IstioPort.tunnel.rawValue]))
            .without(.source, ctx.sources(ctx.probeSNAT))
        if ctx.ambientSettings.bypassInboundCapture {
            out.findings = ctx.check(PacketSet([cls]), .inbound, obligation: description.id, only: .captured) { o in
                guard let other = o.verdict.capturePort else { return nil }
                return Violation(kind: .unexpectedCapture, severity: .error,
                                 problem: "is inbound to a pod that bypasses inbound capture (\(AmbientNames.bypassInboundAnnotation)) but is redirected to port \(other)",
                                 fix: Fix.ambientInbound)
            }
            out.proven.append("inbound TCP reaches the application directly (inbound capture bypassed)")
            return out
        }
        out.findings = ctx.check(PacketSet([cls]), .inbound, obligation: description.id) { o in
            if o.verdict.redirects(to: port) { return nil }
            if let other = o.verdict.capturePort {
                return Violation(kind: .wrongPort, severity: .error, problem: "is redirected to port \(other), not \(ctx.ztunnelPort(.inbound))", fix: Fix.ambient)
            }
            return Violation(kind: .missingRedirect, severity: .error,
                             problem: "is not redirected to \(ctx.ztunnelPort(.inbound)): it reaches the application without mTLS or policy",
                             fix: Fix.ambientInbound)
        }
        out.proven.append("every inbound TCP connection not to port \(IstioPort.tunnel.rawValue), not from \(ctx.list(ctx.probeSNAT)), reaches REDIRECT --to-ports \(port)")
        return out
    }
}

/// 34: HBONE reaches ztunnel's 15008 untouched.
enum AmbientHBONE: FamilyObligation {
    static let description = ObligationDescription(
        id: "ambient-hbone", title: "HBONE (15008) reaches ztunnel untouched", invariant: 34,
        quantifiesOver: ["every inbound TCP packet to port 15008 (not on a virtual interface)"],
        kinds: [.unexpectedCapture, .foreignRule],
        examples: [
            ExampleRules.example("ambient pod", ExampleRules.ambientPod, .passes),
            ExampleRules.example("a catch-all REDIRECT to 15006 above the one exempting 15008", ExampleRules.ambientPod, .fails(.unexpectedCapture, .error)) {
                $0.inTable("nat") {
                    $0.inserting("-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006",
                                 before: "-A ISTIO_PRERT ! -d 127.0.0.1/32 -p tcp -m tcp ! --dport 15008 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006")
                }
            },
            ExampleRules.example("the 15008 exception dropped from the 15006 REDIRECT", ExampleRules.ambientPod, .fails(.unexpectedCapture, .error)) {
                $0.replacing("-p tcp -m tcp ! --dport 15008 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006",
                             with: "-p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15006")
            },
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        var out = CheckOutput()
        let cls = ctx.ambientInboundNew.with(.destinationPort, ctx.ports([IstioPort.tunnel.rawValue]))
        out.findings = ctx.check(PacketSet([cls]), .inbound, obligation: description.id, only: .captured) { o in
            guard let port = o.verdict.capturePort else { return nil }
            return Violation(kind: .unexpectedCapture, severity: .error,
                             problem: "is HBONE to \(ctx.ztunnelPort(.tunnel)) but is redirected to port \(port): mesh traffic into the pod is broken",
                             fix: "The 15006 REDIRECT must exempt `--dport 15008` (nft: `tcp dport != 15008`). " + Fix.ambient)
        }
        out.proven.append("inbound TCP to port \(IstioPort.tunnel.rawValue) is not redirected")
        return out
    }
}

/// 35: kubelet's probes, SNATed by the node to the probe address, bypass ztunnel both ways.
enum AmbientProbes: FamilyObligation {
    static let description = ObligationDescription(
        id: "ambient-probes", title: "Health probes from the host-probe SNAT address bypass ztunnel", invariant: 35,
        quantifiesOver: ["inbound TCP from the probe SNAT address (169.254.7.127 / fd16:9254:7127:1337:ffff:ffff:ffff:ffff by default)",
                         "locally generated TCP to it (the probe's answers on new connections)"],
        kinds: [.exclusionLeak, .foreignRule],
        examples: [
            ExampleRules.example("ambient pod", ExampleRules.ambientPod, .passes),
            ExampleRules.example("probe ACCEPT removed", ExampleRules.ambientPod, .fails(.exclusionLeak, .error)) {
                $0.removingLine("-A ISTIO_PRERT -s 169.254.7.127/32 -p tcp -m tcp -j ACCEPT")
            },
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        guard !ctx.probeSNAT.isEmpty else { return .notApplicable("no host-probe SNAT address of this family") }
        var out = CheckOutput()
        let inbound = ctx.ambientInboundNew.with(.source, ctx.sources(ctx.probeSNAT))
            .without(.destination, ctx.destinations([ctx.loopbackNet]))
        let outbound = ctx.ambientLocalNew.with(.l4Protocol, ctx.tcp).with(.destination, ctx.destinations(ctx.probeSNAT))
        for (cls, pipeline) in [(inbound, Pipeline.inbound), (outbound, .localOutput)] {
            out.findings += ctx.check(PacketSet([cls]), pipeline, obligation: description.id, only: .captured) { o in
                guard let port = o.verdict.capturePort else { return nil }
                return Violation(kind: .exclusionLeak, severity: .error,
                                 problem: "is a kubelet probe (host-probe SNAT address) but is redirected to port \(port): ztunnel rejects it and the pod fails its health checks",
                                 fix: "The probe ACCEPTs (`-s/-d \(ctx.list(ctx.probeSNAT)) -p tcp -j ACCEPT`) must come before the REDIRECTs; "
                                    + "the node agent's HOST_PROBE_SNAT_IP must be the address the node SNATs probes to. " + Fix.ambient)
            }
        }
        out.proven.append("TCP from and to \(ctx.list(ctx.probeSNAT)) is not redirected")
        return out
    }
}

/// 36: DNS reaches ztunnel's DNS proxy exactly when DNS capture is on, with ztunnel's own lookups in zone 1.
enum AmbientDNS: FamilyObligation {
    static let description = ObligationDescription(
        id: "ambient-dns", title: "DNS goes to ztunnel (15053) exactly when DNS capture is on, with conntrack zone 1", invariant: 36,
        quantifiesOver: ["application UDP to port 53 not out lo; application TCP to port 53 not to loopback (15053 when on, never when off)",
                         "every locally generated packet (never 15053 when off)",
                         "ztunnel's UDP to port 53 and UDP from port 53 received by the application (zone 1 when on)"],
        kinds: [.dnsCapture, .foreignRule],
        examples: [
            ExampleRules.example("ambient pod", ExampleRules.ambientPod, .passes),
            ExampleRules.example("UDP DNS REDIRECT removed", ExampleRules.ambientPod, .fails(.dnsCapture, .error)) {
                $0.removingLine("-A ISTIO_OUTPUT ! -o lo -p udp -m mark ! --mark 0x539/0xfff -m udp --dport 53 -j REDIRECT --to-ports 15053")
            },
            ExampleRules.example("DNS to 15054", ExampleRules.ambientPod, .fails(.dnsCapture, .error)) {
                $0.replacing("--to-ports 15053", with: "--to-ports 15054")
            },
            ExampleRules.example("zone rule removed", ExampleRules.ambientPod, .fails(.dnsCapture, .error)) {
                $0.removingLine("-A ISTIO_OUTPUT -p udp -m mark --mark 0x539/0xfff -m udp --dport 53 -j CT --zone 1")
            },
            ExampleRules.example("DNS capture off", ExampleRules.ambientNoDNSPod, .passes),
            ExampleRules.example("DNS rule left with capture off", ExampleRules.ambientNoDNSPod, .fails(.dnsCapture, .error)) {
                $0.inserting("-A ISTIO_OUTPUT ! -o lo -p udp -m mark ! --mark 0x539/0xfff -m udp --dport 53 -j REDIRECT --to-ports 15053",
                             before: "-A ISTIO_OUTPUT -p tcp -m mark --mark 0x111/0xfff -j ACCEPT")
            },
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        var out = CheckOutput()
        let port = IstioPort.dnsProxy.rawValue
        let app = ctx.ambientLocalNew.with(.destinationPort, ctx.ports([53]))
        let udp = app.with(.l4Protocol, ctx.udp).without(.outInterface, ctx.out(ctx.lo))
        let tcp = app.with(.l4Protocol, ctx.tcp).without(.destination, ctx.destinations([ctx.loopback] + ctx.probeSNAT))
        if ctx.ambientDNS {
            out.findings = ctx.check(PacketSet([udp, tcp]), .localOutput, obligation: description.id) { o in
                if o.verdict.redirects(to: port) { return nil }
                let got = o.verdict.capturePort.map { "is redirected to port \($0)" } ?? "is not redirected"
                return Violation(kind: .dnsCapture, severity: .error,
                                 problem: "is a DNS query with DNS capture on but \(got), not to \(ctx.ztunnelPort(.dnsProxy))", fix: Fix.ambientDNS)
            }
            // ztunnel's upstream queries go out in conntrack zone 1, so their answers must come in there too; the
            // application's redirected queries stay in the default zone and cannot collide with them.
            let ztunnelQuery = ctx.localNew.setting(.mark, ctx.ztunnelMarks).with(.l4Protocol, ctx.udp).with(.destinationPort, ctx.ports([53]))
            let answer = ctx.ambientInboundNew.setting(.l4Protocol, ctx.udp).with(.sourcePort, ctx.sourcePorts([53]))
            for (what, cls, pipeline) in [("ztunnel's own UDP query", ztunnelQuery, ctx.single(.raw, .output)),
                                          ("a UDP answer from port 53 (to ztunnel's upstream query)", answer, ctx.single(.raw, .prerouting))] {
                out.findings += ctx.check(PacketSet([cls]), pipeline, obligation: description.id) { o in
                    if o.ctZone == AmbientNames.dnsZone { return nil }
                    return Violation(kind: .dnsCapture, severity: .error,
                                     problem: "is \(what) but gets \(o.ctZone.map { "conntrack zone \($0)" } ?? "no conntrack zone"), not zone \(AmbientNames.dnsZone): "
                                        + "its conntrack entry can collide with the application's redirected query",
                                     fix: "The raw table needs the node agent's zone-\(AmbientNames.dnsZone) rules (`CT --zone \(AmbientNames.dnsZone)` for UDP to port 53 marked \(ztunnelText), and from port 53 not marked). " + Fix.ambient)
                }
            }
            out.proven.append("application DNS (UDP not out lo, TCP not to loopback) reaches REDIRECT --to-ports \(port); ztunnel's queries and their answers use zone 1")
        } else {
            let any = ctx.localNew
            out.findings = ctx.check(PacketSet([any]), .localOutput, obligation: description.id, only: .captured) { o in
                guard o.verdict.redirects(to: port) else { return nil }
                return Violation(kind: .dnsCapture, severity: .error,
                                 problem: "is redirected to \(ctx.ztunnelPort(.dnsProxy)) although DNS capture is off for this pod: "
                                    + "ztunnel's DNS proxy is not expected to answer it", fix: Fix.ambientDNS)
            }
            out.proven.append("DNS capture is off and nothing is redirected to \(port)")
        }
        return out
    }
}

/// 37: UDP other than DNS is never redirected (ztunnel proxies TCP only).
enum AmbientUDP: FamilyObligation {
    static let description = ObligationDescription(
        id: "ambient-udp", title: "UDP is redirected only as DNS to ztunnel's DNS proxy", invariant: 37,
        quantifiesOver: ["every locally generated UDP packet: none redirected, except DNS capture's class to 15053", "every inbound UDP packet"],
        kinds: [.unexpectedCapture, .foreignRule],
        examples: [
            ExampleRules.example("ambient pod", ExampleRules.ambientPod, .passes),
            ExampleRules.example("UDP DNS sent to 15001 with DNS capture off", ExampleRules.ambientNoDNSPod, .fails(.unexpectedCapture, .error)) {
                $0.inserting("-A ISTIO_OUTPUT -p udp -m udp --dport 53 -j REDIRECT --to-ports 15001",
                             before: "-A ISTIO_OUTPUT -p tcp -m mark --mark 0x111/0xfff -j ACCEPT")
            },
            ExampleRules.example("the 15001 REDIRECT takes every protocol", ExampleRules.ambientPod, .fails(.unexpectedCapture, .error)) {
                $0.inserting("-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p udp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001",
                             before: "-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -p tcp -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001")
            },
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        var out = CheckOutput()
        let local = ctx.localNew.with(.l4Protocol, ctx.udp)
        let inbound = ctx.inboundNew.with(.l4Protocol, ctx.udp)
        // What DNS capture takes (ambient-dns judges whether it gets there): UDP to 53, not out lo, not ztunnel's.
        let dnsClass = ctx.ambientLocalNew.with(.l4Protocol, ctx.udp).with(.destinationPort, ctx.ports([53])).without(.outInterface, ctx.out(ctx.lo))
        for (cls, pipeline) in [(local, Pipeline.localOutput), (inbound, .inbound)] {
            out.findings += ctx.check(PacketSet([cls]), pipeline, obligation: description.id, only: .captured) { o in
                guard let port = o.verdict.capturePort else { return nil }
                // DNS to 15053 is ambient-dns's to judge (off: nothing may get there); anything else there is this one's.
                if port == IstioPort.dnsProxy.rawValue, pipeline == .localOutput, o.packets.subtracting(PacketSet([dnsClass])).isEmpty { return nil }
                return Violation(kind: .unexpectedCapture, severity: .error,
                                 problem: "is UDP but is redirected to port \(port), where ztunnel accepts only TCP: the datagrams are lost", fix: Fix.ambient)
            }
        }
        out.proven.append("no UDP is redirected but DNS to \(IstioPort.dnsProxy.rawValue)")
        return out
    }
}

/// 38: replies on connections ztunnel delivered into the pod go back to ztunnel: connmark 0x111 set on what
/// ztunnel sends in, restored as the mark on the replies, and routed by `ip rule fwmark 0x111/0xfff lookup 100`
/// to a local route over lo.
enum AmbientReturnPath: FamilyObligation {
    static let description = ObligationDescription(
        id: "ambient-return-path", title: "Replies on ztunnel-delivered connections are marked 0x111 and routed back to ztunnel", invariant: 38,
        quantifiesOver: ["packets marked 0x539/0xfff entering mangle PREROUTING (connmark 0x111 set)",
                         "locally generated packets of connections with connmark \(replyText) (mark restored)",
                         "the ip rule fwmark \(replyText) lookup 100 and table 100's local default route over lo (when read)"],
        kinds: [.returnPath],
        examples: [
            ExampleRules.example("ambient pod", ExampleRules.ambientPod, .passes),
            ExampleRules.example("CONNMARK restore removed", ExampleRules.ambientPod, .fails(.returnPath, .error)) {
                $0.removingLine("-A ISTIO_OUTPUT -m connmark --mark 0x111/0xfff -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff")
            },
            ExampleRules.example("CONNMARK set removed", ExampleRules.ambientPod, .fails(.returnPath, .error)) {
                $0.removingLine("-A ISTIO_PRERT -m mark --mark 0x539/0xfff -j CONNMARK --set-xmark 0x111/0xfff")
            },
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        var out = CheckOutput()
        var proven: [String] = []
        let reply = AmbientNames.replyMark, mask = AmbientNames.markMask
        func carries(_ o: Outcome, _ field: PacketField) -> Bool {
            o.packets.subtracting(ctx.space.universe.with(field, ctx.space.atoms(field, marks: { $0 & mask == reply }))).isEmpty
        }
        // (a) what ztunnel sends into the pod marks its connection.
        let ingressWithoutConnmark = ctx.ambientSettings.bypassInboundCapture && !AmbientShape(ctx.version).ingressKeepsConnmark
        if ingressWithoutConnmark {
            out.notes.append("ingress mode before 1.29 leaves out mangle's CONNMARK set (istio/istio#58577): replies on ztunnel's connections into the pod "
                + "are not routed back to it; upgrade to 1.29 or later")
        } else {
            proven.append("ztunnel's connections into the pod get connmark \(replyText)")
            let sent = ctx.inboundNew.setting(.inInterface, ctx.space.universe[.inInterface]).setting(.mark, ctx.ztunnelMarks)
                .setting(.connmark, ctx.space.atoms(.connmark, marks: { $0 == 0 }))
            out.findings += ctx.check(PacketSet([sent]), ctx.single(.mangle, .prerouting), obligation: description.id) { o in
                if carries(o, .connmark) { return nil }
                return Violation(kind: .returnPath, severity: .error,
                                 problem: "is sent by ztunnel (mark \(ztunnelText)) but its connection does not get connmark \(replyText): the application's replies will not find ztunnel",
                                 fix: "mangle PREROUTING needs `-m mark --mark \(ztunnelText) -j CONNMARK --set-xmark \(replyText)`. " + Fix.ambient)
            }
        }
        // (b) the application's replies get the mark back.
        let replies = ctx.localNew.with(.l4Protocol, ctx.tcp).setting(.ctState, ctx.space.atoms(states: [.established]))
            .setting(.connmark, ctx.space.atoms(.connmark, marks: { $0 & mask == reply }))
        out.findings += ctx.check(PacketSet([replies]), ctx.single(.mangle, .output), obligation: description.id) { o in
            if carries(o, .mark) { return nil }
            return Violation(kind: .returnPath, severity: .error,
                             problem: "is a reply on a ztunnel-delivered connection (connmark \(replyText)) but leaves mangle OUTPUT without mark \(replyText): it is routed out of the pod instead of back to ztunnel",
                             fix: "mangle OUTPUT needs `-m connmark --mark \(replyText) -j CONNMARK --restore-mark`. " + Fix.ambient)
        }
        proven.append("replies on connections with connmark \(replyText) get mark \(replyText) back")
        out.proven += proven
        // (c) the routing those marks rely on.
        if let routing = ctx.policyRouting {
            let table = String(AmbientNames.replyRouteTable)
            let wanted = "`ip rule fwmark \(replyText) lookup \(table)` before the main table"
            if ctx.family == .ipv6, !ctx.config.ipv6Enabled {
                out.notes.append("IPv6 is off for the node agent: its IPv6 rules (1.28.0 wrote them regardless) come without IPv6 policy routing, which is not checked")
            } else if let rule = routing.markRule(family: ctx.family, mark: reply, mask: mask, table: table) {
                // The application's replies are generated locally: the kernel looks their route up with iif lo.
                let preemptions = routing.preemptions(of: rule, mark: reply, inputInterface: "lo")
                out.findings += ctx.preemptionFindings(preemptions, of: rule, kind: .returnPath, marked: replyText,
                                                       on: "ztunnel-delivered connections", to: "ztunnel", table: table,
                                                       fix: Fix.ambient, obligation: description.id)
                if !routing.hasLocalDefaultRoute(family: ctx.family, table: table) {
                    // The node agent leaves the IPv6 route out when IPv6 is disabled on lo; then nothing IPv6 reaches ztunnel over lo either.
                    let v6 = ctx.family == .ipv6
                    out.findings.append(ctx.structural(.returnPath, v6 ? .warning : .error, table: nil, chain: nil,
                        message: "Table \(table) has no `local default dev lo` route (\(ctx.familyName)): replies marked \(replyText) on ztunnel-delivered connections are routed out of the pod instead of back to ztunnel."
                            + (v6 ? " The node agent leaves it out when IPv6 is disabled on lo (net.ipv6.conf.lo.disable_ipv6=1)." : ""),
                        fix: "The node agent adds it over netlink when it sets up the pod. " + Fix.ambient, obligation: description.id))
                } else if routing.routeTablesRead == nil {
                    out.proven.append("ip rule pref \(rule.priority.map(String.init) ?? "0") fwmark \(replyText) lookup \(table) and its local default route over lo exist")
                    out.notes.append(FamilyContext.routingRecordedWithoutActions)
                } else if preemptions.isEmpty {
                    out.proven.append("ip rule pref \(rule.priority.map(String.init) ?? "0") fwmark \(replyText) lookup \(table) and its local default route over lo exist, and no rule before it takes the marked replies")
                }
            } else {
                let near = routing.rules.first { $0.family == ctx.family && $0.table == table && $0.fwmark != nil }
                let seen = near.map { r in " (there is `fwmark 0x\(String(r.fwmark ?? 0, radix: 16))/0x\(String(r.fwmask ?? 0xffff_ffff, radix: 16)) lookup \(r.table)` at priority \(r.priority.map(String.init) ?? "0"), which marks with other bits or the main table pre-empt)" } ?? ""
                out.findings.append(ctx.structural(.returnPath, .error, table: nil, chain: nil,
                    message: "The pod's network namespace has no \(wanted) (\(ctx.familyName))\(seen): replies marked \(replyText) on ztunnel-delivered connections are routed out of the pod instead of back to ztunnel.",
                    fix: "The node agent adds `ip rule add fwmark \(replyText) lookup \(table) pref \(AmbientNames.replyRulePriority)` over netlink when it sets up the pod. " + Fix.ambient,
                    obligation: description.id))
            }
        } else {
            out.notes.append("policy routing was not read (saved dump): the ip rule and route for mark \(replyText) were not checked")
        }
        return out
    }
}

/// 39: inbound TCP on the pod's virtual interfaces is treated as outbound (ztunnel's 15001).
enum AmbientVirtualInterfaces: FamilyObligation {
    static let description = ObligationDescription(
        id: "ambient-virtual-interfaces", title: "Inbound TCP on virtual interfaces reaches ztunnel's outbound listener", invariant: 39,
        quantifiesOver: ["inbound TCP on an istio.io/reroute-virtual-interfaces interface"],
        kinds: [.missingRedirect, .wrongPort, .foreignRule],
        examples: [
            ExampleRules.example("virtual interface", ExampleRules.ambientVirtualPod, .passes),
            ExampleRules.example("its REDIRECT removed", ExampleRules.ambientVirtualPod, .fails(.missingRedirect, .error)) {
                $0.removingLine("-A ISTIO_PRERT -i net1 -p tcp -j REDIRECT --to-ports 15001")
            },
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        let names = ctx.virtualInterfaces
        guard !names.isEmpty else { return .notApplicable("no virtual interfaces (istio.io/reroute-virtual-interfaces)") }
        var out = CheckOutput()
        let cls = ctx.inboundNew.setting(.mark, (ctx.ztunnelMarks | ctx.replyMarks).complement).with(.l4Protocol, ctx.tcp)
            .with(.inInterface, ctx.into(names))
        let port = IstioPort.outbound.rawValue
        out.findings = ctx.check(PacketSet([cls]), .inbound, obligation: description.id) { o in
            if o.verdict.redirects(to: port) { return nil }
            if let other = o.verdict.capturePort {
                return Violation(kind: .wrongPort, severity: .error, problem: "arrives on a virtual interface but is redirected to port \(other), not \(ctx.ztunnelPort(.outbound))", fix: Fix.ambient)
            }
            return Violation(kind: .missingRedirect, severity: .error,
                             problem: "arrives on a virtual interface but is not redirected to \(ctx.ztunnelPort(.outbound))", fix: Fix.ambient)
        }
        out.proven.append("inbound TCP on \(names.joined(separator: ",")) reaches REDIRECT --to-ports \(port)")
        return out
    }
}

/// 40: one data plane per pod: sidecar and ambient rules never coexist, and an ambient pod has its rules.
enum DataPlaneMode: Obligation {
    static let description = ObligationDescription(
        id: "data-plane-mode", title: "The pod's rules are those of one data plane, and present", invariant: 40,
        quantifiesOver: ["the Istio chains and tables of every backend read"],
        kinds: [.modeConflict, .missingRedirect],
        examples: [
            ExampleRules.example("ambient pod", ExampleRules.ambientPod, .passes),
            ExampleRules.example("sidecar rules left in an ambient pod", ExampleRules.ambientPod, .fails(.modeConflict, .error)) {
                $0.inTable("nat") {
                    ":ISTIO_REDIRECT - [0:0]\n" + $0.inserting("-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001", after: "-A OUTPUT -j ISTIO_OUTPUT")
                }
            },
            ExampleRules.example("ambient pod without rules", ExampleRules.ambientPod, .fails(.missingRedirect, .error)) { _ in
                "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
            },
        ])

    static func check(_ run: VerificationRun) -> CheckOutput {
        var out = CheckOutput()
        let plane = IstioDataPlane(detectedIn: run.ruleset)
        if plane.ambientRules, plane.sidecarRules {
            out.findings.append(Finding(kind: .modeConflict, severity: .error, family: plane.families.first ?? .ipv4,
                message: "The pod holds both sidecar rules (ISTIO_INBOUND, ISTIO_REDIRECT) and ambient in-pod rules (ISTIO_PRERT): traffic is redirected by whichever "
                    + "runs first and can loop between Envoy and ztunnel. A pod moved between modes keeps its old rules until it restarts.",
                fix: "Restart the pod so only its current data plane's rules are installed; a pod with a sidecar is not captured by ambient.",
                obligation: description.id))
        }
        let ambient = run.config.ambient != nil
        if ambient != plane.ambientRules, plane.ambientRules || plane.sidecarRules, !(plane.ambientRules && plane.sidecarRules) {
            // One data plane's rules, but the pod is configured for the other (a manifest, --ambient, --istio-args).
            let (configured, found) = ambient ? ("ambient (ztunnel)", "a sidecar's (ISTIO_INBOUND, ISTIO_REDIRECT)")
                : ("a sidecar pod", "ambient's in-pod rules (ISTIO_PRERT)")
            out.findings.append(Finding(kind: .modeConflict, severity: .error, family: plane.families.first ?? .ipv4,
                message: "The pod is configured as \(configured) but its rules are \(found): they were installed for the other data plane, "
                    + "so the capture checked here is not the one the pod is meant to have.",
                fix: "Restart the pod so its current data plane installs its rules; if the configuration is what is wrong, "
                    + (ambient ? "drop --ambient (or the ambient.istio.io/redirection annotation)." : "check the pod's sidecar injection and ambient annotations."),
                obligation: description.id))
        } else if ambient, !plane.ambientRules, !plane.sidecarRules {
            out.findings.append(Finding(kind: .missingRedirect, severity: .error, family: .ipv4,
                message: "The pod is in ambient mode but its network namespace holds none of the node agent's rules: every packet bypasses ztunnel. "
                    + "The pod most likely started before istio-cni's node agent was ready on its node.",
                fix: Fix.ambient, obligation: description.id))
        }
        if out.findings.isEmpty {
            out.proven.append(run.config.ambient != nil ? "only ambient in-pod rules are present" : "only sidecar rules are present")
        }
        return out
    }
}
