import IstioCapture
import NetfilterModel

/// §13.2: nat PREROUTING hands inbound TCP to ISTIO_INBOUND exactly when REDIRECT-mode inbound capture is on.
enum InboundHook: FamilyObligation {
    static let description = ObligationDescription(
        id: "inbound-hook", title: "nat PREROUTING jumps to ISTIO_INBOUND exactly when inbound capture is on", invariant: 2,
        quantifiesOver: ["inbound TCP (first packet of a connection) not on an excluded or virtual interface"],
        kinds: [.missingRedirect, .unexpectedCapture, .foreignRule, .ruleDrift],
        examples: [
            ExampleRules.example("default pod", ExampleRules.pod, .passes),
            ExampleRules.example("PREROUTING jump removed", ExampleRules.pod, .fails(.missingRedirect, .error)) {
                $0.removingLine("-A PREROUTING -p tcp -j ISTIO_INBOUND")
            },
            ExampleRules.example("jump present although -b is empty", noInbound, .fails(.unexpectedCapture, .error)) {
                $0.inserting("-A PREROUTING -p tcp -j ISTIO_INBOUND", before: "-A OUTPUT -j ISTIO_OUTPUT")
                    .inserting("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT", before: "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006")
            },
        ])

    static var noInbound: CaptureConfiguration {
        var c = ExampleRules.pod
        c.inboundPortsInclude = .none
        return c
    }

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        var out = CheckOutput()
        let c = ctx.config
        let skipped = c.excludeInterfaces + c.rerouteVirtualInterfaces
        let cls = ctx.inboundNew.with(.l4Protocol, ctx.tcp).without(.inInterface, ctx.into(skipped))
        let pipeline = ctx.single(.nat, .prerouting)
        if c.interceptionMode == .redirect, !c.inboundPortsInclude.isEmpty {
            out.findings = ctx.check(PacketSet([cls]), pipeline, obligation: description.id,
                                     only: .notEntering(ctx.chains([(.istioInbound, .nat)]))) { o in
                guard !ctx.entered(o, .istioInbound) else { return nil }
                return Violation(kind: .missingRedirect, severity: .error,
                                 problem: "never reaches nat ISTIO_INBOUND although inbound capture is on: plaintext reaches the app, bypassing mTLS and authorization",
                                 fix: Fix.inbound)
            }
            out.proven.append("every inbound TCP packet" + (skipped.isEmpty ? "" : " not on \(skipped.joined(separator: ","))") + " enters nat ISTIO_INBOUND")
        } else {
            let why = c.interceptionMode == .tproxy ? "TPROXY mode captures inbound in mangle" : "inbound capture is off (-b '')"
            out.findings = ctx.check(PacketSet([cls]), pipeline, obligation: description.id,
                                     only: .entering(ctx.chains([(.istioInbound, .nat)]))) { o in
                guard ctx.entered(o, .istioInbound) else { return nil }
                if let port = o.verdict.capturePort {
                    return Violation(kind: .unexpectedCapture, severity: .error,
                                     problem: "enters nat ISTIO_INBOUND and is captured (port \(port)) although \(why)", fix: Fix.inbound)
                }
                return Violation(kind: .ruleDrift, severity: .info, problem: "enters nat ISTIO_INBOUND although \(why)", fix: Fix.reinstall)
            }
            // One note about the stray jump is enough; the captures are each worth a finding.
            if let firstDrift = out.findings.firstIndex(where: { $0.kind == .ruleDrift }) {
                out.findings = out.findings.enumerated().filter { $0.offset == firstDrift || $0.element.kind != .ruleDrift }.map(\.element)
            }
            out.proven.append("no inbound TCP packet is captured through nat ISTIO_INBOUND (\(why))")
        }
        return out
    }
}

