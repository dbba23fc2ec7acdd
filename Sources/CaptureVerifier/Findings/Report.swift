import IstioCapture
import NetfilterModel

/// A stable obligation id (one JUnit testcase each).
public struct ObligationID: RawRepresentable, Hashable, Sendable, Codable, Comparable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }
    public static func < (a: ObligationID, b: ObligationID) -> Bool { a.rawValue < b.rawValue }
    public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: any Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(rawValue) }
}

/// A rule set to verify in an example: iptables-save text per family (parsed by the test suite) and the
/// configuration it was installed with.
public struct ObligationExample: Sendable {
    public enum Expectation: Sendable, Hashable {
        /// No error or warning finding from this obligation.
        case passes
        /// This obligation reports a finding of this kind and severity.
        case fails(FindingKind, Severity)
    }
    public var name: String
    public var configuration: CaptureConfiguration
    public var ipv4: String
    public var ipv6: String?
    public var expectation: Expectation

    public init(_ name: String, configuration: CaptureConfiguration, ipv4: String, ipv6: String? = nil, _ expectation: Expectation) {
        self.name = name
        self.configuration = configuration
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.expectation = expectation
    }
}

/// What an obligation proves, declared next to its check (SwiftLint's `RuleDescription` in spirit): the test
/// suite runs every example.
public struct ObligationDescription: Sendable {
    public var id: ObligationID
    public var title: String
    /// The item of the model's §13 it implements.
    public var invariant: Int
    /// The packet classes it quantifies over.
    public var quantifiesOver: [String]
    public var kinds: [FindingKind]
    /// Built on demand: rendering the examples' rule sets costs more than verifying a pod, and only the tests
    /// and the docs read them.
    public var examples: [ObligationExample] { makeExamples() }
    private let makeExamples: @Sendable () -> [ObligationExample]

    public init(id: ObligationID, title: String, invariant: Int, quantifiesOver: [String], kinds: [FindingKind],
                examples: @autoclosure @escaping @Sendable () -> [ObligationExample]) {
        self.id = id
        self.title = title
        self.invariant = invariant
        self.quantifiesOver = quantifiesOver
        self.kinds = kinds
        self.makeExamples = examples
    }
}

public enum ObligationStatus: String, Sendable, Codable, Hashable {
    case passed, failed, notApplicable = "not-applicable"
}

/// One obligation's result over every family checked.
public struct ObligationResult: Sendable, Codable, Hashable {
    public var id: ObligationID
    public var title: String
    public var invariant: Int
    public var status: ObligationStatus
    public var findings: [Finding]
    /// What was shown to hold, for a passing obligation (per family).
    public var proven: [String]
    /// Why it does not apply, or what it could not check.
    public var notes: [String]
    /// A passing obligation that holds only if matches iptaudit cannot evaluate go the way given here (the
    /// other way is one of its warnings): proven under an assumption, not outright.
    public var assuming: [String] = []
}

/// Everything `iptaudit verify` found, as a value: reporters render it, the exit code follows `ok`.
public struct VerificationReport: Sendable, Codable, Hashable {
    /// The configuration the rules were checked against, in a few lines.
    public var configuration: [String]
    public var families: [Family]
    public var obligations: [ObligationResult]
    /// Every finding once, most severe first.
    public var findings: [Finding]
    /// No error finding.
    public var ok: Bool
    /// What was proven, over all passing obligations.
    public var proven: [String]
    /// What the proof assumes about matches iptaudit cannot evaluate (`-m bpf`, `-m set`, ...), over all
    /// passing obligations; empty when it assumes nothing.
    public var assumptions: [String] = []
    /// Per family, the outbound and inbound walk through the real rules (the healthy path, or where it breaks).
    public var walks: [CaptureWalk] = []

    public func findings(ofKind kind: FindingKind) -> [Finding] { findings.filter { $0.kind == kind } }
    public var errors: [Finding] { findings.filter { $0.severity == .error } }
    public func result(_ id: ObligationID) -> ObligationResult? { obligations.first { $0.id == id } }
}

extension ObligationID {
    /// Where the docs state this obligation, relative to the repository root: its row of the capture model's §13.
    public var documentation: String { "docs/capture-model.md#obligation-\(rawValue)" }
}
