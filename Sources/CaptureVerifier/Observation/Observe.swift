import IstioCapture
import NetfilterModel

/// What `iptaudit observe` found: every connection with its evidence and verdict, and the same report value
/// `verify` produces (obligations, findings with witnesses and fixes), so the reporters serve both.
public struct ObservationReport: Sendable, Hashable, Codable {
    public var connections: [ObservedConnection]
    public var verification: VerificationReport
    /// How many times the socket tables were read.
    public var samples: Int
}

/// The obligations observation checks, beside §13's (docs/capture-model.md): each connection seen is judged by
/// what the rules for the configuration do with its exact first packet.
public enum ObservationObligations {
    public static let outbound = ObligationID("observed-outbound")
    public static let inbound = ObligationID("observed-inbound")
    public static let dns = ObligationID("observed-dns")
    /// Privileged runs: every connection went where the live rules send it.
    public static let liveRules = ObligationID("observed-matches-rules")

    static let titles: [ObligationID: (String, Int)] = [
        outbound: ("observed outbound connections go where the rules for this configuration send them", 41),
        inbound: ("observed inbound connections arrive the way the rules for this configuration deliver them", 42),
        dns: ("observed DNS connections go where the rules for this configuration send them", 43),
        liveRules: ("every observed connection went where the live rules send it", 44),
    ]

    static let kinds: [ObligationID: [FindingKind]] = [
        outbound: [.missingRedirect, .exclusionLeak], inbound: [.missingRedirect, .exclusionLeak],
        dns: [.dnsCapture, .exclusionLeak], liveRules: [.observationContradictsRules],
    ]

    /// The four as `iptaudit checks` lists them beside §13's; they have no example rule sets (they judge connections).
    public static var descriptions: [ObligationDescription] {
        [outbound, inbound, dns, liveRules].map { id in
            ObligationDescription(id: id, title: titles[id]!.0, invariant: titles[id]!.1, quantifiesOver: ["the connections observed"],
                                  kinds: kinds[id]!, examples: [])
        }
    }
}

