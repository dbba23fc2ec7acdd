import IstioCapture
import NetfilterModel

/// 27: the pod gets what its annotations ask for. istio-init's arguments were rendered from the annotations at
/// injection and never read again, so an annotation changed on the running pod (or dropped by a custom template)
/// leaves the rules matching the old arguments. The rules are judged against what istio-init was given by the
/// other obligations; this one judges each difference by what it does to the traffic the annotation names:
/// traffic the annotation excludes but the rules capture is an `exclusion-leak`, traffic it asks to capture that
/// the rules let past Envoy a `missing-redirect`.
enum AnnotationsApplied: FamilyObligation {
    static let description = ObligationDescription(
        id: "annotations-applied", title: "istio-init was given what the pod's annotations ask for", invariant: 27,
        quantifiesOver: ["for each traffic.sidecar.istio.io/* or interceptionMode annotation that disagrees with istio-init's arguments: "
            + "the application or inbound TCP on which the two disagree"],
        kinds: [.exclusionLeak, .missingRedirect, .unexpectedCapture, .tproxy],
        examples: [
            ExampleRules.example("includeOutboundPorts added while every destination is captured anyway", harmless, .passes),
            ExampleRules.example("excludeOutboundPorts added after injection", drifted(.outboundPortsExclude, "5432", asked: .ports(.some([5432])), given: []),
                                 .fails(.exclusionLeak, .error)),
            ExampleRules.example("excludeOutboundPorts emptied after injection", drifted(.outboundPortsExclude, "", asked: .ports(.some([])), given: [3306]),
                                 .fails(.missingRedirect, .error)),
            ExampleRules.example("excludeOutboundIPRanges added after injection",
                                 driftedRanges(.outboundIPRangesExclude, "10.96.0.0/12", asked: .some(["10.96.0.0/12"])), .fails(.exclusionLeak, .error)),
            ExampleRules.example("excludeInboundPorts added after injection",
                                 driftedInbound("8080", asked: [15090, 15021, 8080, 15020]), .fails(.exclusionLeak, .error)),
        ])

    static var harmless: CaptureConfiguration {
        var c = ExampleRules.pod
        c.injectionDrift = [InjectionDrift(setting: .outboundPortsInclude, annotationValue: "80", asked: .ports(.some([80])), given: .ports(.some([])))]
        return c
    }

    static func drifted(_ setting: InjectionDrift.Setting, _ text: String, asked: InjectionDrift.Value, given: [UInt16]) -> CaptureConfiguration {
        var c = ExampleRules.pod
        c.outboundPortsExclude = given
        let drift = InjectionDrift(setting: setting, annotationValue: text, asked: asked, given: .ports(.some(given)))
        if !asked.same(as: drift.given) { c.injectionDrift = [drift] }
        return c
    }

    static func driftedRanges(_ setting: InjectionDrift.Setting, _ text: String, asked: Selection<String>) -> CaptureConfiguration {
        var c = ExampleRules.pod
        c.injectionDrift = [InjectionDrift(setting: setting, annotationValue: text, asked: .ranges(asked), given: .ranges(.some([])))]
        return c
    }

