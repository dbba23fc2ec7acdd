@testable import CaptureVerifier
import CorpusSupport
import IstioCapture
import NetfilterModel
import TestSupport
import Testing

/// What docs/capture-model.md §13 says happens to a packet, derived from the configuration alone.
enum Predicted: Equatable, CustomStringConvertible {
    /// REDIRECT to this port (nat).
    case redirect(UInt16)
    /// Lands on this local listener (REDIRECT in nat OUTPUT or TPROXY after the loopback hop).
    case listener(UInt16)
    /// TPROXY to this port (mangle).
    case tproxy(UInt16)
    /// Left alone: ACCEPT / policy ACCEPT.
    case untouched

    var description: String {
        switch self {
        case .redirect(let p): "REDIRECT \(p)"
        case .listener(let p): "local listener \(p)"
        case .tproxy(let p): "TPROXY \(p)"
        case .untouched: "untouched"
        }
    }

    func holds(for v: Verdict) -> Bool {
        switch self {
        case .redirect(let p): v.redirects(to: p)
        case .listener(let p): v.capturePort == p
        case .tproxy(let p): if case .tproxy(p, _, _) = v { true } else { false }
        case .untouched: v.continues
        }
    }
}

/// One packet of §13 and the verdict the configuration predicts for it.
struct Probe: CustomStringConvertible {
    var name: String
    var query: PacketQuery
    var expected: Predicted
    var description: String { "\(name) → \(expected)" }
}

