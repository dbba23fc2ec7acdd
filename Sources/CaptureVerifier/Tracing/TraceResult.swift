import NetfilterModel

/// One condition of a rule checked against the traced packet: what it compares and with which value. The
/// words ("dport 9080 ≠ 15008") are the reporters' to choose.
public struct ConditionCheck: Hashable, Sendable, Codable {
    /// What kind of value the condition compares.
    public enum Kind: String, Hashable, Sendable, Codable {
        case address, interface, port, ports, identity, mark, state, `protocol`, notEvaluated
    }
    /// How much the trace knows of the packet's value.
    public enum Knowledge: String, Hashable, Sendable, Codable {
        /// The value is fixed (given, or the same for every packet of the outcome).
        case exact
        /// The values differ, but the condition decides the same way for all of them.
        case uniform
        /// The values differ; the one shown is an example.
        case example
    }
    /// The condition as iptables-save spells it, e.g. `! --dport 15008`.
    public var condition: String
    /// nil: iptaudit cannot evaluate it; the outcome's assumption decided.
    public var holds: Bool?
    public var kind: Kind
    public var field: PacketField?
    /// Whether the rule negates the test (`!`).
    public var inverted: Bool
    /// The values the rule names: `15008`, `127.0.0.6/32`, `lo`, `0x539/0xfff`.
    public var wanted: String
    /// The packet's value there; nil when it has none (no socket owner) or the condition is not evaluated.
    public var value: String?
    /// Whether the value is inside what the rule names, before any negation.
    public var inside: Bool
    public var knowledge: Knowledge
    /// `--ports` compares both ports: the destination port beside the source port in `value`.
    public var otherValue: String?
    public var otherKnowledge: Knowledge?
}

/// One line of a trace: a table entered, a rule evaluated (matched or not, and why), a chain left.
public struct ExplainedStep: Hashable, Sendable, Codable {
    public enum Kind: String, Hashable, Sendable, Codable {
        /// Entered a table at its hook chain.
        case enter
        /// A rule whose conditions held; `action` is what it did.
        case matched
        /// A rule whose conditions did not hold; `checks` say which failed.
        case notMatched
        /// Reached the end of a user chain: back to the caller.
        case fallOff
        /// The hook chain's policy decided.
        case policy
        /// Received back on `lo` (a locally generated packet routed to this host).
        case loopback
        /// A table the packet does not meet (nat after the first packet, or untracked).
        case skipped
    }
    public var kind: Kind
    public var table: TableName
    public var chain: ChainName
    public var ruleNumber: Int?
    /// The rule as iptables-save prints it.
    public var ruleText: String?
    /// What the step did: `-j ISTIO_OUTPUT`, `RETURN`, `REDIRECT --to-ports 15001`, `policy ACCEPT`.
    public var action: String?
    /// For rules: every condition and whether it held.
    public var checks: [ConditionCheck]
    /// Why, for steps other than rules (a rule's why is in its checks).
    public var reason: String?
}

/// Where the connection ends up, in netfilter's terms and in plain words.
public struct Disposition: Hashable, Sendable, Codable {
    /// The netfilter outcome: REDIRECT, TPROXY, DNAT, SNAT, MASQUERADE, DROP, REJECT, QUEUE, ACCEPT (left
    /// untouched), LOOP, UNKNOWN (a target iptaudit does not decode).
    public var action: String
    /// The local port it is redirected to (REDIRECT, TPROXY, DNAT with a port).
    public var port: UInt16?
    /// "Envoy outbound listener 15001", "application port 8080 directly — bypasses the mesh", "dropped".
    public var summary: String

    public init(action: String, port: UInt16?, summary: String) {
        self.action = action
        self.port = port
        self.summary = summary
    }
}

/// One way the queried packet can go: the condition on the unknown fields that leads here, and the walk.
public struct TracedOutcome: Hashable, Sendable {
    /// Clauses that all hold for this outcome, e.g. ["uid is not 1337", "gid is not 1337"]; empty when the
    /// given fields decide alone. An outcome reached in several ways has one clause joining them with ", or".
    public var condition: [String]
    /// A packet that takes this path (the given fields, realistic values for the others).
    public var packet: Packet
    public var verdict: Verdict
    /// The same steps the evaluators report (comparable with a finding's path).
    public var path: [TraceStep]
    public var steps: [ExplainedStep]
    public var assumptions: [Assumption]
    public var disposition: Disposition

    /// "when uid is 1337", or "always".
    public var conditionText: String {
        condition.isEmpty ? "always" : "when " + condition.joined(separator: " and ")
    }
}

/// What `iptaudit trace` prints: the query and each outcome it allows.
public struct PacketTraceResult: Hashable, Sendable {
    public var query: PacketQuery
    public var pipeline: Pipeline
    public var outcomes: [TracedOutcome]
    /// What the trace assumes that no read can show: the order of base chains it walked at one hook and priority.
    public var assumedOrders: [AssumedOrder] = []
}

/// Base chains registered at the same hook and priority, and the order a walk took them in: the kernel runs the
/// one registered last first, which no read shows.
public struct AssumedOrder: Hashable, Sendable, Codable, CustomStringConvertible {
    public var hook: ChainName
    public var priority: Int
    /// "table chain", in the order walked.
    public var order: [String]

    public init(hook: ChainName, priority: Int, order: [String]) {
        self.hook = hook
        self.priority = priority
        self.order = order
    }

    public var description: String {
        "\(order.joined(separator: ", ")) are registered at the \(hook) hook with the same priority (\(priority)): the kernel runs the one "
            + "registered last first, which no read shows; this trace assumes the order \(order.joined(separator: " → "))"
    }
}