/// Judges the sockets of a namespace against the expected rules of `configuration` (and `liveRules` when the
/// rules could be read: then the rule proof is part of the report, and a connection whose fate contradicts the
/// live rules is a finding). Pure: the same sockets give the same report.
///
/// `samples` are the socket tables read at successive moments (`--count`): each is paired on its own, and a
/// connection seen in several counts once.
public func observe(samples: [[ObservedSocket]], localAddresses: [IPAddress], configuration: CaptureConfiguration,
                    liveRules: Ruleset? = nil) -> ObservationReport {
    let expectedTables = ExpectedRules.tables(for: configuration)
    var tracers: [Family: (expected: PacketTracer, live: PacketTracer?)] = [:]
    for f in Family.allCases {
        tracers[f] = (PacketTracer(family: f, tables: expectedTables), liveRules.map { PacketTracer(family: f, tables: $0.tables) })
    }
    struct Key: Hashable { var transport: ObservedSocket.Transport; var local: SocketEndpoint; var remote: SocketEndpoint; var uid: UInt32 }
    var seen = Set<Key>()
    let pairs = samples.flatMap { SocketPairing(sockets: $0, localAddresses: localAddresses, configuration: configuration).pairs() }.filter {
        seen.insert(Key(transport: $0.socket.transport, local: $0.socket.local, remote: $0.socket.remote, uid: $0.socket.uid)).inserted
    }
    var connections: [ObservedConnection] = []
    for p in pairs {
        let pipeline: Pipeline = p.packet.uid != nil ? .localOutputThenLoopback : .inbound
        let t = tracers[p.packet.family]!
        let expected = fate(t.expected, p, pipeline: pipeline, configuration: configuration)
        let live = t.live.map { fate($0, p, pipeline: pipeline, configuration: configuration) }
        connections.append(ObservedConnection(direction: p.direction, socket: p.socket, proxySocket: p.proxySocket, evidence: p.evidence,
                                              packet: p.packet, expected: expected, live: live,
                                              classification: classify(p.evidence, expected: expected)))
    }
    connections.sort { ($0.socket.family, $0.direction.rawValue, $0.socket.local, $0.socket.remote) < ($1.socket.family, $1.direction.rawValue, $1.socket.local, $1.socket.remote) }

    var byObligation: [ObligationID: [Finding]] = [:]
    var judged: [ObligationID: [ObservedConnection]] = [:]
    for c in connections where c.evidence != .proxy {
        let id = obligation(of: c)
        judged[id, default: []].append(c)
        if let f = finding(c, obligation: id) { byObligation[id, default: []].append(f) }
        if let f = contradiction(c) { byObligation[ObservationObligations.liveRules, default: []].append(f) }
    }

    var results: [ObligationResult] = []
    var ids = [ObservationObligations.outbound, ObservationObligations.inbound, ObservationObligations.dns]
    if liveRules != nil { ids.append(ObservationObligations.liveRules) }
    for id in ids {
        let (title, invariant) = ObservationObligations.titles[id]!
        let seen = id == ObservationObligations.liveRules ? connections.filter { $0.evidence != .proxy && $0.evidence != .unobservable } : judged[id] ?? []
        let findings = byObligation[id] ?? []
        let status: ObligationStatus = !findings.isEmpty ? .failed : seen.isEmpty ? .notApplicable : .passed
        var proven: [String] = []
        if status == .passed {
            let counts = Dictionary(grouping: seen, by: \.classification).mapValues(\.count)
            let parts = ObservedConnection.Classification.allCases.compactMap { k in counts[k].map { "\($0) \(k.rawValue)" } }
            proven = [id == ObservationObligations.liveRules
                ? "\(seen.count) observed connection\(seen.count == 1 ? "" : "s") went where the live rules send \(seen.count == 1 ? "it" : "them")"
                : "\(title.prefix(1).uppercased() + title.dropFirst()): " + parts.joined(separator: ", ")]
        }
        results.append(ObligationResult(id: id, title: title, invariant: invariant, status: status, findings: findings,
                                        proven: proven, notes: status == .notApplicable ? ["no such connection observed"] : []))
    }

    let gidNote = "application sockets' GID taken as their UID (the socket tables do not show it)"
    let configurationLines = ExpectedRules.describe(configuration) + [gidNote]
    var report = VerificationReport(configuration: configurationLines, families: configuration.families, obligations: results,
                                    findings: [], ok: true, proven: results.flatMap(\.proven))
    if let liveRules {
        // The rule proof, beside the evidence.
        let proof = verify(liveRules, configuration: configuration)
        report.obligations = proof.obligations + report.obligations
        report.proven = proof.proven + report.proven
        report.assumptions = proof.assumptions
        report.families = proof.families
        report.configuration = proof.configuration + [gidNote]
    }
    let all = report.obligations.flatMap(\.findings)
    var seenFindings = Set<Finding>()
    report.findings = all.filter { seenFindings.insert($0).inserted }.sorted { $0.severity > $1.severity }
    report.ok = !report.findings.contains { $0.severity == .error }
    return ObservationReport(connections: connections, verification: report, samples: samples.count)
}

private func fate(_ tracer: PacketTracer, _ p: SocketPairing.Pair, pipeline: Pipeline, configuration c: CaptureConfiguration) -> RuleFate {
    let t = tracer.trace(p.packet, pipeline: pipeline)
    // Locally generated traffic can be sent to any of the proxy's listeners; traffic from the network to the inbound one.
    let listeners: [UInt16] = p.packet.uid != nil ? [c.proxyPort, c.inboundCapturePort, IstioPort.dnsProxy.rawValue] : [c.inboundCapturePort]
    let toProxy = (t.disposition.action == "REDIRECT" || t.disposition.action == "TPROXY") && t.disposition.port.map(listeners.contains) == true
    return RuleFate(disposition: t.disposition, verdict: t.verdict, path: t.path, toProxy: toProxy)
}