/// The §13 probes for one corpus case and family, predicted from the configuration (not from the rules).
enum Probes {
    static func make(_ config: CaptureConfiguration, family: Family) -> [Probe] {
        let v4 = family == .ipv4
        func ip(_ s: String) -> IPAddress { IPAddress(s)! }
        func cidrs(_ list: [String]) -> [AddressMatch] { list.compactMap { AddressMatch($0) }.filter { $0.address.family == family } }
        /// The first host address inside a CIDR.
        func host(_ c: AddressMatch) -> IPAddress {
            let bits = family.addressBits
            let size: UInt128 = (c.mask.prefixLength ?? bits) >= bits ? 0 : 1
            return IPAddress(family: family, value: (c.address.value & c.mask.value) + size)
        }
        let version = config.istioVersion
        let tproxy = config.interceptionMode == .tproxy
        let pod = ip(v4 ? "10.0.0.1" : "fd00::1")
        let peer = ip(v4 ? "10.9.9.9" : "2001:db8::9")
        let loopback = ip(v4 ? "127.0.0.1" : "::1")
        let passthrough = ip(v4 ? "127.0.0.6" : "::6")
        let proxyUID = config.proxyUIDs.first ?? 1337
        let proxyGID = config.proxyGIDs.first ?? proxyUID
        let app: UInt32 = 1000
        let excludeCIDRs = cidrs(config.outboundIPRangesExclude)
        let includeCIDRs = cidrs(config.outboundIPRangesInclude.items)
        let includesLoopback = config.outboundIPRangesInclude.items.compactMap { AddressMatch($0) }.contains { c in
            c.address.family == .ipv4 ? (c.address.value >> 24) == 127 : c.address.value == 1
        }
        let interfaceSpecial = config.excludeInterfaces.contains("eth0") || config.rerouteVirtualInterfaces.contains("eth0")
        let groupCaptured = (config.ownerGroupsInclude.isAll || config.ownerGroupsInclude.items.contains("\(app)"))
            && !config.ownerGroupsExclude.contains("\(app)")

        func out(_ name: String, _ proto: UInt16, _ dst: IPAddress, _ port: UInt16, uid: UInt32, gid: UInt32,
                 oif: String = "eth0", source: IPAddress? = nil, _ expected: Predicted) -> Probe {
            Probe(name: name, query: PacketQuery(direction: .outbound, family: family, protocolNumber: proto, destination: dst,
                                                 destinationPort: port, source: source ?? pod, sourcePort: Packet.ephemeralPort,
                                                 uid: uid, gid: gid, outInterface: oif), expected: expected)
        }
        func inbound(_ name: String, _ port: UInt16, _ expected: Predicted) -> Probe {
            Probe(name: name, query: PacketQuery(direction: .inbound, family: family, protocolNumber: ProtocolMatch.tcp,
                                                 destination: pod, destinationPort: port, source: peer,
                                                 sourcePort: Packet.ephemeralPort, inInterface: "eth0"), expected: expected)
        }
        var probes: [Probe] = []

        // App outbound: TCP to a destination the include list covers, not L, and no exclusion names.
        let hostLoopback = v4 && version >= IstioVersion(1, 22, 0) ? AddressMatch(config.hostIPv4LoopbackCIDR) : nil
        let l = hostLoopback ?? AddressMatch(v4 ? "127.0.0.1/32" : "::1/128")!
        let loopbackNet = AddressMatch(v4 ? "127.0.0.0/8" : "::1/128")!
        if !interfaceSpecial {
            var dst = ip(v4 ? "1.2.3.4" : "2001:db8::1234")
            if !config.outboundIPRangesInclude.isAll, let c = includeCIDRs.first {
                // The first address of the include range that is not L.
                dst = host(c)
                while l.contains(dst), c.contains(IPAddress(family: family, value: dst.value + 1)) {
                    dst = IPAddress(family: family, value: dst.value + 1)
                }
            }
            // The kernel routes a loopback destination over lo.
            let oif = loopbackNet.contains(dst) ? "lo" : "eth0"
            let excluded = excludeCIDRs.contains { $0.contains(dst) } || l.contains(dst)
            let included = config.outboundIPRangesInclude.isAll || includeCIDRs.contains { $0.contains(dst) }
                || config.outboundPortsInclude.contains(9080)
            let captured = included && !excluded && groupCaptured && !config.outboundPortsExclude.contains(9080)
                && (oif != "lo" || includesLoopback)
            probes.append(out("app outbound", ProtocolMatch.tcp, dst, 9080, uid: app, gid: app, oif: oif,
                              captured ? .redirect(config.proxyPort) : .untouched))
            probes.append(out("proxy outbound (uid)", ProtocolMatch.tcp, dst, 9080, uid: proxyUID, gid: proxyUID, .untouched))
            probes.append(out("proxy outbound (gid only)", ProtocolMatch.tcp, dst, 9080, uid: 0, gid: proxyGID,
                              proxyUID == 0 || config.proxyGIDs.contains(proxyGID) ? .untouched : .redirect(config.proxyPort)))
            if let p = config.outboundPortsExclude.first {
                probes.append(out("excluded port \(p)", ProtocolMatch.tcp, dst, p, uid: app, gid: app, .untouched))
            }
            if let c = excludeCIDRs.first {
                probes.append(out("excluded CIDR \(c.cidrText)", ProtocolMatch.tcp, host(c), 9080, uid: app, gid: app, .untouched))
            }
        }
        if !includesLoopback {
            probes.append(out("loopback", ProtocolMatch.tcp, loopback, 8080, uid: app, gid: app, oif: "lo", .untouched))
        }
        // 1.10's TPROXY rules lacked the 127.0.0.6 RETURN in mangle ISTIO_INBOUND (§9): the forward loops into 15006.
        let forwardLoops = tproxy && version < IstioVersion(1, 14, 0) && v4
        probes.append(out("Envoy's forward from \(passthrough)", ProtocolMatch.tcp, pod, 8080, uid: proxyUID, gid: proxyGID,
                          oif: "lo", source: passthrough, forwardLoops ? .tproxy(config.inboundCapturePort) : .untouched))
        if !config.outboundPortsExclude.contains(9080) {
            probes.append(out("self-call", ProtocolMatch.tcp, pod, 9080, uid: proxyUID, gid: proxyGID, oif: "lo",
                              .listener(config.inboundCapturePort)))
        }

        // Inbound: the app port and Istio's own ports.
        if !interfaceSpecial {
            func inboundCaptured(_ port: UInt16) -> Bool {
                switch config.inboundPortsInclude {
                case .all: !config.inboundPortsExclude.contains(port) && !(version < IstioVersion(1, 14, 0) && port == 22)
                case .some(let ports): ports.contains(port)
                }
            }
            let capture: Predicted = tproxy ? .tproxy(config.inboundCapturePort) : .redirect(config.inboundCapturePort)
            probes.append(inbound("inbound app port 8080", 8080, inboundCaptured(8080) ? capture : .untouched))
            for port: UInt16 in [15020, 15021, 15090] {
                probes.append(inbound("inbound \(port)", port, inboundCaptured(port) ? capture : .untouched))
            }
            // nat ISTIO_INBOUND returns 15008 first since 1.14 (1.10 had no tunnel port); TPROXY never exempts it (§14).
            let tunnelExempt = !tproxy && version >= IstioVersion(1, 14, 0)
            probes.append(inbound("inbound 15008", 15008, !tunnelExempt && inboundCaptured(15008) ? capture : .untouched))
        }

        // DNS to a resolv.conf server (any destination with capture-all), when this family's DNS is captured.
        let servers = (v4 ? config.dnsServersIPv4 : config.dnsServersIPv6).compactMap { IPAddress($0) }.filter { $0.family == family }
        let dnsOn = config.redirectDNS && (version < IstioVersion(1, 26, 0) || config.captureAllDNS
            || !config.dnsServersIPv4.isEmpty || !config.dnsServersIPv6.isEmpty)
        if dnsOn, config.captureAllDNS || !servers.isEmpty, !interfaceSpecial, groupCaptured {
            let server = servers.first ?? ip(v4 ? "10.96.0.10" : "fd00:10:96::a")
            probes.append(out("DNS UDP", ProtocolMatch.udp, server, 53, uid: app, gid: app, .redirect(15053)))
            probes.append(out("DNS TCP", ProtocolMatch.tcp, server, 53, uid: app, gid: app, .redirect(15053)))
            probes.append(out("proxy DNS UDP", ProtocolMatch.udp, server, 53, uid: proxyUID, gid: proxyGID, .untouched))
        }
        return probes
    }
}

