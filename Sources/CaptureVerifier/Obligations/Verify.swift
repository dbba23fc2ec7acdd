import IstioCapture
import NetfilterModel

/// One obligation of docs/capture-model.md §13: its description (with examples) and its check.
protocol Obligation: Sendable {
    static var description: ObligationDescription { get }
    static func check(_ run: VerificationRun) -> CheckOutput
    /// Each checked family's output, for an obligation checked family by family (nil otherwise).
    static func perFamily(_ run: VerificationRun) -> [(FamilyContext, CheckOutput)]?
}

extension Obligation {
    // A requirement rather than an `as? any FamilyObligation.Type` cast: each first cast of a type scans every
    // protocol-conformance record in the binary, ~0.26 M instructions an obligation (7 M of a pod's verify).
    static func perFamily(_ run: VerificationRun) -> [(FamilyContext, CheckOutput)]? { nil }
}

/// An obligation checked family by family.
protocol FamilyObligation: Obligation {
    static func check(_ ctx: FamilyContext) -> CheckOutput
}

extension FamilyObligation {
    static func check(_ run: VerificationRun) -> CheckOutput {
        merge(run.checked.map { ($0, check($0)) }, skipped: run.skipped)
    }
    static func perFamily(_ run: VerificationRun) -> [(FamilyContext, CheckOutput)]? { run.checked.map { ($0, check($0)) } }
}

/// One result from the per-family ones: findings side by side, proofs and notes labelled by family.
func merge(_ outputs: [(FamilyContext, CheckOutput)], skipped: [(Family, String)]) -> CheckOutput {
        var merged = CheckOutput()
        var reasons: [String] = []
        var applicable = false
        for (ctx, out) in outputs {
            if let why = out.notApplicable {
                reasons.append("\(ctx.familyName): \(why)")
                continue
            }
            applicable = true
            merged.findings += out.findings
            merged.proven += out.proven.map { "\(ctx.familyName): \($0)" }
            merged.notes += out.notes.map { "\(ctx.familyName): \($0)" }
        }
        for (family, why) in skipped { reasons.append("\(family == .ipv4 ? "IPv4" : "IPv6"): \(why)") }
        if !applicable {
            merged.notApplicable = reasons.isEmpty ? "no family to check" : reasons.joined(separator: "; ")
        } else {
            merged.notes += reasons
        }
        return merged
}

/// Everything the checks share: the ruleset, the configuration, one context per family.
struct VerificationRun {
    let ruleset: Ruleset
    let config: CaptureConfiguration
    let options: VerifierOptions
    /// Families whose rules are checked.
    let checked: [FamilyContext]
    /// Configured families left out, and why (family parity reports them).
    let skipped: [(Family, String)]
    /// Results of the obligations already run (family parity compares them), merged and per family.
    var results: [ObligationID: CheckOutput] = [:]
    var perFamily: [ObligationID: [Family: CheckOutput]] = [:]

    init(ruleset: Ruleset, config: CaptureConfiguration, options: VerifierOptions) {
        self.ruleset = ruleset
        self.config = config
        self.options = options
        var contexts: [FamilyContext] = []
        var skipped: [(Family, String)] = []
        let present = Set(IstioDataPlane(detectedIn: ruleset).familiesMet(configured: config.families))
        let layout = IstioLayout.of(config)
        for family in Family.allCases {
            let configured = config.families.contains(family)
            guard configured || present.contains(family) else { continue }
            if configured, !present.contains(family), !present.isEmpty {
                skipped.append((family, "no Istio rules in this family (see family-parity)"))
                continue
            }
            contexts.append(FamilyContext(family: family, config: config, tables: ruleset.tables.filter { $0.family == family },
                                          options: options, policyRouting: ruleset.policyRouting, layout: layout))
        }
        checked = contexts
        self.skipped = skipped
    }

    func context(_ family: Family) -> FamilyContext? { checked.first { $0.family == family } }
}

