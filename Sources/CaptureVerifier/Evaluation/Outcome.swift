import NetfilterModel

/// How a table (or a pipeline of tables) disposed of a packet.
public enum Verdict: Hashable, Sendable, Codable, CustomStringConvertible {
    /// Explicit `-j ACCEPT`.
    case accept
    case drop
    case reject
    case queue
    /// Fell off a built-in chain (or RETURNed from one) to its policy.
    case policy(Policy)
    /// `REDIRECT --to-ports`; nil ports keeps the destination port.
    case redirect(ports: ClosedRange<UInt16>?)
    /// DNAT, SNAT or MASQUERADE, with the target as iptables-save prints it.
    case nat(String)
    case tproxy(port: UInt16, markValue: UInt32, markMask: UInt32)
    /// A target iptaudit does not decode, taken as terminal on this branch.
    case unrecognized(String)
    /// The packet never reached nat because conntrack does not track it (`CT --notrack` in raw).
    case untracked
    /// A jump cycle (the kernel would have refused the table), or jumps nested deeper than
    /// `EvaluationLimits.maxCallDepth`, where the walk stops rather than follow a dump's chain of chains forever.
    case loop

    /// ACCEPT-like: the packet continues unchanged to the next table.
    public var continues: Bool {
        switch self {
        case .accept, .policy(.accept), .untracked: true
        default: false
        }
    }

    /// REDIRECT to exactly this port.
    public func redirects(to port: UInt16) -> Bool {
        if case .redirect(let p) = self, let p, p.lowerBound == port, p.upperBound == port { return true }
        return false
    }

    /// Delivered to a local proxy port (REDIRECT or TPROXY), and which one.
    public var capturePort: UInt16? {
        switch self {
        case .redirect(let p): p?.lowerBound
        case .tproxy(let port, _, _): port
        default: nil
        }
    }

    public var description: String {
        switch self {
        case .accept: "ACCEPT"
        case .drop: "DROP"
        case .reject: "REJECT"
        case .queue: "QUEUE"
        case .policy(let p): "policy \(p.rawValue)"
        case .redirect(let p):
            p.map { "REDIRECT --to-ports \($0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)")" } ?? "REDIRECT"
        case .nat(let t): t
        case .tproxy(let port, let v, let m): "TPROXY --on-port \(port) --tproxy-mark 0x\(String(v, radix: 16))/0x\(String(m, radix: 16))"
        case .unrecognized(let n): "\(n) (not decoded)"
        case .untracked: "untracked (no NAT)"
        case .loop: "jump loop, or jumps nested more than \(EvaluationLimits.maxCallDepth) deep"
        }
    }
}

/// One step of a packet's walk through the chain graph.
public struct TraceStep: Hashable, Sendable, Codable, CustomStringConvertible {
    public enum Action: Hashable, Sendable, Codable {
        /// Entered a table at its hook chain.
        case enter
        case jump(ChainName)
        case goto(ChainName)
        /// `-j RETURN`.
        case `return`
        /// Reached the end of a user chain: back to the caller.
        case fallOff
        /// A non-terminal target (MARK, CONNMARK, CT, LOG, ...), named as iptables-save prints it.
        case effect(String)
        /// A terminal target.
        case verdict(Verdict)
        /// The built-in chain's policy.
        case policy(Policy)
        /// A jump whose chain does not exist (only possible in a dump); evaluation continues.
        case danglingJump(ChainName)
        /// Re-entered the stack on `lo` (a locally generated packet received back).
        case loopback
    }
    public var table: TableName
    public var chain: ChainName
    /// 1-based rule number; nil for entering, falling off and policies.
    public var ruleNumber: Int?
    public var action: Action

    public init(table: TableName, chain: ChainName, ruleNumber: Int? = nil, action: Action) {
        self.table = table
        self.chain = chain
        self.ruleNumber = ruleNumber
        self.action = action
    }

    public var position: RulePosition? { ruleNumber.map { RulePosition(chain: chain, number: $0) } }

    /// `nat ISTIO_OUTPUT#12 -j ISTIO_REDIRECT`.
    public var description: String {
        let at = "\(table) \(chain)" + (ruleNumber.map { "#\($0)" } ?? "")
        switch action {
        case .enter: return "\(table) \(chain)"
        case .jump(let c): return "\(at) -j \(c)"
        case .goto(let c): return "\(at) -g \(c)"
        case .return: return "\(at) RETURN"
        case .fallOff: return "\(at) (end of chain)"
        case .effect(let e): return "\(at) \(e)"
        case .verdict(let v): return "\(at) \(v)"
        case .policy(let p): return "\(at) policy \(p.rawValue)"
        case .danglingJump(let c): return "\(at) -j \(c) (no such chain)"
        case .loopback: return "loopback: received on lo"
        }
    }
}

/// A rule whose match iptaudit cannot evaluate, and the branch's assumption about it.
public struct Assumption: Hashable, Sendable, Codable, CustomStringConvertible {
    public var table: TableName
    public var position: RulePosition
    /// The matches (or target) that could not be evaluated, e.g. `set`, `socket`.
    public var what: [String]
    public var matched: Bool
    public init(table: TableName, position: RulePosition, what: [String], matched: Bool) {
        self.table = table
        self.position = position
        self.what = what
        self.matched = matched
    }
    public var description: String {
        "\(table) \(position) (\(what.joined(separator: ", "))) assumed \(matched ? "to match" : "not to match")"
    }
}

/// Where a packet set went: verdict, path, and what the walk left on it.
struct Outcome: Sendable {
    /// The packets that took this path. Primary fields hold the values after the effects on the path;
    /// the shadow fields still hold the input values.
    var packets: PacketSet
    var verdict: Verdict
    var path: [TraceStep]
    /// The conntrack zone the first CT rule on the path set.
    var ctZone: UInt16?
    var assumptions: [Assumption]
    /// For an untracked outcome, the rule that made it so (`-j NOTRACK`, `CT --notrack`, nft's `notrack`).
    var untrackedBy: TraceStep? = nil

    var dependsOnUnknownMatch: Bool { !assumptions.isEmpty }

    /// The last rule that decided something on the path (the terminal target, the RETURN, or the jump whose
    /// chain it fell out of); for an untracked packet, the rule that untracked it.
    var decidingStep: TraceStep? { untrackedBy ?? path.last { $0.ruleNumber != nil && $0.action.isDecision } }

    /// Whether any step entered this chain of this table.
    func entered(_ chain: ChainName, in table: TableName = .nat) -> Bool {
        path.contains { s in
            guard s.table == table else { return false }
            switch s.action {
            case .jump(let c), .goto(let c): return c == chain
            case .enter: return s.chain == chain
            default: return false
            }
        }
    }
}

extension TraceStep.Action {
    var isDecision: Bool {
        switch self {
        case .jump, .goto, .return, .verdict: true
        default: false
        }
    }
}

/// The result of following one concrete packet.
public struct Trace: Hashable, Sendable {
    public var packet: Packet
    /// The packet as it left (marks changed by MARK/CONNMARK, interfaces after a loopback hop).
    public var final: Packet
    public var verdict: Verdict
    public var path: [TraceStep]
    public var ctZone: UInt16?
    /// Unknown matches met on the way and how they were decided.
    public var assumptions: [Assumption]
}