private func classify(_ evidence: ObservedConnection.Evidence, expected: RuleFate) -> ObservedConnection.Classification {
    switch evidence {
    case .proxy: .proxy
    case .unobservable: .unobserved
    case .throughProxy: expected.toProxy ? .captured : .capturedUnexpected
    case .direct: expected.toProxy ? .bypassingUnexpected : .bypassingExpected
    case .local: expected.toProxy ? .bypassingUnexpected : .loopback
    }
}

private func obligation(of c: ObservedConnection) -> ObligationID {
    if c.direction == .outbound, c.packet.destinationPort == IstioNames.dnsPort || c.proxySocket?.local.port == IstioPort.dnsProxy.rawValue {
        return ObservationObligations.dns
    }
    return c.direction == .outbound ? ObservationObligations.outbound : ObservationObligations.inbound
}

/// The finding for a connection whose evidence contradicts the configuration's rules, as `verify` words its kinds.
private func finding(_ c: ObservedConnection, obligation: ObligationID) -> Finding? {
    guard let expected = c.expected else { return nil }
    let witness = Witness(packet: c.packet, text: c.packet.description, verdict: expected.verdict, pipeline: c.pipeline, assumptions: [])
    let dns = obligation == ObservationObligations.dns
    switch c.classification {
    case .bypassingUnexpected:
        let how = c.direction == .outbound
            ? "no proxy socket holds its other end: it went straight to \(c.socket.remote)"
            : "its peer is the client \(c.socket.remote) itself, not Envoy's forward: it bypassed Envoy's inbound listener"
        return Finding(kind: dns ? .dnsCapture : .missingRedirect, severity: .error, family: c.socket.family, witness: witness, path: expected.path,
                       message: "Observed \(c.text): \(how), but the rules for this configuration send it to \(expected.disposition.summary).",
                       fix: "The pod's rules do not capture what its configuration says: run `iptaudit verify` where the rules are readable; "
                           + Fix.reinstall.prefix(1).lowercased() + Fix.reinstall.dropFirst(),
                       obligation: obligation)
    case .capturedUnexpected:
        let port = c.proxySocket.map { "\($0.local.port)" } ?? "Envoy's forward"
        return Finding(kind: .exclusionLeak, severity: .error, family: c.socket.family, witness: witness, path: expected.path,
                       message: "Observed \(c.text) through the proxy (\(port)), but the rules for this configuration leave it alone: \(expected.disposition.summary).",
                       fix: c.direction == .outbound ? Fix.outbound : Fix.inbound, obligation: obligation)
    default:
        return nil
    }
}

/// A privileged run: the connection went somewhere the live rules do not send it.
private func contradiction(_ c: ObservedConnection) -> Finding? {
    guard let live = c.live, c.evidence != .unobservable, c.evidence != .proxy else { return nil }
    let observedThroughProxy = c.evidence == .throughProxy
    guard observedThroughProxy != live.toProxy else { return nil }
    let decided = live.path.last { $0.ruleNumber != nil }
    let observed = observedThroughProxy ? "through the proxy" : "not through the proxy"
    var f = Finding(kind: .observationContradictsRules, severity: .error, family: c.socket.family, table: decided?.table, chain: decided?.chain,
                    ruleNumber: decided?.ruleNumber,
                    witness: Witness(packet: c.packet, text: c.packet.description, verdict: live.verdict, pipeline: c.pipeline, assumptions: []),
                    path: live.path,
                    message: "Observed \(c.text) \(observed), but the live rules send its first packet to \(live.disposition.summary): "
                        + "the rules changed after it was made, or something outside netfilter (eBPF, another proxy) moved it.",
                    fix: "Find what changed the rules or moves traffic besides netfilter (`iptaudit capture` now and after a restart, bpftool prog); "
                        + "connections made before a change keep their old fate until they close.",
                    obligation: ObservationObligations.liveRules)
    f.ruleText = nil
    return f
}