/// §13.12: inbound capture covers exactly the configured ports, never the tunnel port (REDIRECT mode).
enum InboundPorts: FamilyObligation {
    static let description = ObligationDescription(
        id: "inbound-ports", title: "Inbound capture covers exactly the configured ports", invariant: 12,
        quantifiesOver: ["inbound TCP on a non-excluded interface: to each captured port (must reach the inbound listener)",
                         "to each excluded or unlisted port (must not)", "to the tunnel port (must not, in REDIRECT mode)"],
        kinds: [.missingRedirect, .wrongPort, .exclusionLeak, .unexpectedCapture, .tproxy],
        examples: [
            ExampleRules.example("default pod", ExampleRules.pod, .passes),
            ExampleRules.example("status port captured", ExampleRules.pod, .fails(.exclusionLeak, .error)) {
                $0.removingLine("-A ISTIO_INBOUND -p tcp -m tcp --dport 15020 -j RETURN")
            },
            ExampleRules.example("tunnel port captured", ExampleRules.pod, .fails(.unexpectedCapture, .error)) {
                $0.removingLine("-A ISTIO_INBOUND -p tcp -m tcp --dport 15008 -j RETURN")
            },
            ExampleRules.example("catch-all removed", ExampleRules.pod, .fails(.missingRedirect, .error)) {
                $0.removingLine("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT")
            },
            ExampleRules.example("TPROXY captures the tunnel port (Istio behaviour)", ExampleRules.tproxyPod, .fails(.tproxy, .warning)),
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        let c = ctx.config
        guard !c.inboundPortsInclude.isEmpty else { return .notApplicable("inbound capture is off (-b '')") }
        var out = CheckOutput()
        let z = c.inboundCapturePort
        let tunnel = c.inboundTunnelPort
        let base = ctx.inboundNew.with(.l4Protocol, ctx.tcp).without(.inInterface, ctx.into(c.excludeInterfaces + c.rerouteVirtualInterfaces))
        let captured: PacketBox
        let notCaptured: PacketBox
        let exclusionName: String
        switch c.inboundPortsInclude {
        case .all:
            captured = base.without(.destinationPort, ctx.ports(ctx.inboundExcluded + [tunnel]))
            notCaptured = base.with(.destinationPort, ctx.ports(ctx.inboundExcluded).subtracting(ctx.ports([tunnel])))
            exclusionName = "excludeInboundPorts (-d) \(ctx.list(ctx.inboundExcluded))"
        case .some(let list):
            captured = base.with(.destinationPort, ctx.ports(list).subtracting(ctx.ports([tunnel])))
            notCaptured = base.without(.destinationPort, ctx.ports(list + [tunnel]))
            exclusionName = "includeInboundPorts (-b) \(ctx.list(list)), which does not list it"
        }
        let mode = ctx.tproxyMode ? "TPROXY --on-port" : "REDIRECT --to-ports"
        out.findings += ctx.check(PacketSet([captured]), .inbound, obligation: description.id) { o in
            if o.verdict.capturePort == z { return nil }
            if let other = o.verdict.capturePort {
                return Violation(kind: .wrongPort, severity: .error, problem: "is captured inbound traffic but goes to port \(other), not the inbound listener (\(z))", fix: Fix.reinstall)
            }
            return Violation(kind: .missingRedirect, severity: .error,
                             problem: "is inbound traffic to a captured port but does not reach the inbound listener (\(z)): it bypasses mTLS and authorization",
                             fix: Fix.inbound)
        }
        out.findings += ctx.check(PacketSet([notCaptured]), .inbound, obligation: description.id, only: .captured) { o in
            guard let port = o.verdict.capturePort else { return nil }
            let listed = c.inboundPortsInclude.isAll
            return Violation(kind: listed ? .exclusionLeak : .unexpectedCapture, severity: .error,
                             problem: "is inbound traffic to a port excluded by \(exclusionName) but is captured (port \(port))",
                             fix: Fix.inbound)
        }
        out.findings += ctx.check(PacketSet([base.with(.destinationPort, ctx.ports([tunnel]))]), .inbound, obligation: description.id, only: .captured) { o in
            guard let port = o.verdict.capturePort else { return nil }
            if case .tproxy = o.verdict {
                return Violation(kind: .tproxy, severity: .warning,
                                 problem: "is HBONE to the tunnel port \(tunnel) and is TPROXYed to \(port): TPROXY mode has no tunnel-port exemption (the 15008 RETURN lives in nat ISTIO_INBOUND, which nothing jumps to in TPROXY mode; Istio behaviour in every version)",
                                 fix: "Use REDIRECT interception for pods that must accept HBONE on \(tunnel).")
            }
            return Violation(kind: .unexpectedCapture, severity: .error,
                             problem: "is HBONE to the tunnel port \(tunnel) but is captured (port \(port))",
                             fix: "nat ISTIO_INBOUND must start with `"
                                + ctx.ruleText(iptables: "-p tcp --dport \(tunnel) -j RETURN", nft: "tcp dport \(tunnel) return")
                                + "` (-e). " + Fix.reinstall)
        }
        out.proven.append("inbound TCP to captured ports reaches \(mode) \(z); excluded ports" + (ctx.tproxyMode ? "" : " and the tunnel port \(tunnel)") + " are not captured")
        return out
    }
}

/// §13.15: an excluded interface's traffic is never captured, either way.
enum InterfaceExclusions: FamilyObligation {
    static let description = ObligationDescription(
        id: "interface-exclusions", title: "Excluded interfaces are never captured", invariant: 15,
        quantifiesOver: ["for each excluded interface X: every locally generated packet out X, every inbound TCP packet in X"],
        kinds: [.exclusionLeak],
        examples: [
            ExampleRules.example("excluded interface", excludingNIC, .passes),
            ExampleRules.example("OUTPUT RETURN removed", excludingNIC, .fails(.exclusionLeak, .error)) {
                $0.removingLine("-A OUTPUT -o net1 -j RETURN")
            },
            ExampleRules.example("PREROUTING RETURN below the jump", excludingNIC, .fails(.exclusionLeak, .error)) {
                $0.movingLine("-A PREROUTING -i net1 -j RETURN", after: "-A PREROUTING -p tcp -j ISTIO_INBOUND")
            },
        ])

