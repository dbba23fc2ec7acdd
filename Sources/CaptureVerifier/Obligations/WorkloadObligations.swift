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
