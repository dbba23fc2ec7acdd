import IstioCapture
import NetfilterModel

/// §13.6: the proxy's own traffic is never captured outbound (no loop), except the self-call into 15006.
enum ProxyNotCaptured: FamilyObligation {
    static let description = ObligationDescription(
        id: "proxy-not-captured", title: "The proxy's own traffic is never captured outbound", invariant: 6,
        quantifiesOver: ["every locally generated packet owned by a uid ∈ P (any gid) or a gid ∈ G",
                         "the proxy container's real runAsUser/runAsGroup, when the pod spec gives them"],
        kinds: [.ownerMatchGap, .dnsCapture],
        examples: [
            ExampleRules.example("default pod", ExampleRules.pod, .passes),
            ExampleRules.example("UID RETURN dropped", ExampleRules.pod, .fails(.ownerMatchGap, .error)) {
                $0.removingLine("-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN")
            },
            ExampleRules.example("proxy runs as a UID and GID the rules do not name", realIdentity, .fails(.ownerMatchGap, .error)),
            ExampleRules.example("DNS jump above the owner RETURNs", ExampleRules.dnsPod, .fails(.dnsCapture, .error)) {
                $0.movingLine("-A ISTIO_OUTPUT -j ISTIO_OUTPUT_DNS", after: "-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN")
            },
        ])

    static var realIdentity: CaptureConfiguration {
        var c = ExampleRules.pod
        c.proxyRunAsUser = 1000670000
        c.proxyRunAsGroup = 1000670001
        return c
    }

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        var out = CheckOutput()
        let selfCallable = ctx.localNew.with(.outInterface, ctx.out(ctx.lo)).without(.destination, ctx.destinations([ctx.loopback]))
        let owned = ctx.proxyOwned(ctx.localNew)
        let mayLoopBack = owned.intersection(selfCallable)
        let rest = owned.subtracting(selfCallable)
        func judge(allowInbound: Bool, who: String) -> (Outcome) -> Violation? {
            { o in
                guard let port = o.verdict.capturePort else { return nil }
                if allowInbound, port == ctx.config.inboundCapturePort { return nil }
                if port == IstioPort.dnsProxy.rawValue {
                    return Violation(kind: .dnsCapture, severity: .error,
                                     problem: "is \(who) DNS query but is redirected back to the agent (15053): a loop",
                                     fix: "ISTIO_OUTPUT_DNS (or the UDP port-53 REDIRECT) must come after the proxy's owner RETURNs. " + Fix.reinstall)
                }
                return Violation(kind: .ownerMatchGap, severity: .error,
                                 problem: "is \(who) traffic but is captured (port \(port)): Envoy would receive its own connections",
                                 fix: Fix.owner)
            }
        }
        out.findings += ctx.check(mayLoopBack, .localOutput, obligation: description.id, only: .captured, judge(allowInbound: true, who: "the proxy's own"))
        out.findings += ctx.check(rest, .localOutput, obligation: description.id, only: .captured, judge(allowInbound: false, who: "the proxy's own"))
        if let real = ctx.realIdentity, !ctx.proxyUIDs.contains(real.uid), !ctx.proxyGIDs.contains(real.gid) {
            let box = ctx.localNew.with(.uid, ctx.uids([real.uid])).with(.gid, ctx.gids([real.gid]))
            out.findings += ctx.check(PacketSet([box]).subtracting(selfCallable), .localOutput, obligation: description.id, only: .captured,
                                      judge(allowInbound: false, who: "the proxy container's (runs as \(real.uid):\(real.gid), named by neither -u nor -g)"))
        }
        out.proven.append("no packet owned by uid \(ctx.proxyUIDs.map(String.init).joined(separator: ",")) or gid "
            + "\(ctx.proxyGIDs.map(String.init).joined(separator: ",")) is captured, except TCP out lo to a non-loopback address into \(ctx.config.inboundCapturePort)")
        return out
    }
}

/// §13.7: each configured UID alone, and each configured GID alone, exempts the proxy; so does its real identity.
enum BothIdentities: FamilyObligation {
    static let description = ObligationDescription(
        id: "both-identities", title: "Every proxy UID and every proxy GID is exempt on its own", invariant: 7,
        quantifiesOver: ["for each u ∈ P: packets owned by u with a gid ∉ G, not out lo",
                         "for each g ∈ G: packets owned by g with a uid ∉ P, not out lo",
                         "the proxy's real (runAsUser, runAsGroup), not out lo"],
        kinds: [.ownerMatchGap],
        examples: [
            ExampleRules.example("default pod", ExampleRules.pod, .passes),
            ExampleRules.example("GID RETURN dropped", ExampleRules.pod, .fails(.ownerMatchGap, .error)) {
                $0.removingLine("-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN")
            },
            ExampleRules.example("UID 1337 changed to 1338", ExampleRules.pod, .fails(.ownerMatchGap, .error)) {
                $0.replacing("--uid-owner 1337", with: "--uid-owner 1338")
            },
            ExampleRules.example("TPROXY proxy (UID 0, GID 1337) without GID rules", tproxyRoot, .fails(.ownerMatchGap, .error)) {
                $0.removingLine("-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN")
            },
        ])

