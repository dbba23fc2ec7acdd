import CaptureVerifier

/// The words a trace uses for why a rule did or did not match, from the tracer's per-condition results:
/// `dport 9080 ≠ 15008`, `uid (e.g. 1000) is not 1337`, `output interface is not lo`.
enum TraceWording {
    /// Why a rule step matched or not; nil for other steps (their `reason` says it).
    static func reason(_ s: ExplainedStep) -> String? {
        switch s.kind {
        case .matched:
            return s.checks.filter { $0.holds != false }.map(reason).joined(separator: "; ")
        case .notMatched:
            let failing = s.checks.filter { $0.holds == false }
            if !failing.isEmpty { return failing.map(reason).joined(separator: "; ") }
            let open = s.checks.filter { $0.holds == nil }
            return open.isEmpty ? "does not match"
                : "assumed not to match (\(open.map(\.condition).joined(separator: ", ")) not evaluated)"
        default:
            return s.reason
        }
    }

    static func fieldName(_ f: PacketField?) -> String { f?.traceName ?? "value" }

    /// One condition's why, in the packet's values.
    static func reason(_ c: ConditionCheck) -> String {
        let name = fieldName(c.field)
        let value = c.value ?? "?"
        let failed = c.holds == false
        /// `dport 9080`, `dport` (the whole outcome agrees), `dport (e.g. 9080)`.
        func subject(_ knowledge: ConditionCheck.Knowledge = c.knowledge, _ name: String = name, _ value: String = value) -> String {
            switch knowledge {
            case .exact: "\(name) \(value)"
            case .uniform: name
            case .example: "\(name) (e.g. \(value))"
            }
        }
        switch c.kind {
        case .notEvaluated:
            return "\(c.condition) not evaluated"
        case .address:
            return "\(subject()) is \(c.inside ? "in" : "not in") \(c.wanted)" + (c.inverted && failed ? " (rule wants not in)" : "")
        case .port:
            let single = !c.wanted.contains(":")
            let relation = single ? (c.inside ? "=" : "≠") : (c.inside ? "in" : "not in")
            return "\(subject()) \(relation) \(c.wanted)" + (c.inverted && failed ? " (rule wants \(single ? "≠" : "not in") \(c.wanted))" : "")
        case .identity:
            guard c.value != nil else { return "\(name): no socket owner (not locally generated)" }
            return "\(subject()) \(c.inside ? "is" : "is not") \(c.wanted)" + (c.inverted && failed ? " (rule wants not \(c.wanted))" : "")
        case .interface:
            if c.knowledge == .uniform {
                // Every packet of the outcome agrees: no example name.
                let negated = c.inverted == (c.holds == true)
                return "\(name) is \(negated ? "not " : "")\(c.wanted)"
            }
            let shown = (c.field == .outInterface ? "out" : "in") + (c.knowledge == .exact ? " \(value)" : " (e.g. \(value))")
            if c.inverted { return c.holds == true ? "\(shown), not \(c.wanted)" : "\(shown), rule wants not \(c.wanted)" }
            return c.holds == true ? shown : "\(shown) ≠ \(c.wanted)"
        case .mark:
            return "\(subject(c.knowledge == .exact ? .exact : .example)) \(c.inside ? "=" : "≠") \(c.wanted)"
                + (c.inverted && c.inside ? " (rule wants ≠)" : "")
        case .state:
            guard c.holds != nil else { return "SNAT/DNAT states not evaluated" }
            return "\(subject(c.knowledge == .exact ? .exact : .example)) \(c.inside ? "in" : "not in") \(c.wanted)"
                + (c.inverted && c.inside ? " (rule wants not in)" : "")
        case .ports:
            var who = subject(c.knowledge == .exact ? .exact : .example)
            if let other = c.otherValue {
                who += "/" + subject(c.otherKnowledge ?? .example, fieldName(.destinationPort), other)
            }
            return "\(who) \(c.inside ? "in" : "not in") \(c.wanted)" + (c.inverted && c.inside ? " (rule wants not in)" : "")
        case .protocol:
            if c.holds == true { return "protocol \(value)" }
            return "protocol \(value)" + (c.inverted ? ", rule wants not \(c.wanted)" : " ≠ \(c.wanted)")
        }
    }
}