/// Native nftables mode is what the tables show when they hold Istio's `inet istio-proxy-*` tables and no
/// `ISTIO_*` chain, whether or not `--native-nftables` was given; the mode exists from 1.27, so an older (or the
/// default) version is taken as `ExpectedNftables.assumedVersion`.
func nativeNftablesInferred(_ config: CaptureConfiguration, ruleset: Ruleset) -> CaptureConfiguration {
    var c = config
    if IstioLayout.detected(in: ruleset.tables).native { c.nativeNftables = true }
    let first = c.ambient != nil ? AmbientShape.firstNftablesVersion : ExpectedNftables.firstVersion
    if c.nativeNftables, c.istioVersion < first { c.istioVersion = ExpectedNftables.assumedVersion }
    return c
}

/// When the pod's nameservers are unknown, the ones its DNS rules name: judging DNS capture against "no
/// nameservers" would call every per-server rule Istio wrote drift, and each server's queries uncaptured.
func dnsServersInferred(_ config: CaptureConfiguration, ruleset: Ruleset) -> CaptureConfiguration {
    guard config.dnsServersUnknown, config.ambient == nil, config.redirectDNS, !config.captureAllDNS,
          config.dnsServersIPv4.isEmpty, config.dnsServersIPv6.isEmpty else { return config }
    var c = config
    let found = DNSServersFromRules.servers(in: ruleset.tables)
    c.dnsServersIPv4 = found.filter { IPAddress($0)?.family == .ipv4 }
    c.dnsServersIPv6 = found.filter { IPAddress($0)?.family == .ipv6 }
    return c
}

/// Every obligation, in report order.
enum Obligations {
    static let all: [any Obligation.Type] = [
        OutboundHook.self, InboundHook.self, RedirectTargets.self, OutboundCompleteness.self, ExclusionsWin.self,
        ProxyNotCaptured.self, BothIdentities.self, InboundForwardSource.self, SelfCall.self, AppLocalTraffic.self,
        LoopbackDestination.self, InboundPorts.self, DNSCapture.self, DNSConntrackZones.self,
        InterfaceExclusions.self, VirtualInterfaces.self, TProxyConsistency.self, DropInvalid.self,
        UDPNeverToEnvoy.self, WorkloadIdentities.self, ConfigurationInvariants.self, AnnotationsApplied.self, ArgumentsAsRead.self, OneBackend.self, DataPlaneMode.self,
        // These two read the others' results: drift already explained is not repeated; parity compares families.
        ChainHygiene.self, FamilyParity.self,
    ]

    /// Ambient's in-pod rules (docs/capture-model.md §11), with the checks both data planes share.
    static let ambient: [any Obligation.Type] = [
        DataPlaneMode.self, AmbientOutbound.self, AmbientZtunnelExempt.self, AmbientInbound.self, AmbientHBONE.self,
        AmbientProbes.self, AmbientDNS.self, AmbientUDP.self, AmbientReturnPath.self, AmbientVirtualInterfaces.self,
        OneBackend.self, ChainHygiene.self, FamilyParity.self,
    ]

    /// Every obligation of either data plane, each once.
    static var every: [any Obligation.Type] {
        all + ambient.filter { a in !all.contains { ObjectIdentifier($0) == ObjectIdentifier(a) } }
    }
}

/// The obligations' descriptions (ids, titles, packet classes, examples), for docs, JUnit and the test suite.
public var obligationDescriptions: [ObligationDescription] { Obligations.every.map { $0.description } }

/// Checks a pod's tables against the capture configuration: every obligation of docs/capture-model.md §13 that applies,
/// by exhaustive symbolic evaluation of the packet classes it quantifies over. Pure.
public func verify(_ ruleset: Ruleset, configuration: CaptureConfiguration) -> VerificationReport {
    verify(ruleset, configuration: configuration, options: VerifierOptions())
}

