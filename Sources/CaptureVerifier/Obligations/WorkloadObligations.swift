import IstioCapture
import NetfilterModel

/// 25: no container but the proxy runs as a proxy identity. The owner rules exempt every socket of a proxy UID
/// or GID, so an application container running as one (an image built to run as 1337; OpenShift giving the app
/// and the proxy the same UID from the namespace's range) sends all its traffic around Envoy, however exact the
/// rules are.
enum WorkloadIdentities: FamilyObligation {
    static let description = ObligationDescription(
        id: "workload-identities", title: "No application container runs as the proxy's UID or GID", invariant: 25,
        quantifiesOver: ["each container of the pod manifest but Istio's own, with its effective securityContext identity: "
            + "its TCP to a captured destination, not out lo"],
        kinds: [.sharedIdentity],
        examples: [
            ExampleRules.example("app with its own identity", appAs(1000, 1000, isInit: false), .passes),
            ExampleRules.example("app running as 1337", appAs(1337, 1337, isInit: false), .fails(.sharedIdentity, .error)),
            ExampleRules.example("app in the proxy's group", appAs(1000, 1337, isInit: false), .fails(.sharedIdentity, .error)),
            ExampleRules.example("init container as 1337 (Istio's workaround)", appAs(1337, 1337, isInit: true), .fails(.sharedIdentity, .info)),
        ])

    static func appAs(_ uid: UInt32, _ gid: UInt32, isInit: Bool) -> CaptureConfiguration {
        var c = ExampleRules.pod
        c.workloads = [WorkloadIdentity(container: isInit ? "migrate" : "reviews", isInit: isInit, uid: uid, gid: gid)]
        return c
    }

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        let workloads = ctx.config.workloads
        guard !workloads.isEmpty else { return .notApplicable("no pod manifest with the application's containers") }
        var out = CheckOutput()
        let port = ctx.config.proxyPort
        for w in workloads {
            guard w.uid != nil || w.gid != nil else {
                out.notes.append("\(w.container) runs as its image's user (no securityContext says): if that is a proxy UID (\(ctx.list32(ctx.proxyUIDs))), its traffic bypasses Envoy")
                continue
            }
            let sharesUID = w.uid.map(ctx.proxyUIDs.contains) ?? false
            let sharesGID = w.gid.map(ctx.proxyGIDs.contains) ?? false
            guard sharesUID || sharesGID else { continue }
            var cls = ctx.localNew.with(.l4Protocol, ctx.tcp).without(.outInterface, ctx.out(ctx.lo))
                .without(.destination, ctx.destinations([ctx.loopback] + ctx.excludeCIDRs))
                .without(.destinationPort, ctx.ports(ctx.config.outboundPortsExclude))
            if let u = w.uid { cls = cls.with(.uid, ctx.uids([u])) }
            if let g = w.gid { cls = cls.with(.gid, ctx.gids([g])) }
            let who = "\(w.uid.map(String.init) ?? "?"):\(w.gid.map(String.init) ?? "?")"
            let what = sharesUID ? "UID \(w.uid!)" : "GID \(w.gid!)"
            out.findings += ctx.check(PacketSet([cls]), .localOutput, obligation: description.id) { o in
                if o.verdict.redirects(to: port) { return nil }
                if w.isInit {
                    return Violation(kind: .sharedIdentity, severity: .info,
                                     problem: "is init container \(w.container)'s (runs as \(who)) and is exempt as the proxy's \(what) is: "
                                        + "Istio's documented way to let an init container use the network before the proxy starts",
                                     fix: nil)
                }
                return Violation(kind: .sharedIdentity, severity: .error,
                                 problem: "is container \(w.container)'s (runs as \(who)) and is not redirected to Envoy's outbound listener (\(port)): "
                                    + "it shares the proxy's \(what), so the owner rules exempt all its traffic like Envoy's own",
                                 fix: "Run \(w.container) as a UID and GID other than the proxy's (its securityContext runAsUser/runAsGroup); "
                                    + "on OpenShift, where the namespace's UID range is shared, give the proxy its own identity (the istio-cni plugin reads it from istio-proxy's securityContext).")
            }
        }
        if out.findings.allSatisfy({ $0.severity < .error }) {
            let known = workloads.filter { ($0.uid != nil || $0.gid != nil) && !$0.isInit }.map(\.container)
            if !known.isEmpty { out.proven.append("no application container (\(known.joined(separator: ", "))) runs as a proxy UID or GID") }
        }
        return out
    }
}

extension FamilyContext {
    func list32(_ ids: [UInt32]) -> String { ids.map(String.init).joined(separator: ",") }
}