@Suite("Trace queries")
struct TraceQueryTests {
    @Test("§13 packets trace to the verdict the model predicts", arguments: Corpus.cases)
    func corpusPackets(_ c: CorpusCase) throws {
        let rules = try c.ruleset()
        let config = try c.configuration()
        var traced = 0
        for family in config.families {
            let tables = rules.tables.filter { $0.family == family }
            guard !tables.isEmpty else { continue }
            let tracer = PacketTracer(family: family, tables: tables)
            for probe in Probes.make(config, family: family) {
                let result = tracer.trace(probe.query)
                try #require(result.outcomes.count == 1, "\(c.testDescription) \(family) \(probe.name): a fully given packet has one outcome, got \(result.outcomes.map(\.conditionText))")
                let o = result.outcomes[0]
                #expect(probe.expected.holds(for: o.verdict),
                        "\(c.testDescription) \(family) \(probe.name): expected \(probe.expected), got \(o.verdict)\n\(o.path.map(\.description).joined(separator: "\n"))")
                traced += 1
            }
        }
        #expect(traced > 0 || !rules.tables.contains { $0.chains.contains { $0.name.rawValue.hasPrefix("ISTIO_") } })
    }
}

@Suite("Trace queries replay the verifier's witnesses")
struct TraceWitnessTests {
    static let mutations = Mutations.breaking + Mutations.harmless

    /// Every witness, traced as a fully given packet through the trace entry point, takes exactly the finding's
    /// path to its verdict (one outcome per way its unknown matches can be decided; the witness names one).
    @Test("each mutation's witnesses trace along the reported path", arguments: mutations)
    func witnessesTrace(_ m: Mutation) throws {
        let (report, rules) = try MutationTests().run(m)
        var replayed = 0
        for f in report.obligations.flatMap(\.findings) {
            guard let w = f.witness else { continue }
            let tracer = PacketTracer(family: f.family, tables: rules.tables)
            let result = tracer.trace(PacketQuery(packet: w.packet), pipeline: w.pipeline)
            let o = try #require(result.outcomes.first { $0.assumptions == w.assumptions },
                                 "\(m.name): witness \(w.text) of \(f.kind) has no outcome with its assumptions; got \(result.outcomes.map(\.assumptions))")
            #expect(o.path == f.path, "\(m.name) \(f.kind) \(w.text):\n\(o.path.map(\.description).joined(separator: "\n"))\nreported:\n\(f.path.map(\.description).joined(separator: "\n"))")
            #expect(o.verdict == w.verdict, "\(m.name) \(f.kind) \(w.text): \(o.verdict), reported \(w.verdict)")
            // Without unknown matches a fully given packet has exactly one outcome.
            if w.assumptions.isEmpty { #expect(result.outcomes.count == 1, "\(m.name) \(w.text): \(result.outcomes.map(\.conditionText))") }
            // The concrete entry point agrees, and its explanation marks the deciding rule as matched.
            let concrete = tracer.trace(w.packet, pipeline: w.pipeline, assumptions: w.assumptions)
            #expect(concrete.path == f.path && concrete.verdict == w.verdict)
            if let n = f.path.last(where: { $0.ruleNumber != nil }), let rn = n.ruleNumber {
                #expect(concrete.steps.contains { $0.kind == .matched && $0.table == n.table && $0.chain == n.chain && $0.ruleNumber == rn })
            }
            replayed += 1
        }
        if !m.errors.isEmpty { #expect(replayed > 0, "\(m.name): no witness to replay") }
    }
}

@Suite("Trace query explanations")
struct TraceExplanationTests {
    func basic() throws -> [Table] {
        let c = try #require(Corpus.named("master/cni-sidecar-iptables/basic"))
        return try c.ruleset().tables.filter { $0.family == .ipv4 }
    }

