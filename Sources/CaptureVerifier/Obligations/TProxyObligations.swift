import IstioCapture
import NetfilterModel

/// §13.17: TPROXY marks, CONNMARK and policy routing agree, so TPROXYed connections stay on the proxy.
enum TProxyConsistency: FamilyObligation {
    static let description = ObligationDescription(
        id: "tproxy", title: "TPROXY marks, CONNMARK and policy routing agree", invariant: 17,
        quantifiesOver: ["inbound TCP the TPROXY rule takes (mark must be -t)", "inbound TCP of established diverted connections (mark -t)",
                         "locally generated replies of connections carrying connmark -t (mark restored)",
                         "inbound TCP already marked -t (connmark saved)", "the ip rule and local route for mark -t (when read)"],
        kinds: [.tproxy],
        examples: [
            ExampleRules.example("TPROXY pod", ExampleRules.tproxyPod, .passes),
            ExampleRules.example("TPROXY mark differs", ExampleRules.tproxyPod, .fails(.tproxy, .error)) {
                $0.replacing("--tproxy-mark 0x539/0xffffffff", with: "--tproxy-mark 0x540/0xffffffff")
            },
            ExampleRules.example("CONNMARK restore removed", ExampleRules.tproxyPod, .fails(.tproxy, .error)) {
                $0.removingLine("-A OUTPUT -p tcp -m connmark --mark 0x539 -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff")
            },
            ExampleRules.example("divert mark differs", ExampleRules.tproxyPod, .fails(.tproxy, .error)) {
                $0.replacingLine("-A ISTIO_DIVERT -j MARK --set-xmark 0x539/0xffffffff", with: "-A ISTIO_DIVERT -j MARK --set-xmark 0x1/0xffffffff")
            },
        ])

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        guard ctx.tproxyMode else { return .notApplicable("inbound capture is REDIRECT, not TPROXY") }
        var out = CheckOutput()
        let c = ctx.config
        let m = c.tproxyMark
        let hex = "0x" + String(m, radix: 16)
        func marked(_ o: Outcome, _ field: PacketField) -> Bool {
            o.packets.subtracting(ctx.space.universe.with(field, ctx.space.atoms(field, marks: { $0 == m }))).isEmpty
        }
        let inbound = ctx.inboundNew.with(.l4Protocol, ctx.tcp).without(.inInterface, ctx.into(c.excludeInterfaces))
        // (a) what TPROXY takes carries the mark the ip rule routes.
        let tproxied = ctx.evaluate(inbound, .inbound)
        out.findings += ctx.check(tproxied, .inbound, obligation: description.id) { o in
            guard case .tproxy = o.verdict, !marked(o, .mark) else { return nil }
            return Violation(kind: .tproxy, severity: .error,
                             problem: "is TPROXYed with a mark other than \(hex) (-t): the `ip rule fwmark \(hex)` does not route it to the proxy",
                             fix: Fix.tproxy)
        }
        // (b) packets of established connections are diverted with the mark.
        var established = inbound.setting(.ctState, ctx.space.atoms(states: [.established, .related]))
        established = established.with(.destinationPort, tproxyCapturedPorts(ctx))
        out.findings += ctx.check(PacketSet([established]), .inbound, obligation: description.id) { o in
            if marked(o, .mark), o.verdict.continues || o.verdict.capturePort != nil { return nil }
            return Violation(kind: .tproxy, severity: .error,
                             problem: "belongs to a TPROXYed connection but leaves mangle PREROUTING without mark \(hex): it is not routed to the proxy",
                             fix: "ISTIO_DIVERT must set mark \(hex) and ACCEPT. " + Fix.tproxy)
        }
        // (c) replies from the proxy side get the mark back from the connection.
        let replies = ctx.unmarked.with(.inInterface, ctx.space.noInterface(.inInterface))
            .without(.outInterface, ctx.space.noInterface(.outInterface)).without(.outInterface, ctx.out(ctx.lo + c.excludeInterfaces))
            .with(.l4Protocol, ctx.tcp).with(.ctState, ctx.space.atoms(states: [.established]))
            .setting(.connmark, ctx.space.atoms(.connmark, marks: { $0 == m }))
        out.findings += ctx.check(PacketSet([replies]), ctx.single(.mangle, .output), obligation: description.id) { o in
            if marked(o, .mark) { return nil }
            return Violation(kind: .tproxy, severity: .error,
                             problem: "is a reply on a TPROXYed connection (connmark \(hex)) but leaves mangle OUTPUT without mark \(hex): it is routed out instead of back to the proxy",
                             fix: "mangle OUTPUT needs `"
                                + ctx.ruleText(iptables: "-p tcp -m connmark --mark \(hex) -j CONNMARK --restore-mark", nft: "meta l4proto tcp ct mark \(FamilyContext.nftMark(m)) meta mark set ct mark")
                                + "`. " + Fix.tproxy)
        }
        // (d) marked inbound packets save the mark on the connection.
        let premarked = ctx.inboundNew.with(.l4Protocol, ctx.tcp).without(.inInterface, ctx.into(c.excludeInterfaces))
            .setting(.mark, ctx.space.atoms(.mark, marks: { $0 == m }))
        out.findings += ctx.check(PacketSet([premarked]), ctx.single(.mangle, .prerouting), obligation: description.id) { o in
            if marked(o, .connmark) { return nil }
            return Violation(kind: .tproxy, severity: .error,
                             problem: "already carries mark \(hex) but its connection does not get connmark \(hex): replies will not find the proxy",
                             fix: "mangle PREROUTING needs `"
                                + ctx.ruleText(iptables: "-p tcp -m mark --mark \(hex) -j CONNMARK --save-mark", nft: "meta l4proto tcp meta mark \(FamilyContext.nftMark(m)) ct mark set meta mark")
                                + "` after an ISTIO_INBOUND that returns marked packets. " + Fix.tproxy)
        }
        out.proven.append("TPROXY and ISTIO_DIVERT mark \(hex); replies restore it from the connmark")