/// 26: what Istio's injector guarantees for every pod holds for this configuration too, however it was written
/// (a custom template, hand-written `--istio-args`): Envoy's own status, health and metrics ports are never
/// captured inbound (kubelet's probes and Prometheus' scrapes would go through the inbound listener), traffic
/// outside an `-i` include list is not captured, and DNS capture has nameservers to capture. Each is judged on the
/// rules, so a configuration that breaks one is a finding even when the rules match it exactly.
enum ConfigurationInvariants: FamilyObligation {
    static let description = ObligationDescription(
        id: "configuration-invariants", title: "The configuration keeps the injector's own guarantees", invariant: 26,
        quantifiesOver: ["inbound TCP to Envoy's ports 15020, 15021, 15090 (with inbound capture)",
                         "application TCP to a destination outside an -i include list (and not to a -q port)",
                         "DNS capture configured with no nameserver and no capture-all (1.26+)"],
        kinds: [.unexpectedCapture, .dnsCapture],
        examples: [
            ExampleRules.example("the injector's defaults", ExampleRules.pod, .passes),
            ExampleRules.example("-d 8080 alone: probes to 15021 captured", onlyExcluding8080, .fails(.unexpectedCapture, .warning)),
            ExampleRules.example("-i 10.0.0.0/8 with the catch-all jump still there", including10, .fails(.unexpectedCapture, .error)) {
                $0.replacingLine("-A ISTIO_OUTPUT -d 10.0.0.0/8 -j ISTIO_REDIRECT", with: "-A ISTIO_OUTPUT -j ISTIO_REDIRECT")
            },
        ])

    static var onlyExcluding8080: CaptureConfiguration {
        var c = ExampleRules.pod
        c.inboundPortsExclude = [8080]
        return c
    }

    static var including10: CaptureConfiguration {
        var c = ExampleRules.pod
        c.outboundIPRangesInclude = .some(["10.0.0.0/8"])
        return c
    }

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        var out = CheckOutput()
        let c = ctx.config
        // (a) Envoy's own ports.
        let envoyPorts = [IstioPort.status, .health, .metrics].map(\.rawValue)
        if !c.inboundPortsInclude.isEmpty {
            let cls = ctx.inboundNew.with(.l4Protocol, ctx.tcp).with(.destinationPort, ctx.ports(envoyPorts))
                .without(.inInterface, ctx.into(c.excludeInterfaces + c.rerouteVirtualInterfaces))
            out.findings += ctx.check(PacketSet([cls]), .inbound, obligation: description.id, only: .captured) { o in
                guard let port = o.verdict.capturePort else { return nil }
                // A warning: Envoy still answers through its inbound listener, but probes and scrapes then depend
                // on the proxy's inbound path and its policy (an mTLS STRICT policy rejects the kubelet's plaintext).
                return Violation(kind: .unexpectedCapture, severity: .warning,
                                 problem: "is a kubelet probe or a metrics scrape to one of Envoy's own ports but is captured (port \(port)): "
                                    + "the configuration does not exclude 15020, 15021 and 15090 inbound, which the injector always does",
                                 fix: "Exclude them (-d 15090,15021,15020, as the injector passes; traffic.sidecar.istio.io/excludeInboundPorts "
                                    + "adds to that list, it does not replace it), then re-create the pod.")
            }
            out.proven.append("inbound TCP to \(ctx.list(envoyPorts)) is not captured")
        }
        // (b) Outside the include list.
        if let include = ctx.includeCIDRs {
            let cls = ctx.capturedGroups(ctx.application(ctx.localNew)).with(.l4Protocol, ctx.tcp)
                .without(.outInterface, ctx.out(ctx.lo + c.excludeInterfaces))
                .without(.destination, ctx.destinations(include + [ctx.loopback]))
                .without(.destinationPort, ctx.ports(c.outboundPortsInclude + [53]))
            out.findings += ctx.check(PacketSet([cls]), .localOutput, obligation: description.id, only: .captured) { o in
                guard let port = o.verdict.capturePort else { return nil }
                return Violation(kind: .unexpectedCapture, severity: .error,
                                 problem: "goes to a destination outside the include list (-i \(include.isEmpty ? "''" : ctx.list(include))) but is captured (port \(port)): "
                                    + "traffic meant to bypass Envoy goes through it",
                                 fix: "With an include list ISTIO_OUTPUT jumps to ISTIO_REDIRECT only for the listed ranges; remove the catch-all jump. " + Fix.reinstall)
            }
            out.proven.append("TCP outside \(include.isEmpty ? "an empty include list" : ctx.list(include)) is not captured")
        }
        // (c) DNS capture with nothing to capture.
        if c.redirectDNS, !c.captureAllDNS, !c.dnsServersUnknown, c.dnsServersIPv4.isEmpty, c.dnsServersIPv6.isEmpty, ctx.atLeast(26), ctx.family == .ipv4 {
            out.findings.append(ctx.structural(.dnsCapture, .warning, table: nil, chain: nil,
                message: "DNS capture is configured (--redirect-dns) but the pod has no nameserver and capture-all is off: istio-iptables "
                    + "\(ctx.version) then installs no DNS rule, and the agent's DNS proxy gets nothing.",
                fix: "Check the pod's resolv.conf (dnsPolicy, dnsConfig), or capture all port-53 traffic (--capture-all-dns, as istio-cni does).",
                obligation: description.id))
        }
        if out.proven.isEmpty, out.findings.isEmpty { return .notApplicable("inbound capture is off, outbound includes everything and DNS capture has what it needs") }
        return out
    }
}