    static func driftedInbound(_ text: String, asked: [UInt16]) -> CaptureConfiguration {
        var c = ExampleRules.pod
        c.injectionDrift = [InjectionDrift(setting: .inboundPortsExclude, annotationValue: text, asked: .ports(.some(asked)),
                                           given: .ports(.some(c.inboundPortsExclude)))]
        return c
    }

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        let c = ctx.config
        guard !c.injectionDrift.isEmpty else {
            return .notApplicable("no manifest, or its annotations agree with istio-init's arguments")
        }
        var out = CheckOutput()
        for drift in c.injectionDrift {
            let before = out.findings.count
            out.findings += findings(for: drift, ctx)
            if out.findings.count == before {
                out.notes.append("\(drift.description): no traffic of this family is treated differently")
            }
        }
        if out.findings.isEmpty { out.proven.append("the annotations istio-init did not get change nothing for this family") }
        return out
    }

    /// Each way one difference changes this family's traffic.
    static func findings(for drift: InjectionDrift, _ ctx: FamilyContext) -> [Finding] {
        let c = ctx.config
        let id = description.id
        let said = "\(drift.setting.annotation): \(MessageText.quoted(drift.annotationValue))"
        let why = "istio-init was given \(drift.givenText) (the annotation changed after injection, or the injection template dropped it)"
        let fix = "istio-init reads its arguments once, when the pod starts: re-create the pod (kubectl rollout restart, or delete it) so the "
            + "injector renders the annotation into \(drift.setting.rawValue); or change the annotation back to match \(drift.givenText) if that is what you want."
        func captured(_ problem: String, _ kind: FindingKind) -> (Outcome) -> Violation? {
            { o in o.verdict.capturePort.map { Violation(kind: kind, severity: .error, problem: "\(problem) but is captured (port \($0)): \(why)", fix: fix) } }
        }
        func notCaptured(_ problem: String, to port: UInt16) -> (Outcome) -> Violation? {
            { o in o.verdict.redirects(to: port) ? nil : Violation(kind: .missingRedirect, severity: .error,
                problem: "\(problem) but is not redirected to Envoy (\(port)): \(why)", fix: fix) }
        }
        func cidrs(_ s: Selection<String>) -> [AddressMatch]? {
            s.isAll ? nil : s.items.compactMap { AddressMatch($0) }.filter { $0.address.family == ctx.family }
        }
        // Application TCP the outbound rules could capture (DNS and the loopback destination aside: other
        // obligations own them); out lo only when an included range holds loopback addresses, as in (4).
        let app = ctx.capturedGroups(ctx.application(ctx.localNew)).with(.l4Protocol, ctx.tcp)
            .without(.outInterface, ctx.out((ctx.includesLoopback ? [] : ctx.lo) + c.excludeInterfaces))
            .without(.destination, ctx.destinations([ctx.loopback]))
            .without(.destinationPort, ctx.ports([53]))
        let included: PacketBox = ctx.includeCIDRs.map { app.with(.destination, ctx.destinations($0)) } ?? app
        let inbound = ctx.inboundNew.with(.l4Protocol, ctx.tcp)
            .without(.inInterface, ctx.into(c.excludeInterfaces + c.rerouteVirtualInterfaces))
            .without(.destinationPort, ctx.ports([c.inboundTunnelPort]))
        let outPort = c.proxyPort, inPort = c.inboundCapturePort

        switch (drift.setting, drift.asked, drift.given) {
        case (.outboundPortsExclude, .ports(let a), .ports(let g)):
            let leak = Set(a.items).subtracting(g.items).sorted(), gap = Set(g.items).subtracting(a.items).sorted()
            var found: [Finding] = []
            if !leak.isEmpty {
                found += ctx.check(PacketSet([app.with(.destinationPort, ctx.ports(leak))]), .localOutput, obligation: id, only: .captured,
                                   captured("is excluded by \(said)", .exclusionLeak))
            }
            if !gap.isEmpty {
                let cls = included.with(.destinationPort, ctx.ports(gap)).without(.destination, ctx.destinations(ctx.excludeCIDRs))
                found += ctx.check(PacketSet([cls]), .localOutput, obligation: id,
                                   notCaptured("is no longer excluded by \(said)", to: outPort))
            }
            return found
        case (.outboundPortsInclude, .ports(let a), .ports(let g)):
            let added = Set(a.items).subtracting(g.items).sorted(), dropped = Set(g.items).subtracting(a.items).sorted()
            var found: [Finding] = []
            if !added.isEmpty {
                let cls = app.with(.destinationPort, ctx.ports(added)).without(.destinationPort, ctx.ports(c.outboundPortsExclude))
                found += ctx.check(PacketSet([cls]), .localOutput, obligation: id, notCaptured("is included by \(said)", to: outPort))
            }
            if !dropped.isEmpty {
                let port = app.with(.destinationPort, ctx.ports(dropped))
                var outside = [port.with(.destination, ctx.destinations(ctx.excludeCIDRs))]
                if let inc = ctx.includeCIDRs { outside.append(port.without(.destination, ctx.destinations(inc))) }
                found += ctx.check(PacketSet(outside), .localOutput, obligation: id, only: .captured,
                                   captured("goes outside the captured ranges on a port \(said) no longer includes", .exclusionLeak))
            }
            return found
        case (.outboundIPRangesExclude, .ranges(let a), .ranges(let g)):
            let asked = cidrs(a) ?? [], given = cidrs(g) ?? []
            let base = app.without(.destinationPort, ctx.ports(c.outboundPortsInclude + c.outboundPortsExclude))
            var found: [Finding] = []
            if !asked.isEmpty {
                let cls = base.with(.destination, ctx.destinations(asked)).without(.destination, ctx.destinations(given))
                found += ctx.check(PacketSet([cls]), .localOutput, obligation: id, only: .captured, captured("is excluded by \(said)", .exclusionLeak))
            }
            if !given.isEmpty {
                let inc = ctx.includeCIDRs.map { base.with(.destination, ctx.destinations($0)) } ?? base
                let cls = inc.with(.destination, ctx.destinations(given)).without(.destination, ctx.destinations(asked))
                found += ctx.check(PacketSet([cls]), .localOutput, obligation: id, notCaptured("is no longer excluded by \(said)", to: outPort))
            }
            return found
        case (.outboundIPRangesInclude, .ranges(let a), .ranges(let g)):
            let base = app.without(.destination, ctx.destinations(ctx.excludeCIDRs))
                .without(.destinationPort, ctx.ports(c.outboundPortsInclude + c.outboundPortsExclude))
            func inside(_ r: [AddressMatch]?) -> PacketBox { r.map { base.with(.destination, ctx.destinations($0)) } ?? base }
            func minus(_ b: PacketBox, _ r: [AddressMatch]?) -> PacketBox? { r.map { b.without(.destination, ctx.destinations($0)) } }
            var found: [Finding] = []
            if let cls = minus(inside(cidrs(a)), cidrs(g)) {
                found += ctx.check(PacketSet([cls]), .localOutput, obligation: id, notCaptured("is included by \(said)", to: outPort))
            }
            if let cls = minus(inside(cidrs(g)), cidrs(a)) {
                found += ctx.check(PacketSet([cls]), .localOutput, obligation: id, only: .captured,
                                   captured("goes outside the ranges \(said) includes", .unexpectedCapture))
            }
            return found
        case (.inboundPortsInclude, .ports(let a), .ports(let g)):
            func inside(_ s: Selection<UInt16>) -> PacketBox {
                s.isAll ? inbound.without(.destinationPort, ctx.ports(ctx.inboundExcluded)) : inbound.with(.destinationPort, ctx.ports(s.items))
            }
            func minus(_ b: PacketBox, _ s: Selection<UInt16>) -> PacketBox? {
                s.isAll ? nil : b.without(.destinationPort, ctx.ports(s.items))
            }
            var found: [Finding] = []
            if let cls = minus(inside(a), g) {
                found += ctx.check(PacketSet([cls]), .inbound, obligation: id, notCaptured("is included by \(said)", to: inPort))
            }
            if let cls = minus(inside(g), a) {
                found += ctx.check(PacketSet([cls]), .inbound, obligation: id, only: .captured, captured("is not among the ports \(said) includes", .unexpectedCapture))
            }
            return found
        case (.inboundPortsExclude, .ports(let a), .ports(let g)):
            guard c.inboundPortsInclude.isAll else { return [] }  // -d only applies with -b '*'.
            let leak = Set(a.items).subtracting(g.items).sorted(), gap = Set(g.items).subtracting(a.items).sorted()
            var found: [Finding] = []
            if !leak.isEmpty {
                found += ctx.check(PacketSet([inbound.with(.destinationPort, ctx.ports(leak))]), .inbound, obligation: id, only: .captured,
                                   captured("is excluded by \(said)", .exclusionLeak))
            }
            if !gap.isEmpty {
                found += ctx.check(PacketSet([inbound.with(.destinationPort, ctx.ports(gap))]), .inbound, obligation: id,
                                   notCaptured("is no longer excluded by \(said)", to: inPort))
            }
            return found
        case (.excludeInterfaces, .interfaces(let a), .interfaces(let g)):
            let leak = Set(a).subtracting(g).sorted(), gap = Set(g).subtracting(a).sorted()
            let outbound = ctx.capturedGroups(ctx.application(ctx.localNew)).with(.l4Protocol, ctx.tcp)
                .without(.destination, ctx.destinations([ctx.loopback] + ctx.excludeCIDRs)).without(.destinationPort, ctx.ports([53]))
            var found: [Finding] = []
            if !leak.isEmpty {
                found += ctx.check(PacketSet([outbound.with(.outInterface, ctx.out(leak))]), .localOutput, obligation: id, only: .captured,
                                   captured("leaves through an interface \(said) excludes", .exclusionLeak))
                found += ctx.check(PacketSet([ctx.inboundNew.with(.l4Protocol, ctx.tcp).with(.inInterface, ctx.into(leak))]), .inbound,
                                   obligation: id, only: .captured, captured("arrives on an interface \(said) excludes", .exclusionLeak))
            }
            if !gap.isEmpty {
                let cls = ctx.includeCIDRs.map { outbound.with(.destination, ctx.destinations($0)) } ?? outbound
                found += ctx.check(PacketSet([cls.with(.outInterface, ctx.out(gap))]), .localOutput, obligation: id,
                                   notCaptured("leaves through an interface \(said) no longer excludes", to: outPort))
            }
            return found
        case (.interceptionMode, .mode(let a), .mode(let g)):
            guard ctx.family == .ipv4 || c.ipv6Enabled else { return [] }
            let effect = a == .tproxy
                ? "inbound connections are REDIRECTed, so the application sees every client as the pod itself, not by its own address"
                : "inbound connections are TPROXYed (mangle, a mark and policy routing) where REDIRECT was asked for"
            return [ctx.structural(.tproxy, .warning, table: nil, chain: nil,
                                   message: "\(said) asks for \(a.rawValue) but istio-init installed \(g.rawValue): \(effect); \(why).",
                                   fix: fix, obligation: id)]
        default:
            return []
        }
    }
}

