import NetfilterModel

/// How bad a finding is. `error` means traffic is captured where it must not be, or escapes where it must be
/// captured; `warning` a defect that does not (yet) break capture, or a known upstream quirk with a real effect;
/// `info` something worth knowing that needs no change.
public enum Severity: String, Sendable, Codable, Hashable, Comparable, CaseIterable {
    case info, warning, error
    var rank: Int { self == .info ? 0 : self == .warning ? 1 : 2 }
    public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
}

/// A stable finding id, as reports and JSON print it.
public struct FindingKind: RawRepresentable, Hashable, Sendable, Codable, Comparable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }
    public static func < (a: FindingKind, b: FindingKind) -> Bool { a.rawValue < b.rawValue }
    public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: any Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(rawValue) }

    public static let missingRedirect: FindingKind = "missing-redirect"
    public static let wrongPort: FindingKind = "wrong-port"
    public static let ownerMatchGap: FindingKind = "owner-match-gap"
    public static let exclusionLeak: FindingKind = "exclusion-leak"
    public static let unexpectedCapture: FindingKind = "unexpected-capture"
    public static let dnsCapture: FindingKind = "dns-capture"
    public static let tproxy: FindingKind = "tproxy"
    public static let familyAsymmetry: FindingKind = "family-asymmetry"
    public static let foreignRule: FindingKind = "foreign-rule"
    public static let backendSplit: FindingKind = "backend-split"
    public static let dropInvalid: FindingKind = "drop-invalid"
    public static let returnPath: FindingKind = "return-path"
    public static let sharedIdentity: FindingKind = "shared-identity"
    public static let modeConflict: FindingKind = "mode-conflict"
    public static let argumentQuirk: FindingKind = "argument-quirk"
    public static let ruleDrift: FindingKind = "rule-drift"
    public static let observationContradictsRules: FindingKind = "observation-contradicts-rules"

    /// What each kind means, in one sentence: `iptaudit checks`, SARIF's rule help and the docs' headings all read it
    /// from here (docs/findings.md has a section per kind, `documentation` points at it).
    public static let summaries: [FindingKind: String] = [
        .missingRedirect: "Traffic that must reach Envoy (or the DNS proxy) does not reach any REDIRECT/TPROXY.",
        .wrongPort: "Traffic is redirected, but to a port other than the configured listener.",
        .ownerMatchGap: "The owner rules do not recognise the proxy (or one of its identities): its own traffic loops back into it.",
        .exclusionLeak: "Traffic the configuration excludes (port, CIDR, interface, group, loopback) is captured anyway.",
        .unexpectedCapture: "Traffic that must stay untouched (app-local, Envoy's forward from 127.0.0.6, UDP, disabled inbound) is captured.",
        .dnsCapture: "DNS capture to the agent (15053) or its conntrack zones are wrong.",
        .tproxy: "TPROXY marks, CONNMARK, mangle exemptions or the policy routing they depend on are inconsistent.",
        .familyAsymmetry: "One family is captured and the other is not (or not the same way).",
        .foreignRule: "A rule that Istio did not install pre-empts Istio's chains.",
        .backendSplit: "Istio's rules are split across legacy xtables and nf_tables.",
        .dropInvalid: "Conntrack-INVALID packets are not dropped although `--drop-invalid` is configured.",
        .returnPath: "Replies on connections ambient's ztunnel delivered into the pod are not marked (connmark 0x111 set and restored) or not routed back to it (`ip rule fwmark 0x111/0xfff lookup 100`, table 100's local route).",
        .sharedIdentity: "A container other than the proxy runs as a proxy UID or GID: the owner rules exempt its traffic.",
        .modeConflict: "The pod holds the rules of two data planes (sidecar and ambient) at once.",
        .argumentQuirk: "istio-iptables' flag parser reads the arguments otherwise than they read (`-x -b '*'`, `--redirect-dns false`).",
        .ruleDrift: "The rules differ from what istio-iptables installs for this configuration without changing any verdict.",
        .observationContradictsRules: "`observe`: a live connection's fate contradicts what the live rules do with it: the rules changed after it was made, or something outside netfilter (eBPF, another proxy) moved it.",
    ]

    /// The one sentence for this kind (`summaries`).
    public var summary: String { Self.summaries[self] ?? "" }

    /// Where the docs explain this kind, relative to the repository root: its section of docs/findings.md.
    public var documentation: String { "docs/findings.md#\(rawValue)" }

    public static let all: [FindingKind] = [
        .missingRedirect, .wrongPort, .ownerMatchGap, .exclusionLeak, .unexpectedCapture, .dnsCapture, .tproxy,
        .familyAsymmetry, .foreignRule, .backendSplit, .dropInvalid, .returnPath, .modeConflict, .sharedIdentity, .argumentQuirk, .ruleDrift,
        .observationContradictsRules,
    ]
}