public func verify(_ ruleset: Ruleset, configuration given: CaptureConfiguration, options: VerifierOptions) -> VerificationReport {
    let configuration = dnsServersInferred(nativeNftablesInferred(given, ruleset: ruleset), ruleset: ruleset)
    var run = VerificationRun(ruleset: ruleset, config: configuration, options: options)
    var results: [ObligationResult] = []
    for obligation in configuration.ambient != nil ? Obligations.ambient : Obligations.all {
        let d = obligation.description
        let out: CheckOutput
        if configuration.installFailure != nil, configuration.ambient == nil, obligation != ArgumentsAsRead.self {
            // Nothing can have been installed from these arguments: judging the rules against them says nothing.
            out = .notApplicable("istio-iptables installs nothing from these arguments")
        } else if let outputs = obligation.perFamily(run) {
            run.perFamily[d.id] = Dictionary(outputs.map { ($0.0.family, $0.1) }, uniquingKeysWith: { a, _ in a })
            out = merge(outputs, skipped: run.skipped)
        } else {
            out = obligation.check(run)
        }
        run.results[d.id] = out
        let status: ObligationStatus
        if out.notApplicable != nil {
            status = .notApplicable
        } else if out.findings.contains(where: { $0.severity == .error }) {
            status = .failed
        } else {
            status = .passed
        }
        // A pass whose other branch (an unevaluable match going the other way) is a warning holds only under the
        // opposite assumption: say so instead of claiming it outright.
        var assuming: [String] = []
        if status == .passed {
            for f in out.findings where f.severity == .warning {
                for a in f.witness?.assumptions ?? [] {
                    let text = "\(a.table) \(a.position) (\(a.what.joined(separator: ", "))) \(a.matched ? "does not match" : "matches")"
                    if !assuming.contains(text) { assuming.append(text) }
                }
            }
        }
        results.append(ObligationResult(id: d.id, title: d.title, invariant: d.invariant, status: status,
                                        findings: out.findings, proven: status == .passed ? out.proven : [],
                                        notes: (out.notApplicable.map { [$0] } ?? []) + out.notes, assuming: assuming))
    }
    if configuration.nativeNftables {
        // The obligations word their findings with iptables' names; a native-mode report uses nft's.
        let layout = IstioLayout.of(configuration)
        func renamed(_ f: Finding) -> Finding {
            var f = f
            f.message = layout.renamed(f.message)
            f.fix = f.fix.map(layout.renamed)
            return f
        }
        results = results.map { r in
            var r = r
            r.title = layout.renamed(r.title)
            r.findings = r.findings.map(renamed)
            r.proven = r.proven.map(layout.renamed)
            r.notes = r.notes.map(layout.renamed)
            return r
        }
    }
    if configuration.ambient != nil {
        // The shared checks (chain hygiene, parity) name istio-iptables; an ambient pod's rules are the node agent's.
        func renamed(_ text: String) -> String { text.replacing("istio-iptables", with: "istio-cni's node agent") }
        results = results.map { r in
            var r = r
            r.title = renamed(r.title)
            r.findings = r.findings.map { f in
                var f = f
                f.message = renamed(f.message)
                return f
            }
            r.proven = r.proven.map(renamed)
            r.notes = r.notes.map(renamed)
            return r
        }
    }
    // Each finding at a rule read from text says where: the file and line (`--input`), for CI's annotations.
    results = results.map { r in
        var r = r
        r.findings = r.findings.map { f in
            var f = f
            if let t = f.table, let c = f.chain, let n = f.ruleNumber {
                f.ruleOrigin = ruleset.table(t, family: f.family)?.chain(c)?.rules[safe: n - 1]?.origin
            }
            return f
        }
        return r
    }
    // Each finding once: the same kind at the same rule with the same witness verdict is the same defect.
    struct Defect: Hashable {
        var kind: FindingKind
        var severity: Severity
        var family: Family
        var location: String
        var verdictOrMessage: String
    }
    var seen: Set<Defect> = []
    var findings: [Finding] = []
    for f in results.flatMap(\.findings) {
        let key = Defect(kind: f.kind, severity: f.severity, family: f.family, location: f.location,
                         verdictOrMessage: f.witness?.verdict.description ?? f.message)
        if seen.insert(key).inserted { findings.append(f) }
    }
    findings = findings.enumerated().sorted { a, b in
        a.element.severity != b.element.severity ? a.element.severity > b.element.severity : a.offset < b.offset
    }.map(\.element)
    return VerificationReport(
        configuration: ExpectedRules.describe(configuration),
        families: run.checked.map(\.family),
        obligations: results,
        findings: findings,
        ok: !findings.contains { $0.severity == .error },
        proven: results.filter { $0.status == .passed }.flatMap(\.proven),
        assumptions: results.flatMap(\.assuming).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } },
        walks: run.checked.flatMap { $0.walks(findings: findings) })
}