/// 28: istio-iptables' arguments say what they seem to say. pflag gives a flag that takes a value the next word
/// whatever it is (`-x -b '*'` sets -x to "-b" and leaves -b unset), a boolean flag never takes the next word
/// (`--redirect-dns false` turns DNS capture on), the last of a repeated flag wins and stray words are ignored;
/// and a value the command line accepts but the run rejects (a CIDR that is not one) makes istio-iptables exit
/// before installing anything. The configuration is read as istio-iptables reads it; this obligation says where
/// that differs from how the words read, and when nothing can have been installed from them.
enum ArgumentsAsRead: Obligation {
    static let description = ObligationDescription(
        id: "arguments-as-read", title: "istio-iptables reads its arguments as they were meant", invariant: 28,
        quantifiesOver: ["istio-init's arguments (or --istio-args), word by word, as istio-iptables' flag parser reads them"],
        kinds: [.argumentQuirk, .missingRedirect],
        examples: [
            ExampleRules.example("the injector's arguments", ExampleRules.pod, .passes),
            ExampleRules.example("a stray word", quirk(["extra"], changes: false), .fails(.argumentQuirk, .info)),
            ExampleRules.example("--redirect-dns false", quirk(["--redirect-dns", "false"], changes: true), .fails(.argumentQuirk, .warning)),
            ExampleRules.example("-x -b '*': -x is not a CIDR", failing, .fails(.missingRedirect, .error)),
        ])