/// A concrete packet that shows a finding, with what happened to it and the tables it was followed through,
/// so `iptaudit trace` (or a test) can replay it.
public struct Witness: Hashable, Sendable, Codable {
    public var packet: Packet
    /// `TCP from UID 1000 to 10.0.0.1:9080 out eth0`.
    public var text: String
    public var verdict: Verdict
    public var pipeline: Pipeline
    /// How unknown matches were decided on this path (replay with the same assumptions).
    public var assumptions: [Assumption]
}

/// One violated (or noteworthy) property of the rules, as a value.
public struct Finding: Hashable, Sendable, Codable {
    public var kind: FindingKind
    public var severity: Severity
    public var family: Family
    /// Where: the rule that decided the witness's fate (or the chain where it fell through).
    public var table: TableName?
    public var chain: ChainName?
    public var ruleNumber: Int?
    /// That rule as iptables-save prints it (a native nftables rule: as nft prints it).
    public var ruleText: String?
    /// A native nftables rule's kernel handle (`nft -a`): how nft addresses it, where positions shift.
    public var ruleHandle: UInt64?
    /// The file and line the rule was read from (`--input` text): where CI annotations point.
    public var ruleOrigin: RuleOrigin?
    public var witness: Witness?
    /// The witness's walk: hook → chain#rule → … → verdict.
    public var path: [TraceStep]
    public var message: String
    /// Which annotation or istio-iptables flag to change, or what to re-run.
    public var fix: String?
    public var obligation: ObligationID

    public init(kind: FindingKind, severity: Severity, family: Family, table: TableName? = nil, chain: ChainName? = nil,
                ruleNumber: Int? = nil, ruleText: String? = nil, witness: Witness? = nil, path: [TraceStep] = [],
                message: String, fix: String? = nil, obligation: ObligationID) {
        self.kind = kind
        self.severity = severity
        self.family = family
        self.table = table
        self.chain = chain
        self.ruleNumber = ruleNumber
        self.ruleText = ruleText
        self.witness = witness
        self.path = path
        self.message = message
        self.fix = fix
        self.obligation = obligation
    }

    /// `nat ISTIO_OUTPUT#9` or `nat OUTPUT`.
    public var location: String {
        [table?.rawValue, chain.map { $0.rawValue + (ruleNumber.map { "#\($0)" } ?? "") }].compactMap { $0 }.joined(separator: " ")
    }
}

extension Pipeline: Codable {
    private enum CodingKeys: String, CodingKey { case stages }
    private struct StageCoding: Codable {
        var table: TableName?
        var chain: ChainName?
        var hook: Hook?
        var loopback: Bool?
    }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let stages = try c.decode([StageCoding].self, forKey: .stages)
        self.init(stages.map { s in
            if let t = s.table, let ch = s.chain { return .table(t, ch) }
            if let h = s.hook { return .hook(h) }
            return .loopback
        })
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(stages.map { s -> StageCoding in
            switch s {
            case .table(let t, let ch): StageCoding(table: t, chain: ch)
            case .hook(let h): StageCoding(hook: h)
            case .loopback: StageCoding(loopback: true)
            }
        }, forKey: .stages)
    }
}