    static var excludingNIC: CaptureConfiguration {
        var c = ExampleRules.pod
        c.excludeInterfaces = ["net1"]
        return c
    }

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        let e = ctx.config.excludeInterfaces
        guard !e.isEmpty else { return .notApplicable("no interface is excluded (-c)") }
        var out = CheckOutput()
        for x in e {
            let outbound = ctx.localNew.with(.outInterface, ctx.out([x]))
            let inbound = ctx.inboundNew.with(.l4Protocol, ctx.tcp).with(.inInterface, ctx.into([x]))
            for (box, pipeline, dir) in [(outbound, Pipeline.localOutput, "out"), (inbound, .inbound, "in")] {
                out.findings += ctx.check(PacketSet([box]), pipeline, obligation: description.id, only: .captured) { o in
                    guard let port = o.verdict.capturePort else { return nil }
                    return Violation(kind: .exclusionLeak, severity: .error,
                                     problem: "goes \(dir) the excluded interface \(x) but is captured (port \(port))",
                                     fix: "traffic.sidecar.istio.io/excludeInterfaces (-c) adds `"
                                        + ctx.ruleText(iptables: "-\(dir == "out" ? "o" : "i") \(x) -j RETURN", nft: "\(dir == "out" ? "oifname" : "iifname") \"\(x)\" return")
                                        + "` above Istio's jumps. " + Fix.reinstall)
                }
            }
        }
        out.proven.append("nothing in or out \(e.joined(separator: ",")) is captured")
        return out
    }
}

/// §13.16: traffic arriving on a virtual interface (VMs, DinD) is captured as outbound.
enum VirtualInterfaces: FamilyObligation {
    static let description = ObligationDescription(
        id: "virtual-interfaces", title: "Traffic from virtual interfaces is captured as outbound", invariant: 16,
        quantifiesOver: ["for each -k interface K: inbound TCP in K to an included destination (must reach the outbound listener), "
            + "to any other destination (must not be captured)"],
        kinds: [.missingRedirect, .unexpectedCapture],
        examples: [
            ExampleRules.example("virtual interface", virtual, .passes),
            ExampleRules.example("RETURN above the REDIRECT", virtual, .fails(.missingRedirect, .error)) {
                $0.movingLine("-A PREROUTING -i veth0 -j ISTIO_REDIRECT", after: "-A PREROUTING -i veth0 -j RETURN")
            },
        ])

    static var virtual: CaptureConfiguration {
        var c = ExampleRules.pod
        c.rerouteVirtualInterfaces = ["veth0"]
        return c
    }

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        let k = ctx.config.rerouteVirtualInterfaces
        guard !k.isEmpty else { return .notApplicable("no virtual interface is configured (-k)") }
        var out = CheckOutput()
        let p = ctx.config.proxyPort
        let legacy = ctx.family == .ipv6 && !ctx.atLeast(14)
        for iface in k {
            let base = ctx.inboundNew.with(.l4Protocol, ctx.tcp).with(.inInterface, ctx.into([iface]))
            let included = ctx.includeCIDRs.map { base.with(.destination, ctx.destinations($0)) } ?? base
            let excluded = ctx.includeCIDRs.map { PacketSet([base.without(.destination, ctx.destinations($0))]) } ?? PacketSet()
            if ctx.includeCIDRs.map({ !$0.isEmpty }) ?? true {
                out.findings += ctx.check(PacketSet([included]), .inbound, obligation: description.id) { o in
                    if o.verdict.redirects(to: p) { return nil }
                    return Violation(kind: .missingRedirect, severity: legacy ? .warning : .error,
                                     problem: "arrives on the virtual interface \(iface) but is not redirected to the outbound listener (\(p))"
                                        + (legacy ? " (Istio 1.10's IPv6 rules returned instead)" : ""),
                                     fix: "istio.io/reroute-virtual-interfaces (-k) adds `"
                                        + ctx.ruleText(iptables: "-i \(iface) -j ISTIO_REDIRECT` above `-i \(iface) -j RETURN",
                                                       nft: "iifname \"\(iface)\" jump istio-redirect` above `iifname \"\(iface)\" return")
                                        + "`. " + Fix.reinstall)
                }
            }
            out.findings += ctx.check(excluded, .inbound, obligation: description.id, only: .captured) { o in
                guard let port = o.verdict.capturePort else { return nil }
                return Violation(kind: .unexpectedCapture, severity: .error,
                                 problem: "arrives on the virtual interface \(iface) for a destination outside -i but is captured (port \(port))",
                                 fix: Fix.outbound)
            }
        }
        out.proven.append("TCP from \(k.joined(separator: ",")) to included destinations reaches REDIRECT --to-ports \(p)")
        return out
    }
}
