import IstioCapture
import NetfilterModel

/// §13.1: nat OUTPUT hands locally generated traffic to ISTIO_OUTPUT, and nothing above the jump decides first.
enum OutboundHook: FamilyObligation {
    static let description = ObligationDescription(
        id: "outbound-hook", title: "nat OUTPUT jumps to ISTIO_OUTPUT before anything else decides", invariant: 1,
        quantifiesOver: ["every locally generated packet (TCP only before 1.26), any owner, not out an excluded interface"],
        kinds: [.missingRedirect, .foreignRule, .ruleDrift],
        examples: [
            ExampleRules.example("default pod", ExampleRules.pod, .passes),
            ExampleRules.example("jump removed", ExampleRules.pod, .fails(.missingRedirect, .error)) {
                $0.removingLine("-A OUTPUT -j ISTIO_OUTPUT")
            },
            ExampleRules.example("jump limited to UDP", ExampleRules.pod, .fails(.missingRedirect, .error)) {
                $0.replacingLine("-A OUTPUT -j ISTIO_OUTPUT", with: "-A OUTPUT -p udp -j ISTIO_OUTPUT")
            },
            ExampleRules.example("foreign DNAT above the jump", ExampleRules.pod, .fails(.foreignRule, .error)) {
                $0.inserting("-A OUTPUT -d 169.254.169.254/32 -p tcp -j DNAT --to-destination 10.0.0.9:8080",
                             before: "-A OUTPUT -j ISTIO_OUTPUT")
            },
            ExampleRules.example("jump present twice", ExampleRules.pod, .fails(.ruleDrift, .warning)) {
                $0.inserting("-A OUTPUT -j ISTIO_OUTPUT", before: "-A OUTPUT -j ISTIO_OUTPUT")
            },
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        var out = CheckOutput()
        var cls = ctx.localNew.without(.outInterface, ctx.out(ctx.config.excludeInterfaces))
        let tcpOnly = !ctx.atLeast(26)
        if tcpOnly { cls = cls.with(.l4Protocol, ctx.tcp) }
        let required = ctx.captureRequired
        let pipeline = ctx.single(.nat, .output)
        out.findings = ctx.check(PacketSet([cls]), pipeline, obligation: description.id,
                                 only: .notEntering(ctx.chains([(.istioOutput, .nat)]))) { o in
            guard !ctx.entered(o, .istioOutput) else { return nil }
            let matters = !o.packets.intersection(required).isEmpty
            let foreign = o.decidingStep.map(ctx.isForeign) ?? false
            if foreign {
                return Violation(kind: .foreignRule, severity: matters ? .error : .warning,
                                 problem: "never reaches ISTIO_OUTPUT",
                                 fix: "Remove the rule above Istio's jump in nat OUTPUT (or move it below), and find what installs it.",
                                 focus: required)
            }
            return Violation(kind: matters ? .missingRedirect : .ruleDrift, severity: matters ? .error : .info,
                             problem: "never reaches ISTIO_OUTPUT", fix: Fix.reinstall, focus: required)
        }
        let natOutput = ctx.layout.hookChain(.output)
        let jumps = (ctx.table(ctx.layout.nat)?.chain(natOutput)?.rules ?? []).enumerated().filter { $0.element.target == .jump(ctx.layout.chain(.istioOutput)) }
        // A whole install repeated is chain-hygiene's one finding; a jump repeated alone is this one's.
        if jumps.count > 1, ctx.installCount == nil {
            out.findings.append(ctx.structural(.ruleDrift, .warning, table: ctx.layout.nat, chain: natOutput, rule: jumps[1].offset + 1,
                message: "nat OUTPUT jumps to ISTIO_OUTPUT \(jumps.count) times: istio-iptables ran more than once without cleaning up.",
                fix: Fix.reinstall, obligation: description.id))
        }
        out.proven.append("every locally generated \(tcpOnly ? "TCP " : "")packet"
            + (ctx.config.excludeInterfaces.isEmpty ? "" : " not out \(ctx.config.excludeInterfaces.joined(separator: ","))")
            + " enters nat ISTIO_OUTPUT")
        return out
    }
}

/// §13.3: the redirect chains end in the configured listener ports.
enum RedirectTargets: FamilyObligation {
    static let description = ObligationDescription(
        id: "redirect-targets", title: "ISTIO_REDIRECT, ISTIO_IN_REDIRECT and ISTIO_TPROXY deliver to the configured ports", invariant: 3,
        quantifiesOver: ["every TCP packet, locally generated or inbound, that enters ISTIO_REDIRECT, ISTIO_IN_REDIRECT or ISTIO_TPROXY"],
        kinds: [.wrongPort, .missingRedirect],
        examples: [
            ExampleRules.example("default pod", ExampleRules.pod, .passes),
            ExampleRules.example("15001 changed to 15002", ExampleRules.pod, .fails(.wrongPort, .error)) {
                $0.replacingLine("-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
                                 with: "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15002")
            },
            ExampleRules.example("ISTIO_REDIRECT emptied", ExampleRules.pod, .fails(.missingRedirect, .error)) {
                $0.removingLine("-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001")
            },
            ExampleRules.example("a RETURN before the REDIRECT", ExampleRules.pod, .fails(.missingRedirect, .error)) {
                $0.inserting("-A ISTIO_IN_REDIRECT -p tcp -j RETURN", before: "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006")
            },
            ExampleRules.example("TPROXY to the wrong port", ExampleRules.tproxyPod, .fails(.wrongPort, .error)) {
                $0.replacingLine("-A ISTIO_TPROXY ! -d 127.0.0.1/32 -p tcp -j TPROXY --on-port 15006 --on-ip 0.0.0.0 --tproxy-mark 0x539/0xffffffff",
                                 with: "-A ISTIO_TPROXY ! -d 127.0.0.1/32 -p tcp -j TPROXY --on-port 15001 --on-ip 0.0.0.0 --tproxy-mark 0x539/0xffffffff")
            },
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        var out = CheckOutput()
        let c = ctx.config
        let local = ctx.localNew.with(.l4Protocol, ctx.tcp)
        let inbound = ctx.inboundNew.with(.l4Protocol, ctx.tcp)
        let runs: [(PacketBox, Pipeline)] = [(local, .localOutput), (inbound, .inbound)]
        let chains: [(ChainName, TableName, UInt16, String)] = [
            (ctx.layout.chain(.istioRedirect), ctx.layout.nat, c.proxyPort, "Envoy's outbound listener"),
            (ctx.layout.chain(.istioInRedirect), ctx.layout.nat, c.inboundCapturePort, "Envoy's inbound listener"),
            (ctx.layout.chain(.istioTProxy), ctx.layout.mangle, c.inboundCapturePort, "Envoy's inbound listener"),
        ]
        for (box, pipeline) in runs {
            let judged = Relevance.entering(Set(chains.map { TableChain(table: $0.1, chain: $0.0) }))
            out.findings += ctx.check(PacketSet([box]), pipeline, obligation: description.id, only: judged) { o in
                for (chain, table, port, listener) in chains where o.entered(chain, in: table) {
                    if o.verdict.capturePort == port { return nil }
                    // Blame the chain's own rule that let it go (a RETURN), else the jump into it.
                    let inside = o.path.last { $0.table == table && $0.chain == chain && $0.ruleNumber != nil }
                    let into = o.path.last { s in
                        if case .jump(chain) = s.action { return true }
                        if case .goto(chain) = s.action { return true }
                        return false
                    }
                    if let other = o.verdict.capturePort, other != IstioPort.dnsProxy.rawValue {
                        return Violation(kind: .wrongPort, severity: .error,
                                         problem: "enters \(chain) but is delivered to port \(other), not \(listener) (\(port))",
                                         fix: chain == ctx.layout.chain(.istioRedirect) ? "The outbound listener is -p (meshConfig.proxyListenPort). " + Fix.reinstall
                                             : "The inbound listener is -z (meshConfig.proxyInboundListenPort). " + Fix.reinstall)
                    }
                    return Violation(kind: .missingRedirect, severity: .error,
                                     problem: "enters \(chain) but is not delivered to \(listener) (\(port))", fix: Fix.reinstall,
                                     at: inside ?? into)
                }
                return nil
            }
        }
        out.proven.append("TCP entering ISTIO_REDIRECT reaches REDIRECT --to-ports \(c.proxyPort); ISTIO_IN_REDIRECT reaches \(c.inboundCapturePort)"
            + (ctx.tproxyMode ? "; ISTIO_TPROXY reaches TPROXY --on-port \(c.inboundCapturePort)" : ""))
        return out
    }
}

/// §13.4: every outbound TCP packet the configuration captures reaches Envoy's outbound listener.
enum OutboundCompleteness: FamilyObligation {
    static let description = ObligationDescription(
        id: "outbound-completeness", title: "Application TCP traffic is redirected to the outbound listener", invariant: 4,
        quantifiesOver: ["application TCP (uid ∉ P, gid ∉ G, through the owner-group filter), not out lo or an excluded interface, "
            + "dport ∉ O, destination ∉ L ∪ X, and destination ∈ I (or I = *) or dport ∈ Q; DNS the agent takes is left out"],
        kinds: [.missingRedirect, .wrongPort, .foreignRule],
        examples: [
            ExampleRules.example("default pod", ExampleRules.pod, .passes),
            ExampleRules.example("catch-all jump removed", ExampleRules.pod, .fails(.missingRedirect, .error)) {
                $0.removingLine("-A ISTIO_OUTPUT -j ISTIO_REDIRECT")
            },
            ExampleRules.example("early RETURN in ISTIO_OUTPUT", ExampleRules.pod, .fails(.missingRedirect, .error)) {
                $0.inserting("-A ISTIO_OUTPUT -p tcp -j RETURN", before: "-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN")
            },
            ExampleRules.example("foreign ACCEPT above the jump", ExampleRules.pod, .fails(.foreignRule, .error)) {
                $0.inserting("-A OUTPUT -p tcp -m tcp --dport 9080 -j ACCEPT", before: "-A OUTPUT -j ISTIO_OUTPUT")
            },
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        let cls = ctx.outboundCaptureClass
        guard !cls.isEmpty else { return .notApplicable("no outbound destination or port is captured (-i '' and no -q)") }
        var out = CheckOutput()
        let port = ctx.config.proxyPort
        out.findings = ctx.check(cls, .localOutput, obligation: description.id) { o in
            if o.verdict.redirects(to: port) { return nil }
            if let other = o.verdict.capturePort {
                return Violation(kind: .wrongPort, severity: .error,
                                 problem: "is redirected to port \(other), not Envoy's outbound listener (\(port))", fix: Fix.reinstall)
            }
            return Violation(kind: .missingRedirect, severity: .error,
                             problem: "is not redirected to Envoy's outbound listener (\(port))", fix: Fix.outbound)
        }
        var scope = "every application TCP packet"
        if let inc = ctx.includeCIDRs { scope += " to \(inc.isEmpty ? "no CIDR" : ctx.list(inc))" + (ctx.config.outboundPortsInclude.isEmpty ? "" : " or port \(ctx.list(ctx.config.outboundPortsInclude))") }
        scope += ", not to \(ctx.list([ctx.loopback] + ctx.excludeCIDRs))"
        if !ctx.config.outboundPortsExclude.isEmpty { scope += ", not port \(ctx.list(ctx.config.outboundPortsExclude))" }
        if !ctx.includesLoopback { scope += ", not out lo" }
        out.proven.append(scope + ", reaches REDIRECT --to-ports \(port)")
        if !ctx.unresolvedGroups.isEmpty {
            out.notes.append("owner groups \(ctx.unresolvedGroups.joined(separator: ",")) are names; their GIDs were read back from ISTIO_OUTPUT")
        }
        return out
    }
}

/// §13.5: a packet an exclusion names never reaches the outbound listener.
enum ExclusionsWin: FamilyObligation {
    static let description = ObligationDescription(
        id: "exclusions-win", title: "Outbound exclusions win over every include", invariant: 5,
        quantifiesOver: ["application packets with dport ∈ O", "application TCP to a destination ∈ X",
                         "application packets of an excluded owner group, or outside the included groups"],
        kinds: [.exclusionLeak],
        examples: [
            ExampleRules.example("excluded CIDR", excluding, .passes),
            ExampleRules.example("-x RETURN moved below the catch-all", excluding, .fails(.exclusionLeak, .error)) {
                $0.movingLine("-A ISTIO_OUTPUT -d 10.96.0.0/12 -j RETURN", after: "-A ISTIO_OUTPUT -j ISTIO_REDIRECT")
            },
            ExampleRules.example("-o RETURN missing", excluding, .fails(.exclusionLeak, .error)) {
                $0.removingLine("-A ISTIO_OUTPUT -p tcp -m tcp --dport 3306 -j RETURN")
            },
        ])