    @Test("an outbound TCP packet without uid/gid: the proxy's identities return, everyone else goes to 15001")
    func unknownOwner() throws {
        let q = PacketQuery(direction: .outbound, family: .ipv4, protocolNumber: ProtocolMatch.tcp,
                            destination: IPAddress("10.0.0.1")!, destinationPort: 9080)
        let r = PacketTracer(family: .ipv4, tables: try basic()).trace(q)
        let verdicts = Set(r.outcomes.map(\.disposition.action))
        #expect(verdicts == ["REDIRECT", "ACCEPT"])
        let redirect = try #require(r.outcomes.first { $0.disposition.action == "REDIRECT" })
        #expect(redirect.disposition.port == 15001)
        #expect(redirect.disposition.summary == "Envoy outbound listener 15001")
        #expect(redirect.condition == ["uid is not 1337", "gid is not 1337"])
        let byUID = try #require(r.outcomes.first { $0.condition == ["uid is 1337"] })
        #expect(byUID.verdict == .policy(.accept))
        #expect(r.outcomes.contains { $0.condition == ["uid is not 1337", "gid is 1337"] && $0.verdict == .policy(.accept) })
        // Every member of each outcome takes its path: the example packet satisfies the condition.
        #expect(byUID.packet.uid == 1337)
        #expect(redirect.packet.uid != 1337 && redirect.packet.gid != 1337)
    }

    @Test("each rule evaluated says why it did not match, with the packet's values")
    func reasons() throws {
        let q = PacketQuery(direction: .outbound, family: .ipv4, protocolNumber: ProtocolMatch.tcp,
                            destination: IPAddress("10.0.0.1")!, destinationPort: 9080, uid: 1000, gid: 1000)
        let r = PacketTracer(family: .ipv4, tables: try basic()).trace(q)
        #expect(r.outcomes.count == 1)
        let o = try #require(r.outcomes.first)
        let skipped = o.steps.filter { $0.kind == .notMatched }
        // Each failing condition carries the packet's value and what the rule wanted (the reporters word it).
        func failing(_ rule: String) -> [ConditionCheck] {
            skipped.first { $0.ruleText == rule }?.checks.filter { $0.holds == false } ?? []
        }
        let port = failing("-A ISTIO_OUTPUT -p tcp -m tcp --dport 15020 -j RETURN")
        #expect(port.map(\.condition) == ["--dport 15020"])
        let p = try #require(port.first)
        #expect(p.kind == .port && p.field == .destinationPort && p.value == "9080" && p.wanted == "15020" && !p.inside && p.knowledge == .exact)
        let owner = failing("-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN")
        #expect(owner.map(\.condition) == ["--uid-owner 1337"])
        let u = try #require(owner.first)
        #expect(u.kind == .identity && u.field == .uid && u.value == "1000" && u.wanted == "1337" && !u.inside)
        // Rules of ISTIO_OUTPUT before the catch-all are all evaluated, in order.
        let numbers = o.steps.filter { $0.chain == "ISTIO_OUTPUT" }.compactMap(\.ruleNumber)
        #expect(numbers == Array(1...numbers.count))
        #expect(o.steps.last { $0.kind == .matched }?.action == "REDIRECT --to-ports 15001")
    }

    @Test("inbound: app port to 15006, 15008 and the status ports untouched")
    func inbound() throws {
        let tables = try basic()
        func trace(_ port: UInt16) -> TracedOutcome? {
            let q = PacketQuery(direction: .inbound, family: .ipv4, protocolNumber: ProtocolMatch.tcp,
                                destination: IPAddress("10.1.2.3")!, destinationPort: port, source: IPAddress("10.9.9.9"),
                                inInterface: "eth0")
            let r = PacketTracer(family: .ipv4, tables: tables).trace(q)
            return r.outcomes.count == 1 ? r.outcomes.first : nil
        }
        #expect(trace(8080)?.disposition == Disposition(action: "REDIRECT", port: 15006, summary: "Envoy inbound listener 15006"))
        for port: UInt16 in [15008, 15020, 15021, 15090] {
            #expect(trace(port)?.disposition.summary == "application port \(port) directly — bypasses the mesh")
        }
    }

    @Test("DNS cases get DNS probes")
    func dnsProbes() throws {
        let c = try #require(Corpus.named("master/cni-sidecar-iptables/DNS"))
        let names = Probes.make(try c.configuration(), family: .ipv4).map(\.name)
        #expect(names.contains("DNS UDP") && names.contains("DNS TCP"))
    }
}
