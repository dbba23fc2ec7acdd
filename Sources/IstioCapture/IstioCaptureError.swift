import NetfilterModel

/// Why a capture configuration could not be built from istio-iptables arguments, environment or a manifest.
/// Each message names the offending flag, variable or annotation so the user can fix the input.
public enum IstioCaptureError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A flag istio-iptables does not know (it would refuse to start too).
    case unknownFlag(String)
    /// A flag that takes a value came last.
    case missingValue(flag: String)
    /// A flag value istio-iptables would reject or that cannot shape rules.
    case invalidValue(flag: String, value: String, reason: String)
    /// Shell syntax the splitter could not finish (an unterminated quote).
    case unbalancedQuote(String)
    /// An environment variable whose value istio-iptables would reject.
    case invalidEnvironment(name: String, value: String, reason: String)
    /// The manifest is not YAML/JSON, or holds no pod spec.
    case invalidManifest(String)
    /// A flag or annotation listing more ports, CIDRs, interfaces or ids than `InputLimits.listItems`.
    case tooManyItems(what: String, count: Int, limit: Int)
    /// An annotation the istio-cni plugin would reject (the pod would fail to start).
    case invalidAnnotation(key: String, value: String, reason: String)
    /// The pod gets no sidecar capture rules at all.
    case noSidecarCapture(String)
    /// The configuration asks for native nftables (`--native-nftables`) from an Istio release that has no such
    /// mode (before 1.27).
    case nativeNftablesUnavailable(IstioVersion)
    /// nft would reject the transaction istio-iptables submits for this configuration, so nothing is installed
    /// and the init container fails; `reason` says which rule.
    case nativeNftablesRejected(version: IstioVersion, reason: String)
    /// Ambient in-pod rules from a release whose shape iptaudit does not model (before 1.24, TPROXY), or
    /// ambient's nftables backend before it existed (1.28).
    case ambientUnavailable(version: IstioVersion, reason: String)

    /// One line, each value quoted and the whole bounded by `MessageText`.
    public var description: String { MessageText.line(text) }

    private var text: String {
        switch self {
        case .unknownFlag(let flag):
            return "unknown istio-iptables flag \(flag)"
        case .missingValue(let flag):
            return "flag \(flag) needs a value"
        case .invalidValue(let flag, let value, let reason):
            return "invalid value \(MessageText.quoted(value)) for \(flag): \(reason)"
        case .unbalancedQuote(let text):
            return "unterminated quote in arguments: \(MessageText.quoted(text))"
        case .invalidEnvironment(let name, let value, let reason):
            return "invalid value \(MessageText.quoted(value)) for environment variable \(name): \(reason)"
        case .invalidManifest(let reason):
            return "cannot read the manifest: \(reason)"
        case .tooManyItems(let what, let count, let limit):
            return InputLimits.exceeded("\(what) lists \(count) items", limit: limit, variable: InputLimits.Variable.listItems)
        case .invalidAnnotation(let key, let value, let reason):
            return "invalid annotation \(MessageText.excerpt(key))=\(MessageText.quoted(value)): \(reason) (istio-cni would refuse the pod)"
        case .noSidecarCapture(let reason):
            return "pod has no Istio sidecar capture: \(reason)"
        case .nativeNftablesUnavailable(let version):
            return "native nftables mode (--native-nftables) needs Istio \(ExpectedNftables.firstVersion) or later, "
                + "but the configuration is for Istio \(version)"
        case .nativeNftablesRejected(let version, let reason):
            return "istio-iptables \(version) cannot install its native nftables rules for this configuration: \(reason); "
                + "nft rejects the whole transaction, so no rules are installed and the init container fails"
        case .ambientUnavailable(let version, let reason):
            return "ambient mode on Istio \(version): \(reason)"
        }
    }
}