        // (e) policy routing, when it was read.
        if let routing = ctx.policyRouting {
            let table = String(c.tproxyRouteTable)
            // TPROXY's --tproxy-mark sets the whole mark (mask 0xffffffff).
            let markRule = routing.markRule(family: ctx.family, mark: m, mask: 0xFFFF_FFFF, table: table)
            let hasRule = markRule != nil
            // The proxy's replies get the mark back in mangle OUTPUT and are routed with iif lo, like ambient's.
            let preemptions = markRule.map { routing.preemptions(of: $0, mark: m, inputInterface: "lo") } ?? []
            if let markRule {
                out.findings += ctx.preemptionFindings(preemptions, of: markRule, kind: .tproxy, marked: hex, on: "TPROXYed connections",
                                                       to: "the proxy", table: table, fix: Fix.tproxy, obligation: description.id)
            }
            let hasRoute = routing.hasLocalDefaultRoute(family: ctx.family, table: table)
            let witnessOutcome = tproxied.first { if case .tproxy = $0.verdict { true } else { false } }
            for (present, what) in [(hasRule, "`ip rule fwmark \(hex) lookup \(table)`"), (hasRoute, "a `local default dev lo` route in table \(table)")] where !present {
                let problem = "is TPROXYed and marked \(hex), but the namespace has no \(what): inbound connections are black-holed"
                if let o = witnessOutcome {
                    out.findings.append(ctx.finding(Violation(kind: .tproxy, severity: .error, problem: problem, fix: Fix.tproxy),
                                                    outcome: o, packet: ctx.witnessPacket(o), pipeline: .inbound, obligation: description.id))
                } else {
                    out.findings.append(ctx.structural(.tproxy, .error, table: nil, chain: nil,
                                                       message: "The namespace has no \(what) for TPROXY mark \(hex).", fix: Fix.tproxy, obligation: description.id))
                }
            }
            if hasRule, hasRoute, routing.routeTablesRead == nil {
                out.proven.append("ip rule fwmark \(hex) lookup \(table) and its local route exist")
                out.notes.append(FamilyContext.routingRecordedWithoutActions)
            } else if hasRule, hasRoute, preemptions.isEmpty {
                out.proven.append("ip rule fwmark \(hex) lookup \(table) and its local route exist, and no rule before it takes the marked replies")
            }
        } else {
            out.notes.append("policy routing was not read (saved dump): the ip rule and route for mark \(hex) were not checked")
        }
        return out
    }

    static func tproxyCapturedPorts(_ ctx: FamilyContext) -> AtomSet {
        switch ctx.config.inboundPortsInclude {
        case .all: ctx.ports(ctx.inboundExcluded).complement
        case .some(let list): ctx.ports(list)
        }
    }
}

