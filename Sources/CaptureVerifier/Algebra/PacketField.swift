import NetfilterModel

/// The packet fields the evaluator tracks.
public enum PacketField: Int, CaseIterable, Sendable, Codable, CustomStringConvertible {
    case l4Protocol, source, destination, sourcePort, destinationPort
    case inInterface, outInterface, uid, gid, mark, connmark, ctState

    /// Index of the shadow that keeps the input value of a field effects can change
    /// (MARK, CONNMARK, a loopback hop), so a box still says which input packets it came from.
    var shadowIndex: Int? {
        switch self {
        case .mark: 0
        case .connmark: 1
        case .inInterface: 2
        case .outInterface: 3
        default: nil
        }
    }
    static let shadowed: [PacketField] = [.mark, .connmark, .inInterface, .outInterface]

    public var description: String {
        switch self {
        case .l4Protocol: "protocol"
        case .source: "source"
        case .destination: "destination"
        case .sourcePort: "source port"
        case .destinationPort: "destination port"
        case .inInterface: "input interface"
        case .outInterface: "output interface"
        case .uid: "owner uid"
        case .gid: "owner gid"
        case .mark: "mark"
        case .connmark: "connmark"
        case .ctState: "conntrack state"
        }
    }

    /// The field's short name in a trace's conditions and reasons: `dport`, `uid`, `output interface`.
    public var traceName: String {
        switch self {
        case .l4Protocol: "protocol"
        case .source: "source"
        case .destination: "destination"
        case .sourcePort: "sport"
        case .destinationPort: "dport"
        case .inInterface: "input interface"
        case .outInterface: "output interface"
        case .uid: "uid"
        case .gid: "gid"
        case .mark: "mark"
        case .connmark: "connmark"
        case .ctState: "ctstate"
        }
    }
}

/// The conntrack states a single packet can be in (one each); SNAT/DNAT are properties of the
/// connection, not states, and are evaluated as unknown.
public enum ConntrackState: String, CaseIterable, Hashable, Sendable, Codable {
    case new = "NEW", established = "ESTABLISHED", related = "RELATED", invalid = "INVALID", untracked = "UNTRACKED"

    public var bit: ConntrackStates {
        switch self {
        case .new: .new
        case .established: .established
        case .related: .related
        case .invalid: .invalid
        case .untracked: .untracked
        }
    }
}