    static var tproxyRoot: CaptureConfiguration {
        var c = ExampleRules.tproxyPod
        c.proxyRunAsUser = 0
        c.proxyRunAsGroup = 1337
        return c
    }

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        var out = CheckOutput()
        let base = ctx.localNew.without(.outInterface, ctx.out(ctx.lo))
        var classes: [(String, PacketBox)] = []
        for u in ctx.proxyUIDs { classes.append(("proxy UID \(u) (with a GID outside -g)", base.with(.uid, ctx.uids([u])).without(.gid, ctx.gids(ctx.proxyGIDs)))) }
        for g in ctx.proxyGIDs { classes.append(("proxy GID \(g) (with a UID outside -u)", base.with(.gid, ctx.gids([g])).without(.uid, ctx.uids(ctx.proxyUIDs)))) }
        if let real = ctx.realIdentity {
            classes.append(("the proxy container's identity \(real.uid):\(real.gid)", base.with(.uid, ctx.uids([real.uid])).with(.gid, ctx.gids([real.gid]))))
        }
        guard !classes.isEmpty else { return .notApplicable("no proxy UID or GID is configured") }
        for (who, box) in classes {
            out.findings += ctx.check(PacketSet([box]), .localOutput, obligation: description.id, only: .captured) { o in
                guard let port = o.verdict.capturePort else { return nil }
                return Violation(kind: .ownerMatchGap, severity: .error,
                                 problem: "is owned by \(who) but is captured (port \(port)): that identity is not exempt",
                                 fix: Fix.owner)
            }
        }
        out.proven.append("each of " + classes.map(\.0).joined(separator: "; ") + " is exempt from capture off lo")
        return out
    }
}