    static var excluding: CaptureConfiguration {
        var c = ExampleRules.pod
        c.outboundIPRangesExclude = ["10.96.0.0/12"]
        c.outboundPortsExclude = [3306]
        return c
    }

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        let c = ctx.config
        let app = ctx.application(ctx.localNew).without(.outInterface, ctx.out(c.excludeInterfaces))
        var classes: [(String, PacketBox)] = []
        if !c.outboundPortsExclude.isEmpty {
            classes.append(("excludeOutboundPorts (-o) \(ctx.list(c.outboundPortsExclude))",
                            app.with(.destinationPort, ctx.ports(c.outboundPortsExclude))))
        }
        if !ctx.excludeCIDRs.isEmpty {
            classes.append(("excludeOutboundIPRanges (-x) \(ctx.list(ctx.excludeCIDRs))",
                            app.with(.l4Protocol, ctx.tcp).with(.destination, ctx.destinations(ctx.excludeCIDRs))))
        }
        if !ctx.ownerGroupsExcluded.isEmpty {
            classes.append(("ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE (gid \(ctx.ownerGroupsExcluded.map(String.init).joined(separator: ",")))",
                            app.with(.gid, ctx.gids(ctx.ownerGroupsExcluded))))
        }
        if let inc = ctx.ownerGroupsIncluded, ctx.unresolvedGroups.isEmpty {
            classes.append(("ISTIO_OUTBOUND_OWNER_GROUPS (only gid \(inc.map(String.init).joined(separator: ",")))",
                            app.without(.gid, ctx.gids(inc))))
        }
        guard !classes.isEmpty else { return .notApplicable("no outbound exclusion is configured") }
        var out = CheckOutput()
        for (name, box) in classes {
            out.findings += ctx.check(PacketSet([box]), .localOutput, obligation: description.id, only: .captured) { o in
                guard let port = o.verdict.capturePort else { return nil }
                if port == IstioPort.dnsProxy.rawValue, !c.outboundPortsExclude.contains(53),
                   o.packets.subtracting(ctx.space.universe.with(.destinationPort, ctx.ports([53]))).isEmpty { return nil }
                // Blame the include that took it (the jump into a redirect chain), not the REDIRECT itself.
                let include = o.path.last { step in
                    if case .jump(let c) = step.action { return c.rawValue.hasSuffix("REDIRECT") }
                    return false
                }
                return Violation(kind: .exclusionLeak, severity: .error,
                                 problem: "is excluded by \(name) but is captured (port \(port))",
                                 fix: "The exclusion's RETURN must come before every include in ISTIO_OUTPUT. " + Fix.reinstall,
                                 at: include)
            }
            out.proven.append("no packet excluded by \(name) is captured")
        }
        return out
    }
}

/// §13.11: the loopback destination is never captured.
enum LoopbackDestination: FamilyObligation {
    static let description = ObligationDescription(
        id: "loopback-destination", title: "Traffic to the loopback CIDR is never captured", invariant: 11,
        quantifiesOver: ["every locally generated packet to L (127.0.0.1/32, the configured IPv4 loopback CIDR, ::1/128), any owner, except DNS the agent takes"],
        kinds: [.exclusionLeak],
        examples: [
            ExampleRules.example("default pod", ExampleRules.pod, .passes),
            // Out lo the owner rules above it return traffic to 127.0.0.1 already; the RETURN is what keeps a
            // device-bound socket's connection to 127.0.0.1 (out eth0) from the includes.
            ExampleRules.example("loopback RETURN removed", ExampleRules.pod, .fails(.exclusionLeak, .error)) {
                $0.removingLine("-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN")
            },
            ExampleRules.example("self-call redirect without its loopback exclusion", ExampleRules.pod, .fails(.exclusionLeak, .error)) {
                $0.replacingLine("-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT",
                                 with: "-A ISTIO_OUTPUT -o lo -p tcp -m tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT")
            },
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        let cls = PacketSet([ctx.localNew.with(.destination, ctx.destinations([ctx.loopback]))]).subtracting(ctx.dnsBound(ctx.space.universe))
        var out = CheckOutput()
        out.findings = ctx.check(cls, .localOutput, obligation: description.id, only: .captured) { o in
            guard let port = o.verdict.capturePort else { return nil }
            return Violation(kind: .exclusionLeak, severity: .error,
                             problem: "goes to the loopback range \(ctx.loopback.cidrText) but is captured (port \(port))",
                             fix: "ISTIO_OUTPUT needs `"
                                + ctx.ruleText(iptables: "-d \(ctx.loopback.cidrText) -j RETURN", nft: ctx.nftAddress(ctx.loopback, "daddr") + " return")
                                + "` above its includes. " + Fix.reinstall)
        }
        out.proven.append("no packet to \(ctx.loopback.cidrText) is captured (DNS to the agent aside)")
        return out
    }
}

/// §13.21: only TCP reaches Envoy; UDP only reaches the DNS proxy, and only for port 53.
enum UDPNeverToEnvoy: FamilyObligation {
    static let description = ObligationDescription(
        id: "udp-never-to-envoy", title: "Only TCP reaches Envoy; UDP only the DNS proxy on port 53", invariant: 21,
        quantifiesOver: ["every non-TCP packet, locally generated (any owner) or inbound"],
        kinds: [.unexpectedCapture],
        examples: [
            ExampleRules.example("default pod", ExampleRules.pod, .passes),
            ExampleRules.example("REDIRECT without -p tcp", ExampleRules.pod, .fails(.unexpectedCapture, .error)) {
                $0.replacingLine("-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001", with: "-A ISTIO_REDIRECT -p udp -j REDIRECT --to-ports 15001")
            },
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        var out = CheckOutput()
        let local = ctx.localNew.without(.l4Protocol, ctx.tcp)
        let inbound = ctx.inboundNew.without(.l4Protocol, ctx.tcp)
        for (box, pipeline) in [(local, Pipeline.localOutput), (inbound, .inbound)] {
            out.findings += ctx.check(PacketSet([box]), pipeline, obligation: description.id, only: .captured) { o in
                guard let port = o.verdict.capturePort else { return nil }
                let dns = PacketSet([ctx.space.universe.with(.l4Protocol, ctx.udp).with(.destinationPort, ctx.ports([53]))])
                if port == IstioPort.dnsProxy.rawValue, o.packets.subtracting(dns).isEmpty { return nil }
                return Violation(kind: .unexpectedCapture, severity: .error,
                                 problem: "is not TCP but is captured (port \(port)); Envoy only proxies TCP", fix: Fix.reinstall)
            }
        }
        out.proven.append("no non-TCP packet reaches Envoy; UDP reaches only 15053, for port 53")
        return out
    }
}