/// §13.19: with `--drop-invalid`, conntrack-INVALID packets are dropped in mangle PREROUTING.
enum DropInvalid: FamilyObligation {
    static let description = ObligationDescription(
        id: "drop-invalid", title: "Conntrack-INVALID packets are dropped when configured", invariant: 19,
        quantifiesOver: ["every received packet in conntrack state INVALID"],
        kinds: [.dropInvalid, .ruleDrift],
        examples: [
            ExampleRules.example("drop-invalid", dropping, .passes),
            ExampleRules.example("ISTIO_DROP emptied", dropping, .fails(.dropInvalid, .error)) {
                $0.removingLine("-A ISTIO_DROP -j DROP")
            },
        ])

    static var dropping: CaptureConfiguration {
        var c = ExampleRules.pod
        c.dropInvalid = true
        return c
    }

    static func check(_ ctx: FamilyContext) -> CheckOutput {
        var out = CheckOutput()
        var invalid = ctx.unmarked.with(.outInterface, ctx.space.noInterface(.outInterface))
            .without(.inInterface, ctx.space.noInterface(.inInterface)).with(.ctState, ctx.space.atoms(states: [.invalid]))
        // Native nftables mode drops only TCP: its rule is `meta l4proto tcp ct state invalid jump istio-drop`.
        if ctx.layout.native { invalid = invalid.with(.l4Protocol, ctx.tcp) }
        let pipeline = Pipeline(ctx.single(.raw, .prerouting).stages + ctx.single(.mangle, .prerouting).stages)
        if ctx.config.dropInvalid {
            out.findings = ctx.check(PacketSet([invalid]), pipeline, obligation: description.id) { o in
                if o.verdict == .drop { return nil }
                return Violation(kind: .dropInvalid, severity: .error,
                                 problem: "is conntrack INVALID but is not dropped: out-of-window packets of redirected connections draw resets from the host stack",
                                 fix: "INVALID_DROP (--drop-invalid) adds `"
                                    + ctx.ruleText(iptables: "-m conntrack --ctstate INVALID -j ISTIO_DROP", nft: "meta l4proto tcp ct state invalid jump istio-drop")
                                    + "` to mangle PREROUTING. " + Fix.reinstall)
            }
            out.proven.append(ctx.layout.native ? "every conntrack-INVALID TCP packet is dropped in inet istio-proxy-mangle prerouting"
                : "every conntrack-INVALID packet is dropped in mangle PREROUTING")
        } else {
            out.findings = ctx.check(PacketSet([invalid]), pipeline, obligation: description.id) { o in
                guard o.verdict == .drop, ctx.entered(o, .istioDrop, in: .mangle) else { return nil }
                return Violation(kind: .ruleDrift, severity: .info,
                                 problem: "is dropped by Istio's ISTIO_DROP although --drop-invalid is not configured", fix: nil)
            }
            if out.findings.isEmpty { return .notApplicable("--drop-invalid is not configured") }
        }
        return out
    }
}