/// §13.8: Envoy's forward to the app (from 127.0.0.6 / ::6 over lo) is never captured again.
enum InboundForwardSource: FamilyObligation {
    static let description = ObligationDescription(
        id: "inbound-forward-source", title: "Envoy's forward to the app from 127.0.0.6 is not captured", invariant: 8,
        quantifiesOver: ["proxy-owned TCP from 127.0.0.6 (::6) out lo to a non-loopback address, through the receive side in TPROXY mode"],
        kinds: [.unexpectedCapture],
        examples: [
            ExampleRules.example("default pod", ExampleRules.pod, .passes),
            ExampleRules.example("127.0.0.6 RETURN removed", ExampleRules.pod, .fails(.unexpectedCapture, .error)) {
                $0.removingLine("-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN")
            },
            ExampleRules.example("TPROXY: mangle 127.0.0.6 RETURN removed", ExampleRules.tproxyPod, .fails(.unexpectedCapture, .error)) {
                $0.removingLine("-A ISTIO_INBOUND -s 127.0.0.6/32 -i lo -p tcp -j RETURN")
            },
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        var out = CheckOutput()
        var owned = ctx.proxyOwned(ctx.localNew)
        if let real = ctx.realIdentity {
            owned = owned.union(PacketSet([ctx.localNew.with(.uid, ctx.uids([real.uid])).with(.gid, ctx.gids([real.gid]))]))
        }
        let cls = owned.with(.l4Protocol, ctx.tcp).with(.outInterface, ctx.out(ctx.lo))
            .with(.source, ctx.sources([ctx.passthroughSource])).without(.destination, ctx.destinations([ctx.loopback]))
        let legacy = ctx.tproxyMode && !ctx.atLeast(14)
        out.findings = ctx.check(cls, ctx.loopbackPipeline, obligation: description.id, only: .captured) { o in
            guard let port = o.verdict.capturePort else { return nil }
            return Violation(kind: .unexpectedCapture, severity: legacy ? .warning : .error,
                             problem: "is Envoy forwarding an inbound connection to the app but is captured again (port \(port)): "
                                + "requests loop back into the proxy" + (legacy ? " (Istio before 1.14 had no such exemption in TPROXY mode)" : ""),
                             fix: "ISTIO_OUTPUT needs `"
                                + ctx.ruleText(iptables: "-s \(ctx.passthroughSource.cidrText) -o lo -j RETURN",
                                               nft: "oifname \"lo\" " + ctx.nftAddress(ctx.passthroughSource, "saddr") + " return")
                                + "` above the owner rules"
                                + (ctx.tproxyMode ? " and mangle ISTIO_INBOUND `" + ctx.ruleText(iptables: "-s \(ctx.passthroughSource.cidrText) -i lo -p tcp -j RETURN",
                                                                                             nft: "iifname \"lo\" meta l4proto tcp " + ctx.nftAddress(ctx.passthroughSource, "saddr") + " return") + "`" : "")
                                + ". " + Fix.reinstall)
        }
        out.proven.append("proxy traffic from \(ctx.passthroughSource.cidrText) over lo is not captured")
        if ctx.family == .ipv6 { out.notes.append("whether ::6 is configured on lo is not visible in the tables") }
        return out
    }
}

/// §13.9: the proxy calling its own pod goes through the inbound listener; the tunnel port does not (1.18+).
enum SelfCall: FamilyObligation {
    static let description = ObligationDescription(
        id: "self-call", title: "The proxy calling its own pod is redirected to the inbound listener", invariant: 9,
        quantifiesOver: ["TCP owned by the first proxy UID, out lo, to a non-loopback address, not from 127.0.0.6, "
            + "dport ≠ the tunnel port (1.18+) and ≠ 53 with DNS", "the same to the tunnel port (must not be captured)",
                         "the other proxy UIDs, and the real identity (section 14: only the first UID gets this)"],
        kinds: [.missingRedirect, .wrongPort, .unexpectedCapture, .tproxy, .ownerMatchGap],
        examples: [
            ExampleRules.example("default pod", ExampleRules.pod, .passes),
            ExampleRules.example("self-call rules removed", ExampleRules.pod, .fails(.missingRedirect, .error)) {
                $0.removingLine("-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT")
                    .removingLine("-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT")
            },
            ExampleRules.example("tunnel port not exempt", ExampleRules.pod, .fails(.unexpectedCapture, .error)) {
                $0.replacingLine("-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT",
                                 with: "-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT")
            },
            ExampleRules.example("TPROXY: 1338 marking removed", ExampleRules.tproxyPod, .fails(.missingRedirect, .error)) {
                $0.removingLine("-A OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m owner --uid-owner 1337 -j MARK --set-xmark 0x53a/0xffffffff")
                    .removingLine("-A OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m owner --gid-owner 1337 -j MARK --set-xmark 0x53a/0xffffffff")
                    .removingLine("-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT")
                    .removingLine("-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT")
            },
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        guard let first = ctx.proxyUIDs.first else { return .notApplicable("no proxy UID is configured") }
        var out = CheckOutput()
        let z = ctx.config.inboundCapturePort
        let pipeline = ctx.loopbackPipeline
        out.findings += ctx.check(ctx.selfCallClass, pipeline, obligation: description.id) { o in
            if o.verdict.capturePort == z { return nil }
            if let other = o.verdict.capturePort {
                return Violation(kind: .wrongPort, severity: .error, problem: "is the proxy calling its own pod but goes to port \(other), not the inbound listener (\(z))", fix: Fix.reinstall)
            }
            return Violation(kind: .missingRedirect, severity: .error,
                             problem: "is the proxy calling its own pod (an app calling its own Service) but skips the inbound listener (\(z)): inbound policy and telemetry do not apply",
                             fix: ctx.tproxyMode ? "mangle OUTPUT must mark this traffic 0x53a (1338) for ISTIO_INBOUND. " + Fix.reinstall
                                 : "ISTIO_OUTPUT needs the self-call rule `! -d \(ctx.loopback.cidrText) -o lo -p tcp ... -m owner --uid-owner \(first) -j ISTIO_IN_REDIRECT`. " + Fix.reinstall)
        }
        out.proven.append("TCP from uid \(first) over lo to the pod's own address reaches the inbound listener \(z)")

        if ctx.atLeast(18) {
            let tunnel = ctx.config.inboundTunnelPort
            var owned = ctx.proxyOwned(ctx.localNew.with(.l4Protocol, ctx.tcp).with(.outInterface, ctx.out(ctx.lo)))
            owned = owned.without(.source, ctx.sources([ctx.passthroughSource])).without(.destination, ctx.destinations([ctx.loopback]))
                .with(.destinationPort, ctx.ports([tunnel]))
            out.findings += ctx.check(owned, pipeline, obligation: description.id, only: .captured) { o in
                guard let port = o.verdict.capturePort else { return nil }
                if case .tproxy = o.verdict {
                    return Violation(kind: .tproxy, severity: .warning,
                                     problem: "is HBONE from the proxy to its own pod (port \(tunnel)) and is TPROXYed to \(port): TPROXY mode has no tunnel-port exemption in mangle ISTIO_INBOUND (Istio behaviour in every version), so HBONE to a TPROXY sidecar lands on the inbound listener",
                                     fix: "Use REDIRECT interception for pods that must accept HBONE on \(tunnel).")
                }
                return Violation(kind: .unexpectedCapture, severity: .error,
                                 problem: "is HBONE from the proxy to its own pod (port \(tunnel)) but is captured (port \(port))",
                                 fix: "The self-call rules must exclude the tunnel port (-e, `! --dport \(tunnel)`). " + Fix.reinstall)
            }
        }

        // Section 14: later UIDs (and a proxy known only by its GID) never reach their self-call rule.
        var others: [(String, PacketBox)] = ctx.proxyUIDs.dropFirst().map { u in
            ("proxy UID \(u)", ctx.selfCallBox.with(.uid, ctx.uids([u])).without(.gid, ctx.gids(ctx.proxyGIDs)))
        }
        if let real = ctx.realIdentity, real.uid != first {
            others.append(("the proxy container (\(real.uid):\(real.gid))", ctx.selfCallBox.with(.uid, ctx.uids([real.uid])).with(.gid, ctx.gids([real.gid]))))
        }
        for (who, box) in others {
            out.findings += ctx.check(PacketSet([box]), pipeline, obligation: description.id) { o in
                if o.verdict.capturePort == z { return nil }
                if ctx.tproxyMode, who.hasPrefix("the proxy container") {
                    return Violation(kind: .missingRedirect, severity: .error,
                                     problem: "is the proxy calling its own pod but skips the inbound listener (\(z))", fix: Fix.owner)
                }
                return Violation(kind: .ownerMatchGap, severity: .info,
                                 problem: "is \(who) calling its own pod and is not redirected to \(z): only the first -u value gets self-call redirection, "
                                    + "because the first UID's `-o lo ! --uid-owner` RETURN takes every other owner's lo traffic (Istio behaviour, model §14)",
                                 fix: "List the UID the proxy runs as first in -u if app-to-own-Service calls must go through inbound policy.")
            }
        }
        return out
    }
}

/// §13.10: an application talking to its own pod over lo is left alone; DNS to a local resolver is the exception.
enum AppLocalTraffic: FamilyObligation {
    static let description = ObligationDescription(
        id: "app-local-traffic", title: "Application traffic over lo is not captured", invariant: 10,
        quantifiesOver: ["application packets out lo (any protocol; port 53 left out with DNS capture; destinations in a loopback include range left out)"],
        kinds: [.unexpectedCapture],
        examples: [
            ExampleRules.example("default pod", ExampleRules.pod, .passes),
            ExampleRules.example("lo RETURNs removed", ExampleRules.pod, .fails(.unexpectedCapture, .error)) {
                $0.removingLine("-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN")
                    .removingLine("-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN")
            },
            ExampleRules.example("TPROXY: mangle lo RETURN removed", ExampleRules.tproxyPod, .fails(.unexpectedCapture, .error)) {
                $0.removingLine("-A ISTIO_INBOUND -i lo -p tcp -m mark ! --mark 0x53a -j RETURN")
            },
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        var b = ctx.application(ctx.localNew).with(.outInterface, ctx.out(ctx.lo))
        if ctx.dnsOn { b = b.without(.destinationPort, ctx.ports([53])) }
        if ctx.includesLoopback, let inc = ctx.includeCIDRs { b = b.without(.destination, ctx.destinations(inc)) }
        let legacy = ctx.tproxyMode && !ctx.atLeast(14)
        var out = CheckOutput()
        out.findings = ctx.check(PacketSet([b]), ctx.loopbackPipeline, obligation: description.id, only: .captured) { o in
            guard let port = o.verdict.capturePort else { return nil }
            return Violation(kind: .unexpectedCapture, severity: legacy ? .warning : .error,
                             problem: "is an application talking to its own pod over lo but is captured (port \(port))"
                                + (legacy ? " (Istio before 1.14 did not exempt lo in TPROXY mode)" : ""),
                             fix: "ISTIO_OUTPUT needs `" + ctx.ruleText(iptables: "-o lo -m owner ! --uid-owner U -j RETURN", nft: "oifname \"lo\" meta skuid != U return")
                                + "` (and the GID twin)"
                                + (ctx.tproxyMode ? ", mangle ISTIO_INBOUND `" + ctx.ruleText(iptables: "-i lo -p tcp -m mark ! --mark 0x53a -j RETURN",
                                                                                             nft: "iifname \"lo\" meta l4proto tcp meta mark != \(FamilyContext.nftMark(IstioNames.selfCallMark)) return") + "`" : "")
                                + ". " + Fix.reinstall)
        }
        out.proven.append("application traffic over lo" + (ctx.dnsOn ? " (port 53 aside)" : "") + " is not captured")
        return out
    }
}