    static func quirk(_ words: [String], changes: Bool) -> CaptureConfiguration {
        var c = ExampleRules.pod
        c.argumentQuirks = [ArgumentQuirk(words: words, effect: "is read differently", changesSettings: changes)]
        return c
    }

    static var failing: CaptureConfiguration {
        var c = ExampleRules.pod
        c.installFailure = "invalid value \"-b\" for -x/--istio-service-exclude-cidr: \"-b\" is not an address/prefix-length CIDR"
        return c
    }

    static func check(_ run: VerificationRun) -> CheckOutput {
        let c = run.config
        guard c.ambient == nil, c.installer == .istioInit, let ctx = run.checked.first else {
            return .notApplicable("no istio-iptables arguments to read (istio-cni or ambient)")
        }
        var out = CheckOutput()
        if c.argumentQuirks.isEmpty, c.installFailure == nil { out.proven.append("istio-iptables reads each argument as written") }
        for q in c.argumentQuirks {
            out.findings.append(ctx.structural(.argumentQuirk, q.changesSettings ? .warning : .info, table: nil, chain: nil,
                message: "istio-iptables \(ctx.version): \(q.description).",
                fix: q.changesSettings ? "Write each flag with its value (`-x ''`, `--redirect-dns=false`), once; then re-create the pod so istio-init runs with them." : nil,
                obligation: description.id))
        }
        if let failure = c.installFailure {
            out.findings.append(ctx.structural(.missingRedirect, .error, table: nil, chain: nil,
                message: "istio-iptables \(ctx.version) exits on these arguments before installing a rule (\(failure)): istio-init fails, so the pod "
                    + "does not start; any rules found here were not installed from these arguments.",
                fix: "Correct the arguments (or the annotation the injector renders them from) and re-create the pod.",
                obligation: description.id))
        }
        return out
    }
}
