import IstioCapture
import NetfilterModel

/// §13.13: application DNS to the nameservers reaches the agent; DNS to other servers does not.
enum DNSCapture: FamilyObligation {
    static let description = ObligationDescription(
        id: "dns-capture", title: "Application DNS reaches the DNS proxy (15053)", invariant: 13,
        quantifiesOver: ["application TCP and UDP to port 53 of each nameserver (any destination with capture-all), any interface but excluded ones",
                         "application port-53 traffic to other servers (must not reach 15053)"],
        kinds: [.dnsCapture, .wrongPort],
        examples: [
            ExampleRules.example("DNS capture", ExampleRules.dnsPod, .passes),
            ExampleRules.example("UDP REDIRECT removed", ExampleRules.dnsPod, .fails(.dnsCapture, .error)) {
                $0.removingLine("-A ISTIO_OUTPUT_DNS -p udp -m udp --dport 53 -j REDIRECT --to-ports 15053")
            },
            ExampleRules.example("lo RETURN without the port-53 carve-out", ExampleRules.dnsPod, .fails(.dnsCapture, .error)) {
                $0.replacingLine("-A ISTIO_OUTPUT -o lo -p tcp -m tcp ! --dport 53 -m owner ! --uid-owner 1337 -j RETURN",
                                 with: "-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN")
            },
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        guard ctx.dnsActive else {
            return .notApplicable(ctx.config.redirectDNS ? "no nameserver of this family and no capture-all" : "DNS capture is off")
        }
        var out = CheckOutput()
        let port = IstioPort.dnsProxy.rawValue
        out.findings += ctx.check(ctx.dnsCaptureClass, .localOutput, obligation: description.id) { o in
            if o.verdict.redirects(to: port) { return nil }
            if let other = o.verdict.capturePort {
                return Violation(kind: .wrongPort, severity: .error, problem: "is a DNS query but goes to port \(other), not the DNS proxy (\(port))", fix: Fix.dns)
            }
            return Violation(kind: .dnsCapture, severity: .error,
                             problem: "is a DNS query the agent must answer but does not reach the DNS proxy (\(port))", fix: Fix.dns)
        }
        let servers = ctx.config.captureAllDNS ? "any server" : ctx.list(ctx.dnsServers)
        out.proven.append("application TCP and UDP DNS to \(servers) reaches REDIRECT --to-ports \(port)")
        if !ctx.config.captureAllDNS {
            let other = ctx.application(ctx.localNew).with(.destinationPort, ctx.ports([53])).with(.l4Protocol, ctx.tcp | ctx.udp)
                .without(.destination, ctx.destinations(ctx.dnsServers))
            out.findings += ctx.check(PacketSet([other]), .localOutput, obligation: description.id, only: .captured) { o in
                guard o.verdict.redirects(to: port) else { return nil }
                return Violation(kind: .dnsCapture, severity: .error,
                                 problem: "is DNS to a server not in resolv.conf but is redirected to the agent: a local forwarder's upstream queries loop",
                                 fix: Fix.dns)
            }
            out.proven.append("DNS to other servers does not reach \(port)")
        }
        return out
    }
}

/// §13.14: DNS conntrack zones keep the app's query and the agent's upstream query apart.
enum DNSConntrackZones: FamilyObligation {
    static let description = ObligationDescription(
        id: "dns-conntrack-zones", title: "DNS gets the right conntrack zones", invariant: 14,
        quantifiesOver: ["proxy-owned UDP to port 53 (zone 1)", "proxy-owned UDP from port 15053 (zone 2)",
                         "application UDP to a nameserver's port 53 (zone 2)", "UDP from a nameserver's port 53, received (zone 1)"],
        kinds: [.dnsCapture],
        examples: [
            ExampleRules.example("DNS capture", ExampleRules.dnsPod, .passes),
            ExampleRules.example("zone rules swapped", ExampleRules.dnsPod, .fails(.dnsCapture, .error)) {
                $0.movingLine("-A ISTIO_OUTPUT_DNS -p udp -m udp --dport 53 -j CT --zone 2",
                              after: "-A ISTIO_INBOUND -p udp -m udp --sport 53 -j CT --zone 1")
            },
            ExampleRules.example("answer zone rule removed", ExampleRules.dnsPod, .fails(.dnsCapture, .error)) {
                $0.removingLine("-A ISTIO_INBOUND -p udp -m udp --sport 53 -j CT --zone 1")
            },
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        guard ctx.dnsOn else { return .notApplicable(ctx.config.redirectDNS ? "DNS capture is inactive (no nameserver, no capture-all)" : "DNS capture is off") }
        guard ctx.atLeast(14) || ctx.config.legacyDNSConntrackZones else {
            return .notApplicable("Istio before 1.14 adds the zone rules only with ISTIO_META_DNS_CONNTRACK_ZONE=true")
        }
        var out = CheckOutput()
        let udp = ctx.localNew.with(.l4Protocol, ctx.udp)
        var classes: [(String, PacketSet, Pipeline, UInt16, Severity)] = [
            ("the agent's upstream DNS query", ctx.proxyOwned(udp.with(.destinationPort, ctx.ports([53]))), ctx.single(.raw, .output), 1, .error),
            ("the agent's answer to an application", ctx.proxyOwned(udp.with(.sourcePort, ctx.sourcePorts([IstioPort.dnsProxy.rawValue]))
                .without(.destinationPort, ctx.ports([53]))), ctx.single(.raw, .output), 2, .error),
        ]
        if ctx.dnsActive {
            var app = ctx.application(udp).with(.destinationPort, ctx.ports([53]))
            var answer = ctx.unmarked.with(.outInterface, ctx.space.noInterface(.outInterface))
                .without(.inInterface, ctx.space.noInterface(.inInterface))
                .with(.l4Protocol, ctx.udp).with(.sourcePort, ctx.sourcePorts([53]))
            if !ctx.config.captureAllDNS {
                app = app.with(.destination, ctx.destinations(ctx.dnsServers))
                answer = answer.with(.source, ctx.sources(ctx.dnsServers))
            }
            classes.append(("an application's DNS query", PacketSet([app]), ctx.single(.raw, .output), 2, .error))
            // 1.14 and 1.18 matched the answer by destination (-d S), which never matches an answer from S.
            classes.append(("a nameserver's answer to the agent", PacketSet([answer]), ctx.single(.raw, .prerouting), 1,
                            ctx.atLeast(22) ? .error : .warning))
        }
        for (what, cls, pipeline, zone, severity) in classes {
            out.findings += ctx.check(cls, pipeline, obligation: description.id) { o in
                if o.ctZone == zone { return nil }
                let got = o.ctZone.map { "zone \($0)" } ?? "no zone"
                let quirk = severity == .warning
                    ? " (Istio before 1.22 matched the answer by destination, `-d <server>`, which never matches an answer from the server)" : ""
                // Blame the CT rule that set the zone (the first one on the path), if any.
                let ct = o.path.first { if case .effect(let e) = $0.action { e.hasPrefix("CT") } else { false } }
                return Violation(kind: .dnsCapture, severity: severity,
                                 problem: "is \(what) and gets conntrack \(got), not zone \(zone): the app's and the agent's queries can collide in conntrack\(quirk)",
                                 fix: "The owner-based CT rules must come before the per-server zone-2 rule (the first CT rule wins). " + Fix.dns,
                                 at: ct)
            }
        }
        out.proven.append(classes.map { "\($0.0): zone \($0.3)" }.joined(separator: "; "))
        return out
    }
}
